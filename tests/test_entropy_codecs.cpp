// The entropy-coded codecs (q8rans, q8zstd, s8rans), the tables file they read, and their
// place in request frames.
#include <gtest/gtest.h>

#include <algorithm>
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

// A context model by the fields of src/codec/context.h: weights as full matrices (entries a
// unit or element cannot see must be 0; the writer leaves them out).
struct Context {
  uint32_t bins, groups, hidden_shift, out_shift;
  std::vector<uint32_t> degree;
  std::vector<int64_t> b1, bm, bs;
  std::vector<std::vector<int32_t>> w1, wm, vm, ws, vs;
};

void put64(std::vector<uint8_t>* b, int64_t v) {
  put32(b, uint32_t(uint64_t(v)));
  put32(b, uint32_t(uint64_t(v) >> 32));
}

std::vector<uint8_t> context_section(const Context& c) {
  std::vector<uint8_t> b;
  const size_t n = c.bm.size(), h = c.degree.size();
  for (uint32_t v : {uint32_t(n), uint32_t(h), c.bins, c.groups}) put32(&b, v);
  b.push_back(uint8_t(c.hidden_shift));
  b.push_back(uint8_t(c.out_shift));
  for (size_t k = 0; k < h; ++k) {
    put32(&b, c.degree[k]);
    put64(&b, c.b1[k]);
    for (size_t j = 0; j <= c.degree[k]; ++j) put16(&b, uint16_t(c.w1[k][j]));
  }
  for (size_t i = 0; i < n; ++i) {
    size_t visible = 0;
    while (visible < h && c.degree[visible] < i) ++visible;
    for (int o = 0; o < 2; ++o) {
      put64(&b, o == 0 ? c.bm[i] : c.bs[i]);
      for (size_t k = 0; k < visible; ++k) put16(&b, uint16_t((o == 0 ? c.wm : c.ws)[i][k]));
      for (size_t j = 0; j < i; ++j) put16(&b, uint16_t((o == 0 ? c.vm : c.vs)[i][j]));
    }
  }
  return b;
}

