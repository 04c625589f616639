// The rANS coder: exact round trips (random, all escapes, one symbol, long streams, many
// tables), a golden stream that pins the format, table validation, and a decoder that rejects
// truncated streams and never reads outside the bytes it is given, whatever they hold.
#include <gtest/gtest.h>

#include <numeric>
#include <random>

#include "codec/rans.h"

namespace {

using libsplit::StatusCode;
namespace rans = libsplit::codec::rans;

rans::Table table_from_counts(int offset, const std::vector<uint64_t>& counts) {
  auto t = rans::Table::create(offset, rans::Table::normalize(counts));
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return std::move(*t);
}

std::vector<uint8_t> round_trip(const std::vector<uint8_t>& v, const std::vector<const rans::Table*>& tables,
                                size_t plane, size_t* stream_bytes = nullptr) {
  std::vector<uint8_t> stream;
  rans::Coder::encode(v.data(), v.size(), tables, plane, &stream);
  if (stream_bytes) *stream_bytes = stream.size();
  std::vector<uint8_t> back(v.size(), 0xEE);
  auto st = rans::Coder::decode(stream.data(), stream.size(), v.size(), tables, plane, back.data());
  EXPECT_TRUE(st.ok()) << st.to_string();
  return back;
}

TEST(Rans, RandomStreamsRoundTripExactly) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 200; ++trial) {
    const int offset = int(rng() % 200);
    const size_t symbols = 1 + rng() % size_t(256 - offset);
    std::vector<uint64_t> counts(symbols + 1);
    for (auto& c : counts) c = rng() % 4 == 0 ? 0 : rng() % 100000;
    const auto t = table_from_counts(offset, counts);
    // Values mostly in range, following the counts loosely, with some escapes.
    std::vector<uint8_t> v(1 + rng() % 3000);
    for (auto& x : v) x = rng() % 10 == 0 ? uint8_t(rng()) : uint8_t(offset + int(rng() % symbols));
    SCOPED_TRACE(trial);
    EXPECT_EQ(round_trip(v, {&t}, 0), v);
  }
}

TEST(Rans, PerChannelTables) {
  std::mt19937 rng(2);
  std::vector<rans::Table> tables;
  for (int c = 0; c < 5; ++c) {
    std::vector<uint64_t> counts(40, 0);
    for (int i = 0; i < 1000; ++i) ++counts[size_t(std::min(39.0, std::abs(std::normal_distribution<>(c * 6, 2)(rng))))];
    tables.push_back(table_from_counts(c * 10, counts));
  }
  std::vector<const rans::Table*> ptrs;
  for (auto& t : tables) ptrs.push_back(&t);
  std::vector<uint8_t> v(5 * 49 * 3);  // batch of 3, 5 channels of 7x7
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint8_t(((i / 49) % 5) * 10 + rng() % 30);
  EXPECT_EQ(round_trip(v, ptrs, 49), v);
}

TEST(Rans, AllEscapes) {
  const auto t = table_from_counts(100, {1000, 0});  // one symbol (100) and the escape
  std::vector<uint8_t> v(4096);
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint8_t(i % 100);  // never 100
  size_t bytes = 0;
  EXPECT_EQ(round_trip(v, {&t}, 0, &bytes), v);
  EXPECT_GT(bytes, v.size()) << "escapes cost their 8 bits plus the escape symbol";
}

TEST(Rans, OneSymbolCostsAlmostNothing) {
  const auto t = table_from_counts(7, {1000000, 0});
  EXPECT_EQ(t.freqs()[0], rans::kScale - 1);
  std::vector<uint8_t> v(100000, 7);
  size_t bytes = 0;
  EXPECT_EQ(round_trip(v, {&t}, 0, &bytes), v);
  EXPECT_LE(bytes, 8u + 4u * 4u) << "100,000 certain symbols in a few words";
}

TEST(Rans, EveryFrequencyPathAndAllCodes) {
  // 256 symbols: most with frequency 1 (the reciprocal's special case), one large.
  std::vector<uint32_t> f(257, 1);
  f[42] = rans::kScale - 256;
  auto t = rans::Table::create(0, f);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  std::vector<uint8_t> v(256 * 20);
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint8_t(i * 7);
  EXPECT_EQ(round_trip(v, {&*t}, 0), v);
}

// The decoder finds a slot's symbol from a coarse lookup of kBuckets buckets: symbols whose
// slots start and end exactly on bucket boundaries, span exactly one bucket, or crowd into one
// (and the largest, last symbol) all decode, in any order.
TEST(Rans, SymbolsOnAndAcrossTheDecodersBuckets) {
  constexpr uint32_t kBucketSlots = rans::kScale / rans::Table::kBuckets;
  std::vector<std::vector<uint32_t>> shapes;
  std::vector<uint32_t> f(257, kBucketSlots);  // each symbol exactly one bucket, the last the rest
  f[256] = rans::kScale - 256 * kBucketSlots;
  shapes.push_back(f);
  f.assign(257, 256);  // boundaries on multiples of 256 slots, the escape one slot
  f[255] = 255;
  f[256] = 1;
  shapes.push_back(f);
  f.assign(257, 1);  // a bucket and a half of single slots, one large symbol, then single slots
  f[kBucketSlots * 3 / 2] = rans::kScale - 256;
  shapes.push_back(f);
  f.assign(3, 1);  // the escape holds nearly every slot
  f[2] = rans::kScale - 2;
  shapes.push_back(f);
  std::mt19937 rng(5);
  for (size_t k = 0; k < shapes.size(); ++k) {
    auto t = rans::Table::create(0, shapes[k]);
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    std::vector<uint8_t> v(20000);
    for (auto& x : v) x = uint8_t(rng());
    SCOPED_TRACE(k);
    EXPECT_EQ(round_trip(v, {&*t}, 0), v);
  }
}

