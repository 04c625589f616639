// The entropy-coded codecs (q8rans, q8zstd, s8rans), the tables file they read, and their
// place in request frames.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "codec/crc32c.h"
#include "codec/predict.h"
#include "codec/rans.h"
#include "codec/tables.h"
#include "libsplit/codec.h"
#include "protocol/frames.h"

namespace {

using libsplit::CodecKind;
using libsplit::CodecSpec;
using libsplit::EncodedTensor;
using libsplit::EntropyTables;
using libsplit::StatusCode;
using libsplit::Tensor;

const CodecSpec kQ8{CodecKind::kQuantPerTensor, 8};
const CodecSpec kQ8Rans{CodecKind::kQuantRans, 8};
const CodecSpec kQ8Zstd{CodecKind::kQuantZstd, 8};
const CodecSpec kS8Rans{CodecKind::kSymbolRans, 8};

void put16(std::vector<uint8_t>* b, uint32_t v) {
  b->push_back(uint8_t(v));
  b->push_back(uint8_t(v >> 8));
}
void put32(std::vector<uint8_t>* b, uint32_t v) {
  put16(b, v & 0xFFFF);
  put16(b, v >> 16);
}

using Predictor = std::vector<std::pair<int32_t, std::vector<int32_t>>>;  // (bias, weights), Q16

// A tables file written by the format's description (src/codec/tables.cpp), independently of
// the parser: `tables` are (offset, frequencies with the escape last); a predictor makes it a
// format 2 file.
std::vector<uint8_t> tables_file(const std::vector<std::pair<int, std::vector<uint32_t>>>& tables,
                                 const Predictor* predictor = nullptr) {
  std::vector<uint8_t> b = {'L', 'S', 'E', 'T'};
  put16(&b, predictor ? 2 : 1);
  put16(&b, 0);
  put32(&b, uint32_t(tables.size()));
  for (const auto& [offset, freqs] : tables) {
    b.push_back(uint8_t(offset));
    put16(&b, uint32_t(freqs.size()));
    for (uint32_t f : freqs) put16(&b, f);
  }
  if (predictor) {
    put32(&b, uint32_t(predictor->size()));
    for (const auto& [bias, weights] : *predictor) {
      put32(&b, uint32_t(bias));
      put32(&b, uint32_t(weights.size()));
      for (int32_t w : weights) put32(&b, uint32_t(w));
    }
  }
  put32(&b, libsplit::codec::crc32c(b.data(), b.size()));
  return b;
}

// One table per channel from the histogram of `codes` (n values, `channels` planes).
std::vector<uint8_t> calibrated_file(const std::vector<uint8_t>& codes, int channels) {
  const size_t plane = codes.size() / size_t(channels);
  std::vector<std::pair<int, std::vector<uint32_t>>> tables;
  for (int c = 0; c < channels; ++c) {
    std::vector<uint64_t> counts(257, 0);
    for (size_t i = 0; i < plane; ++i) ++counts[codes[size_t(c) * plane + i]];
    counts[256] = 1;  // the escape
    tables.emplace_back(0, libsplit::codec::rans::Table::normalize(counts));
  }
  return tables_file(tables);
}

std::shared_ptr<const EntropyTables> parse(const std::vector<uint8_t>& file) {
  auto t = EntropyTables::parse(file.data(), file.size(), "test.tables");
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return t.ok() ? *t : nullptr;
}

Tensor gaussian(std::vector<int64_t> shape, uint32_t seed, float sigma = 1.0f) {
  Tensor t;
  t.shape = std::move(shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  t.data.resize(size_t(Tensor::element_count(t.shape)));
  for (auto& v : t.data) v = d(rng);
  return t;
}

// Like a feature map after a ReLU: half the values zero, the rest spread.
Tensor relu_features(std::vector<int64_t> shape, uint32_t seed) {
  Tensor t = gaussian(std::move(shape), seed);
  for (auto& v : t.data) v = v > 0.f ? v : 0.f;
  return t;
}

// The q8 codes of a tensor, as the tables are calibrated on.
std::vector<uint8_t> q8_codes(const Tensor& t) {
  EncodedTensor e;
  EXPECT_TRUE(libsplit::encode(t, kQ8, &e).ok());
  return e.payload;
}

TEST(EntropyCodecs, Q8RansDecodesExactlyLikeQ8AndIsSmaller) {
  // Calibrate on some tensors, code others: lossless against q8, fewer bytes for peaked data.
  std::vector<uint8_t> calib;
  for (uint32_t s = 0; s < 20; ++s) {
    auto c = q8_codes(relu_features({1, 4, 8, 8}, s));
    calib.insert(calib.end(), c.begin(), c.end());
  }
  // Interleave: calibrated_file wants channel-major blocks of the whole set.
  std::vector<uint8_t> by_channel(calib.size());
  const size_t plane = 64, per = 256;
  for (size_t s = 0; s < 20; ++s)
    for (size_t c = 0; c < 4; ++c)
      std::memcpy(&by_channel[c * 20 * plane + s * plane], &calib[s * per + c * plane], plane);
  auto tables = parse(calibrated_file(by_channel, 4));
  ASSERT_TRUE(tables);
  for (uint32_t s = 100; s < 110; ++s) {
    const Tensor x = relu_features({1, 4, 8, 8}, s);
    EncodedTensor q8, coded;
    ASSERT_TRUE(libsplit::encode(x, kQ8, &q8).ok());
    ASSERT_TRUE(libsplit::encode(x, kQ8Rans, &coded, tables.get()).ok());
    EXPECT_EQ(coded.table_version, tables->version());
    EXPECT_LT(coded.payload.size(), q8.payload.size());
    Tensor a, b;
    ASSERT_TRUE(libsplit::decode(q8, &a).ok());
    auto st = libsplit::decode(coded, &b, tables.get());
    ASSERT_TRUE(st.ok()) << st.to_string();
    EXPECT_EQ(a.data, b.data);  // bit for bit
  }
}

TEST(EntropyCodecs, Q8ZstdDecodesExactlyLikeQ8) {
  const Tensor x = gaussian({1, 16, 14, 14}, 7);
  EncodedTensor q8, z;
  ASSERT_TRUE(libsplit::encode(x, kQ8, &q8).ok());
  ASSERT_TRUE(libsplit::encode(x, kQ8Zstd, &z).ok());
  Tensor a, b;
  ASSERT_TRUE(libsplit::decode(q8, &a).ok());
  ASSERT_TRUE(libsplit::decode(z, &b).ok());
  EXPECT_EQ(a.data, b.data);
  // Corrupt or truncated zstd frames are errors, never a crash or a wrong tensor.
  for (size_t cut : {size_t(0), size_t(3), z.payload.size() / 2, z.payload.size() - 1}) {
    EncodedTensor bad = z;
    bad.payload.resize(cut);
    Tensor out;
    EXPECT_FALSE(libsplit::decode(bad, &out).ok()) << cut;
  }
  EncodedTensor wrong_shape = z;
  wrong_shape.shape = {1, 16, 14, 13};
  Tensor out;
  auto st = libsplit::decode(wrong_shape, &out);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("needs"), std::string::npos) << st.message();
}

TEST(EntropyCodecs, S8RansCarriesRoundedClampedSymbols) {
  // One table for all: symbols near zero likely; out-of-range codes take the escape.
  std::vector<uint32_t> freqs(9 + 1, 0);
  std::vector<uint64_t> counts = {1, 4, 20, 60, 100, 60, 20, 4, 1, 1};
  freqs = libsplit::codec::rans::Table::normalize(counts);
  auto tables = parse(tables_file({{128 - 4, freqs}}));
  ASSERT_TRUE(tables);
  Tensor x;
  x.shape = {1, 2, 2, 3};
  x.data = {0.f, 0.4f, -0.6f, 2.5f, 3.5f, -4.2f, 100.f, -100.f, 127.4f, -128.f, 1000.f, -1000.f};
  EncodedTensor e;
  ASSERT_TRUE(libsplit::encode(x, kS8Rans, &e, tables.get()).ok());
  EXPECT_TRUE(e.scales.empty());
  Tensor y;
  ASSERT_TRUE(libsplit::decode(e, &y, tables.get()).ok());
  const std::vector<float> want = {0.f, 0.f, -1.f, 2.f, 4.f, -4.f, 100.f, -100.f, 127.f, -128.f, 127.f, -128.f};
  EXPECT_EQ(y.data, want);  // round half to even, clamped to [-128, 127]
}

TEST(EntropyCodecs, MismatchedMissingOrCorruptTablesAreClearErrors) {
  const Tensor x = gaussian({1, 2, 4, 4}, 3);
  auto codes = q8_codes(x);
  auto t1 = parse(calibrated_file(codes, 2));
  std::vector<uint8_t> other = codes;
  for (auto& c : other) c = uint8_t(c / 2);
  auto t2 = parse(calibrated_file(other, 2));
  ASSERT_TRUE(t1 && t2);
  ASSERT_NE(t1->version(), t2->version());
  EncodedTensor e;
  ASSERT_TRUE(libsplit::encode(x, kQ8Rans, &e, t1.get()).ok());
  Tensor y;
  auto st = libsplit::decode(e, &y, t2.get());
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("tables version"), std::string::npos) << st.message();
  st = libsplit::decode(e, &y, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EncodedTensor none;
  EXPECT_EQ(libsplit::encode(x, kQ8Rans, &none, nullptr).code(), StatusCode::kFailedPrecondition);
  // A table count that does not divide the tensor.
  auto t3 = parse(calibrated_file(std::vector<uint8_t>(30, 5), 3));
  ASSERT_TRUE(t3);
  EXPECT_EQ(libsplit::encode(x, kQ8Rans, &none, t3.get()).code(), StatusCode::kInvalidArgument);
  // Every truncation and many bit flips of the stream: an error or (for a flip the coder cannot
  // see) some tensor of the right size, never a read out of bounds.
  for (size_t cut = 0; cut < e.payload.size(); ++cut) {
    EncodedTensor bad = e;
    bad.payload.resize(cut);
    EXPECT_EQ(libsplit::decode(bad, &y, t1.get()).code(), StatusCode::kDataLoss) << cut;
  }
  std::mt19937 rng(5);
  for (int i = 0; i < 500; ++i) {
    EncodedTensor bad = e;
    bad.payload[rng() % bad.payload.size()] ^= uint8_t(1u << (rng() % 8));
    Tensor out;
    if (libsplit::decode(bad, &out, t1.get()).ok()) {
      EXPECT_EQ(out.data.size(), x.data.size());
    }
  }
}

TEST(EntropyCodecs, TablesFileIsValidatedFieldByField) {
  const auto good = tables_file({{10, {30000, 30000, 5536}}, {0, {65535, 1}}});
  auto t = parse(good);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->count(), 2u);
  uint32_t stored;
  std::memcpy(&stored, &good[good.size() - 4], 4);
  EXPECT_EQ(t->version(), stored);
  auto expect_error = [](std::vector<uint8_t> file, const std::string& needle) {
    auto r = EntropyTables::parse(file.data(), file.size(), "x.tables");
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_NE(r.status().message().find("x.tables"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  auto resealed = [](std::vector<uint8_t> f) {  // recompute the CRC after an edit
    f.resize(f.size() - 4);
    put32(&f, libsplit::codec::crc32c(f.data(), f.size()));
    return f;
  };
  expect_error({}, "too short");
  auto f = good;
  f[0] = 'X';
  expect_error(resealed(f), "magic");
  f = good;
  f[4] = 3;
  expect_error(resealed(f), "format version 3");
  f = good;
  f[4] = 2;  // format 2 without its predictor section
  expect_error(resealed(f), "predictor's element count is cut off");
  const Predictor two = {{0, {}}, {65536, {65536}}};
  f = tables_file({{0, {65535, 1}}}, &two);
  EXPECT_TRUE(parse(f));
  f.resize(f.size() - 8);  // the last weight and the CRC
  expect_error(resealed(f), "predictor entry 1 of 2 is cut off");
  const Predictor greedy = {{0, {}}, {0, {1, 2}}};  // entry 1 reads two codes, one precedes it
  expect_error(tables_file({{0, {65535, 1}}}, &greedy), "reads 2 preceding codes");
  f = good;
  f[20] ^= 1;
  expect_error(f, "CRC-32C");
  f = good;
  f[8] = 3;  // three tables announced, two present
  expect_error(resealed(f), "cut off");
  expect_error(tables_file({{10, {30000, 30000, 5535}}}), "sum to 65535");
  expect_error(tables_file({{0, {65536 - 1, 0, 1}}}), "frequency 1 is 0");
  expect_error(tables_file({{250, std::vector<uint32_t>(10, 6553)}}), "outside [0, 256)");
  f = tables_file({{0, {65535, 1}}});
  f.insert(f.end() - 4, uint8_t(0));
  expect_error(resealed(f), "after the last table");
  auto missing = EntropyTables::load("/nonexistent/x.tables");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

// Golden figures from tools/libsplit_tools/tables.py (predictions, to_symbols, encode_tables)
// for this predictor: the C++ and Python predictors and file writers agree to the bit. It covers
// a clamp at both ends, a negative weight and the residual's wrap modulo 256.
TEST(EntropyCodecs, PredictorMatchesThePythonReference) {
  const Predictor pred = {{100 * 65536 + 12345, {}},
                          {-3 * 65536, {65536 + 30000}},
                          {0, {-40000, 70000}},
                          {300 * 65536, {}},
                          {-500 * 65536, {65536, 65536, 65536, 65536}}};
  const auto file = tables_file({{0, {65535, 1}}}, &pred);
  EXPECT_EQ(file.size(), 95u);
  auto t = parse(file);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->version(), 0xc850b3dfu);
  const auto& p = t->impl().predictor;
  ASSERT_EQ(p.elements, 5u);
  const std::vector<uint8_t> codes = {10, 200, 37, 0, 255, 255, 0, 128, 250, 3, 0, 0, 0, 0, 0, 77, 77, 77, 77, 77};
  const std::vector<uint8_t> predicted = {100, 12, 208, 255, 0, 100, 255, 0, 255, 133,
                                          100, 0,  0,   255, 0, 100, 109, 35, 255, 0};
  const std::vector<uint8_t> symbols = {38, 60, 213, 129, 127, 27,  129, 0,   123, 254,
                                        28, 128, 128, 129, 128, 105, 96, 170, 206, 205};
  for (size_t s = 0; s < 4; ++s)
    for (size_t i = 0; i < 5; ++i) EXPECT_EQ(p.predict(&codes[s * 5], i), predicted[s * 5 + i]) << s << "," << i;
  std::vector<uint8_t> got(codes.size()), back(codes.size());
  p.to_symbols(codes.data(), codes.size(), got.data());
  EXPECT_EQ(got, symbols);
  p.to_codes(symbols.data(), symbols.size(), back.data());
  EXPECT_EQ(back, codes);
}

TEST(EntropyCodecs, PredictedTablesCodeResidualsLosslesslyAndSmaller) {
  // A smooth signal along each sample (a random walk): each code is close to the one before it,
  // which a predictor c[i] ~ c[i-1] turns into residuals near 0.
  const size_t elements = 64;
  auto walk = [&](uint32_t seed, int64_t batch) {
    Tensor t;
    t.shape = {batch, 4, 4, 4};
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (int64_t b = 0; b < batch; ++b) {
      float v = 0;
      for (size_t i = 0; i < elements; ++i) t.data.push_back(v += d(rng));
    }
    return t;
  };
  Predictor pred;
  pred.push_back({128 * 65536, {}});
  for (size_t i = 1; i < elements; ++i) pred.push_back({0, {65536}});
  libsplit::codec::Predictor p;  // the same predictor, to calibrate the residuals' tables
  auto flat_tables = [&](bool residuals) {
    std::vector<uint64_t> counts(257, 1);
    for (uint32_t s = 0; s < 50; ++s) {
      auto c = q8_codes(walk(s, 1));
      std::vector<uint8_t> sym(c.size());
      if (residuals) p.to_symbols(c.data(), c.size(), sym.data());
      for (uint8_t v : residuals ? sym : c) ++counts[v];
    }
    return std::vector<std::pair<int, std::vector<uint32_t>>>{{0, libsplit::codec::rans::Table::normalize(counts)}};
  };
  auto plain = parse(tables_file(flat_tables(false)));
  auto file = tables_file({{0, {65535, 1}}}, &pred);
  auto parsed = parse(file);
  ASSERT_TRUE(plain && parsed);
  p = parsed->impl().predictor;
  auto predicted = parse(tables_file(flat_tables(true), &pred));
  ASSERT_TRUE(predicted);
  size_t plain_bytes = 0, predicted_bytes = 0;
  for (uint32_t s = 100; s < 110; ++s) {
    for (int64_t batch : {1, 3}) {  // a batch is whole samples, each predicted on its own
      const Tensor x = walk(s, batch);
      EncodedTensor q8, a, b;
      ASSERT_TRUE(libsplit::encode(x, kQ8, &q8).ok());
      ASSERT_TRUE(libsplit::encode(x, kQ8Rans, &a, plain.get()).ok());
      ASSERT_TRUE(libsplit::encode(x, kQ8Rans, &b, predicted.get()).ok());
      plain_bytes += a.payload.size();
      predicted_bytes += b.payload.size();
      Tensor want, got;
      ASSERT_TRUE(libsplit::decode(q8, &want).ok());
      auto st = libsplit::decode(b, &got, predicted.get());
      ASSERT_TRUE(st.ok()) << st.to_string();
      EXPECT_EQ(want.data, got.data);  // bit for bit
      std::mt19937 rng(s);
      for (int k = 0; k < 50; ++k) {  // corrupt streams: an error, or a tensor of the right size
        EncodedTensor bad = b;
        bad.payload[rng() % bad.payload.size()] ^= uint8_t(1u << (rng() % 8));
        if (rng() % 4 == 0) bad.payload.resize(rng() % bad.payload.size());
        Tensor out;
        if (libsplit::decode(bad, &out, predicted.get()).ok()) {
          EXPECT_EQ(out.data.size(), x.data.size());
        }
      }
    }
  }
  // Steps of one sigma against a per-sample range of tens of sigmas: residuals of a few bits
  // against the codes' eight (about 18% fewer bytes with these seeds).
  EXPECT_LT(predicted_bytes * 10, plain_bytes * 9) << predicted_bytes << " vs " << plain_bytes;
  // A tensor that is not whole samples of the predictor: an error at both ends, naming it.
  const Tensor odd = gaussian({1, 2, 4, 4}, 3);
  EncodedTensor e;
  auto st = libsplit::encode(odd, kQ8Rans, &e, predicted.get());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("64-element predictor"), std::string::npos) << st.message();
  ASSERT_TRUE(libsplit::encode(odd, kQ8Rans, &e, plain.get()).ok());
  e.table_version = predicted->version();
  Tensor out;
  EXPECT_FALSE(libsplit::decode(e, &out, predicted.get()).ok());
}

TEST(EntropyCodecs, RequestFramesCarryTheTableVersionAndAVariablePayload) {
  namespace proto = libsplit::protocol;
  const Tensor x = gaussian({1, 2, 4, 4}, 9);
  auto tables = parse(calibrated_file(q8_codes(x), 2));
  ASSERT_TRUE(tables);
  for (const CodecSpec& spec : {kQ8Rans, kQ8Zstd, kS8Rans}) {
    proto::Request req;
    req.id = 42;
    req.split = 1;
    req.top_k = 3;
    ASSERT_TRUE(libsplit::encode(x, spec, &req.tensor, tables.get()).ok());
    const auto body = proto::encode_request(req);
    EXPECT_EQ(body.size() + proto::kHeaderSize, proto::request_frame_size(req));
    proto::Request back;
    auto st = proto::decode_request(body.data(), body.size(), &back);
    ASSERT_TRUE(st.ok()) << st.to_string();
    EXPECT_EQ(back.tensor.codec, spec);
    EXPECT_EQ(back.tensor.table_version, req.tensor.table_version);
    EXPECT_EQ(back.tensor.payload, req.tensor.payload);
    EXPECT_EQ(back.tensor.scales, req.tensor.scales);
    // No payload at all is rejected in the frame; a cut one reaches the codec, which rejects it.
    auto cut = body;
    cut.resize(body.size() - req.tensor.payload.size());
    EXPECT_FALSE(proto::decode_request(cut.data(), cut.size(), &back).ok());
    cut.resize(cut.size() - 2);  // into the table version
    EXPECT_FALSE(proto::decode_request(cut.data(), cut.size(), &back).ok());
  }
}

}  // namespace