// A tables file written by the format's description (src/codec/tables.cpp), independently of
// the parser: `tables` are (offset, frequencies with the escape last); a predictor makes it a
// format 2 file, a context model a format 3 one.
std::vector<uint8_t> tables_file(const std::vector<std::pair<int, std::vector<uint32_t>>>& tables,
                                 const Predictor* predictor = nullptr, const Context* context = nullptr) {
  std::vector<uint8_t> b = {'L', 'S', 'E', 'T'};
  put16(&b, context ? 3 : predictor ? 2 : 1);
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
  if (context) {
    const auto section = context_section(*context);
    b.insert(b.end(), section.begin(), section.end());
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
  f[4] = 4;
  expect_error(resealed(f), "format version 4");
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

// `coded` (a tensor through q8rans with `tables`) decodes to exactly what its q8 frame does, and
// 50 corruptions of it (a bit flipped, sometimes cut short) are an error or a tensor of the
// right size (an escaped code's flat bits carry no check), never a read out of bounds.
void expect_exact_and_safe(const EncodedTensor& q8, const EncodedTensor& coded, const EntropyTables* tables,
                           uint32_t seed) {
  Tensor want, got;
  ASSERT_TRUE(libsplit::decode(q8, &want).ok());
  auto st = libsplit::decode(coded, &got, tables);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(want.data, got.data);  // bit for bit
  std::mt19937 rng(seed);
  for (int k = 0; k < 50; ++k) {
    EncodedTensor bad = coded;
    bad.payload[rng() % bad.payload.size()] ^= uint8_t(1u << (rng() % 8));
    if (rng() % 4 == 0) bad.payload.resize(rng() % bad.payload.size());
    Tensor out;
    if (libsplit::decode(bad, &out, tables).ok()) {
      EXPECT_EQ(out.data.size(), want.data.size());
    }
  }
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
      expect_exact_and_safe(q8, b, predicted.get(), s);
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

// The golden context model: 6 elements, 5 hidden units, 3 bins, 2 groups (tables 0-5), with
// figures from tools/libsplit_tools/context.py (outputs, symbols_and_tables) and tables.py
// (encode_tables with six {65535, 1} tables): the C++ and Python models and writers agree to the
// bit, through clamps at both ends of the predictions and the bins.
Context golden_context() {
  Context c;
  c.bins = 3;
  c.groups = 2;
  c.hidden_shift = 4;
  c.out_shift = 10;
  c.degree = {0, 1, 1, 3, 4};
  c.b1 = {451, 940, 1116, 463, -395};
  c.w1 = {{-285, 0, 0, 0, 0, 0}, {-13, 179, 0, 0, 0, 0}, {-292, 117, 0, 0, 0, 0}, {-117, 18, 96, -260, 0, 0},
          {208, 68, 143, -173, 30, 0}};
  c.bm = {143176, -584, 38727, 141365, 251360, 137979};
  c.wm = {{0, 0, 0, 0, 0}, {154, 0, 0, 0, 0}, {-181, -193, 183, 0, 0}, {-100, -35, -68, 0, 0},
          {27, -247, 32, -40, 0}, {43, -61, -58, -91, 71}};
  c.vm = {{0, 0, 0, 0, 0, 0},         {-144, 0, 0, 0, 0, 0},       {-245, 11, 0, 0, 0, 0},
          {-381, 369, 203, 0, 0, 0}, {-7, -179, -223, 143, 0, 0}, {67, -254, -222, 389, -185, 0}};
  c.bs = {2659, 722, -281, -600, 2180, 2773};
  c.ws = {{0, 0, 0, 0, 0}, {-36, 0, 0, 0, 0}, {-34, 49, 49, 0, 0}, {38, 25, -10, 0, 0},
          {-28, -39, -39, -11, 0}, {-36, -23, -3, 35, -34}};
  c.vs = {{0, 0, 0, 0, 0, 0},     {-5, 0, 0, 0, 0, 0},        {27, 16, 0, 0, 0, 0},
          {-1, 15, 19, 0, 0, 0}, {0, -28, -28, -26, 0, 0}, {8, 9, -28, -12, 26, 0}};
  return c;
}

TEST(EntropyCodecs, ContextModelMatchesThePythonReference) {
  const Context c = golden_context();
  const auto file = tables_file(std::vector<std::pair<int, std::vector<uint32_t>>>(6, {0, {65535, 1}}), nullptr, &c);
  EXPECT_EQ(file.size(), 384u);
  auto t = parse(file);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->version(), 0x2aa7aaccu);
  const auto& m = t->impl().context;
  ASSERT_EQ(m.elements, 6u);
  const std::vector<uint8_t> codes = {10, 200, 37, 0, 255, 128, 255, 255, 255, 255, 255, 255,
                                      0,  0,   0,  0, 0,   0,   128, 3,   77,  250, 1,   90};
  const std::vector<uint8_t> predicted = {140, 255, 1, 0, 48, 0, 140, 0, 0,  115, 0,   178,
                                          140, 255, 0, 0, 255, 0, 140, 4, 32, 80,  255, 247};
  const std::vector<uint8_t> symbols = {254, 73,  164, 128, 79,  0,   243, 127, 127, 12, 127, 205,
                                        244, 129, 128, 128, 129, 128, 116, 127, 173, 42, 130, 227};
  const std::vector<uint32_t> tables = {2, 0, 2, 5, 3, 3, 2, 0, 2, 5, 3, 3, 2, 0, 0, 5, 3, 3, 2, 0, 0, 3, 5, 3};
  libsplit::codec::ContextModel::Sample s;
  for (size_t smp = 0; smp < 4; ++smp) {
    m.begin(&s);
    for (size_t i = 0; i < 6; ++i) {
      uint8_t p;
      uint32_t table;
      m.predict(&s, i, &p, &table);
      EXPECT_EQ(p, predicted[smp * 6 + i]) << smp << "," << i;
      EXPECT_EQ(table, tables[smp * 6 + i]) << smp << "," << i;
      libsplit::codec::ContextModel::set_code(&s, i, codes[smp * 6 + i]);
    }
  }
  std::vector<uint8_t> got(codes.size());
  std::vector<uint32_t> got_tables(codes.size());
  m.to_symbols(codes.data(), codes.size(), got.data(), got_tables.data());
  EXPECT_EQ(got, symbols);
  EXPECT_EQ(got_tables, tables);
}

// The context model's formula (src/codec/context.h) written out in int64, one term at a time.
void reference_predict(const libsplit::codec::ContextModel& m, const std::vector<uint8_t>& codes, size_t i,
                       uint8_t* prediction, uint32_t* table) {
  auto z = [&](size_t j) { return int64_t(codes[j]) - 128; };
  std::vector<int64_t> h(m.visible[i]);
  for (size_t k = 0; k < h.size(); ++k) {
    int64_t a = m.hidden_bias[k];
    for (size_t j = 0; j <= m.degree[k]; ++j) a += int64_t(m.hidden_weights[m.hidden_first[k] + j]) * z(j);
    h[k] = std::min(std::max(a, int64_t(0)) >> m.hidden_shift, libsplit::codec::ContextModel::kHiddenMax);
  }
  size_t at = m.out_first[i];
  int64_t out[2];
  for (int o = 0; o < 2; ++o) {
    int64_t a = m.out_bias[2 * i + size_t(o)];
    for (size_t k = 0; k < h.size(); ++k) a += int64_t(m.out_weights[at++]) * h[k];
    for (size_t j = 0; j < i; ++j) a += int64_t(m.out_weights[at++]) * z(j);
    const int64_t half = m.out_shift ? int64_t(1) << (m.out_shift - 1) : 0, d = int64_t(1) << m.out_shift;
    const int64_t v = a + half;
    out[o] = v / d - (v % d < 0 ? 1 : 0);  // floor: "/" truncates towards zero
  }
  *prediction = uint8_t(std::clamp<int64_t>(out[0], 0, 255));
  *table = uint32_t(i * m.groups / m.elements) * m.bins + uint32_t(std::clamp<int64_t>(out[1], 0, m.bins - 1));
}

// Sizes beyond one summing block (256 terms), weights at the int16 limits, hidden values up to
// the 2^24 cap: the blocked int16 sums of ContextModel::predict equal the int64 formula.
TEST(EntropyCodecs, ContextModelSumsAreExactAtTheLimits) {
  std::mt19937 rng(20221);
  libsplit::codec::ContextModel m;
  m.elements = 600;
  m.hidden = 700;
  m.bins = 5;
  m.groups = 3;
  m.hidden_shift = 3;
  m.out_shift = 24;
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (uint32_t k = 0; k < m.hidden; ++k) m.degree.push_back(uint32_t(uniform(0, m.elements - 1)));
  std::sort(m.degree.begin(), m.degree.end());
  for (uint32_t k = 0; k < m.hidden; ++k) {
    m.hidden_first.push_back(uint32_t(m.hidden_weights.size()));
    // A third of the units large (capped often), a third middling, a third small.
    const int64_t scale = k % 3 == 0 ? 32767 : k % 3 == 1 ? 300 : 8;
    m.hidden_bias.push_back(uniform(-(int64_t(1) << 26), int64_t(1) << 26) / (k % 3 == 0 ? 1 : 4096));
    for (uint32_t j = 0; j <= m.degree[k]; ++j)
      m.hidden_weights.push_back(int16_t(k % 5 == 0 ? (k % 2 ? 32767 : -32768)  // sums beyond int32
                                         : j % 97 == 0 ? -32768 : uniform(-scale, scale)));
  }
  for (size_t i = 0; i < m.elements; ++i) {
    m.visible.push_back(uint32_t(std::lower_bound(m.degree.begin(), m.degree.end(), uint32_t(i)) - m.degree.begin()));
    m.out_first.push_back(m.out_weights.size());
    for (int o = 0; o < 2; ++o) {
      m.out_bias.push_back(uniform(-(int64_t(1) << 40), int64_t(1) << 40));
      for (size_t t = 0; t < m.visible[i] + i; ++t)
        m.out_weights.push_back(int16_t(i % 7 == 0 ? -32768 : uniform(-32768, 32767)));
    }
  }
  std::vector<std::vector<uint8_t>> samples = {std::vector<uint8_t>(600, 0), std::vector<uint8_t>(600, 255),
                                               std::vector<uint8_t>(600, 128)};
  for (int r = 0; r < 3; ++r) {
    samples.emplace_back();
    for (int j = 0; j < 600; ++j) samples.back().push_back(uint8_t(uniform(0, 255)));
  }
  libsplit::codec::ContextModel::Sample s;
  size_t wide = 0, capped = 0;
  for (const auto& codes : samples) {
    m.begin(&s);
    for (size_t i = 0; i < m.elements; ++i) {
      uint8_t p, want_p;
      uint32_t table, want_table;
      m.predict(&s, i, &p, &table);
      reference_predict(m, codes, i, &want_p, &want_table);
      ASSERT_EQ(int(p), int(want_p)) << i;
      ASSERT_EQ(table, want_table) << i;
      libsplit::codec::ContextModel::set_code(&s, i, codes[i]);
    }
    wide += s.digits == 3;
    for (uint32_t k = 0; k < m.hidden; ++k) capped += s.h[2][k] == 255 && s.h[1][k] == 255 && s.h[0][k] == 255;
  }
  EXPECT_GE(wide, 4u);   // hidden values of 2^16 and more were summed
  EXPECT_GE(capped, 1u);  // and some at the cap
}

TEST(EntropyCodecs, ContextTablesCodeLosslesslyAndRejectCorruptStreams) {
  const Context c = golden_context();
  // Six tables over different narrow ranges: many residuals escape, some tables are never used.
  std::vector<std::pair<int, std::vector<uint32_t>>> tables;
  for (int t = 0; t < 6; ++t) {
    std::vector<uint64_t> counts(21);
    for (size_t k = 0; k < counts.size(); ++k) counts[k] = 1 + (k * 7 + size_t(t)) % 13;
    tables.emplace_back(100 + 5 * t, libsplit::codec::rans::Table::normalize(counts));
  }
  auto ctx = parse(tables_file(tables, nullptr, &c));
  ASSERT_TRUE(ctx);
  for (uint32_t seed = 0; seed < 20; ++seed) {
    for (int64_t batch : {1, 3}) {  // a batch is whole samples, each modelled on its own
      const Tensor x = gaussian({batch, 2, 3}, seed, 1.0f + float(seed));
      EncodedTensor q8, e;
      ASSERT_TRUE(libsplit::encode(x, kQ8, &q8).ok());
      auto st = libsplit::encode(x, kQ8Rans, &e, ctx.get());
      ASSERT_TRUE(st.ok()) << st.to_string();
      EXPECT_EQ(e.table_version, ctx->version());
      expect_exact_and_safe(q8, e, ctx.get(), seed);
    }
  }
  // Not whole samples of the model: an error naming it.
  EncodedTensor e;
  auto st = libsplit::encode(gaussian({1, 4}, 3), kQ8Rans, &e, ctx.get());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("6-element context model"), std::string::npos) << st.message();
}

TEST(EntropyCodecs, ContextModelSectionIsValidated) {
  const std::vector<std::pair<int, std::vector<uint32_t>>> six(6, {0, {65535, 1}});
  auto expect_error = [](const std::vector<uint8_t>& file, const std::string& needle) {
    auto r = EntropyTables::parse(file.data(), file.size(), "x.tables");
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  Context c = golden_context();
  expect_error(tables_file({{0, {65535, 1}}}, nullptr, &c), "2 groups x 3 bins are not the 1 tables");
  c.degree = {0, 1, 1, 3, 6};
  expect_error(tables_file(six, nullptr, &c), "degree 6, beyond its 6 elements");
  c = golden_context();
  c.degree = {0, 1, 0, 3, 4};
  expect_error(tables_file(six, nullptr, &c), "not sorted by degree (unit 2)");
  c = golden_context();
  c.bm[3] = (int64_t(1) << 40) + 1;
  expect_error(tables_file(six, nullptr, &c), "element 3 has a bias beyond 2^40");
  c = golden_context();
  c.hidden_shift = 41;
  expect_error(tables_file(six, nullptr, &c), "shifts 41, 10 exceed 40");
  c = golden_context();
  c.groups = 7;
  c.bins = 1;
  auto seven = six;
  seven.push_back({0, {65535, 1}});
  expect_error(tables_file(seven, nullptr, &c), "7 groups for 6 elements");
  // Cut anywhere in the section: an error naming what is cut off, never a read past the end.
  const Context golden = golden_context();
  const auto good = tables_file(six, nullptr, &golden);
  const size_t section_start = 12 + 6 * 7;
  for (size_t len = section_start; len < good.size() - 4; ++len) {
    std::vector<uint8_t> f(good.begin(), good.begin() + long(len));
    put32(&f, libsplit::codec::crc32c(f.data(), f.size()));
    expect_error(f, "cut off");
  }
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