TEST(Rans, LongStreams) {
  std::mt19937 rng(3);
  std::vector<uint64_t> counts(64);
  for (size_t i = 0; i < counts.size(); ++i) counts[i] = 1 + 1000 / (1 + i);
  const auto t = table_from_counts(96, counts);
  std::vector<uint8_t> v(size_t(4) << 20);  // a 4 MiB bottleneck, the default frame limit
  for (auto& x : v) x = uint8_t(96 + std::min<int>(62, int(std::exponential_distribution<>(0.2)(rng))));
  EXPECT_EQ(round_trip(v, {&t}, 0), v);
}

TEST(Rans, GoldenStreamPinsTheFormat) {
  // Table over [10, 14) plus escape; values include an escape (200). Bytes written by this
  // implementation and committed: any change to the stream format breaks this test.
  auto t = rans::Table::create(10, {30000, 20000, 10000, 5000, 536});
  ASSERT_TRUE(t.ok());
  const std::vector<uint8_t> values = {10, 11, 12, 13, 10, 10, 200, 11, 0, 13, 12, 10};
  const std::vector<uint8_t> golden = {0x18, 0x39, 0x7b, 0x01, 0xe2, 0x23, 0x03, 0x00, 0x78, 0x76, 0xf9, 0xa8};
  std::vector<uint8_t> stream;
  rans::Coder::encode(values.data(), values.size(), {&*t}, 0, &stream);
  EXPECT_EQ(stream, golden);
  std::vector<uint8_t> back(values.size());
  ASSERT_TRUE(rans::Coder::decode(golden.data(), golden.size(), values.size(), {&*t}, 0, back.data()).ok());
  EXPECT_EQ(back, values);
}

TEST(Rans, TablesAreValidated) {
  EXPECT_EQ(rans::Table::create(0, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(rans::Table::create(0, {rans::kScale - 1, 0, 1}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(rans::Table::create(0, {100, 100}).status().code(), StatusCode::kInvalidArgument);  // sum
  EXPECT_EQ(rans::Table::create(250, std::vector<uint32_t>(8, rans::kScale / 8)).status().code(),
            StatusCode::kInvalidArgument);  // past 255
  EXPECT_EQ(rans::Table::create(-1, {rans::kScale}).status().code(), StatusCode::kInvalidArgument);
  for (const auto& counts : std::vector<std::vector<uint64_t>>{{0, 0, 0}, {5}, {1, 1000000000, 3}, std::vector<uint64_t>(257, 9)}) {
    const auto f = rans::Table::normalize(counts);
    ASSERT_EQ(f.size(), counts.size());
    EXPECT_EQ(std::accumulate(f.begin(), f.end(), uint64_t(0)), rans::kScale);
    for (auto x : f) EXPECT_GE(x, 1u);
  }
}

TEST(Rans, TruncatedAndCorruptStreamsAreRejected) {
  std::mt19937 rng(4);
  const auto t = table_from_counts(0, std::vector<uint64_t>(16, 10));
  std::vector<uint8_t> v(500);
  for (auto& x : v) x = uint8_t(rng() % 20);  // some escapes
  std::vector<uint8_t> stream;
  rans::Coder::encode(v.data(), v.size(), {&t}, 0, &stream);
  std::vector<uint8_t> out(v.size());
  for (size_t cut = 0; cut < stream.size(); ++cut) {
    // Exactly `cut` bytes, in their own allocation, so a read past them is caught by ASan.
    std::vector<uint8_t> part(stream.begin(), stream.begin() + long(cut));
    auto st = rans::Coder::decode(part.data(), part.size(), v.size(), {&t}, 0, out.data());
    ASSERT_FALSE(st.ok()) << "cut at " << cut;
    EXPECT_EQ(st.code(), StatusCode::kDataLoss);
  }
  auto longer = stream;
  longer.insert(longer.end(), {0, 0, 0, 0});
  EXPECT_FALSE(rans::Coder::decode(longer.data(), longer.size(), v.size(), {&t}, 0, out.data()).ok());
  // A flipped bit inside a stream often decodes to other codes without any inconsistency (rANS
  // carries no redundancy; the frame's CRC-32C catches corruption). What the decoder owes is to
  // stay inside the bytes it was given and fill exactly n values.
  for (size_t byte = 0; byte < stream.size(); ++byte) {
    auto bad = stream;
    bad[byte] ^= uint8_t(1u << (byte % 8));
    (void)rans::Coder::decode(bad.data(), bad.size(), v.size(), {&t}, 0, out.data());
  }
  // A flipped bit in the state's high half cannot go unnoticed: it survives to the final check.
  auto bad = stream;
  bad[7] ^= 0x10;
  EXPECT_FALSE(rans::Coder::decode(bad.data(), bad.size(), v.size(), {&t}, 0, out.data()).ok());
}

TEST(Rans, FuzzedBytesNeverCrashTheDecoder) {
  std::mt19937 rng(5);
  const auto t = table_from_counts(3, {5, 1, 0, 9, 2});
  std::vector<uint8_t> out(300);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> junk(rng() % 64);
    for (auto& b : junk) b = uint8_t(rng());
    (void)rans::Coder::decode(junk.data(), junk.size(), rng() % out.size(), {&t}, 0, out.data());
  }
}

}  // namespace
