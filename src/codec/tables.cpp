// The entropy tables file of a split (written by tools/libsplit_tools/tables.py):
//
//   offset  size  field
//   0       4     magic "LSET"
//   4       2     format version (1, 2 or 3)
//   6       2     reserved, 0
//   8       4     table count T, 1..65536
//   12      ...   T tables, each: u8 offset (first code of the range), u16 m = symbols + 1
//                 (2..257), m x u16 frequencies (the range's codes, then the escape), each >= 1,
//                 summing to 65536
//   (version 2 only) the linear predictor of src/codec/predict.h:
//           4     P, the elements of one sample it predicts (0: none, up to 2^24); a tensor
//                 coded with these tables must have a multiple of P elements
//           ...   P entries, each: i32 bias, u32 k = taps (0..i for entry i), k x i32 weights
//   (version 3 only) the context model of src/codec/context.h:
//           4+4+4+4  P elements per sample (1..65536), H hidden units (1..65536), B scale bins,
//                 G element groups (1..P); the table count T must be G * B
//           1+1   hidden_shift, out_shift (0..40)
//           ...   H units, each: u32 degree (non-decreasing, < P), i64 bias, degree + 1 x i16
//           ...   P elements, each: twice (mean, then scale): i64 bias, V_i x i16 (hidden
//                 units of degree < i), i x i16 (codes before i)
//                 every bias within +-2^40
//   end-4   4     CRC-32C of every byte before it: the tables' version
//
// Version 2 with a predictor: the tables code each element's prediction residual (mod 256,
// +128), not the code. Version 3: the same residuals, each with the table the context model
// picks.
//
// All integers little-endian. A tensor of n elements is coded with table i for the values
// [i * n / T, (i + 1) * n / T): per channel when T is the channel count, per element when T = n.
#include "codec/tables.h"

#include <fstream>
#include <iterator>

#include "codec/crc32c.h"
#include "common/errors.h"

namespace libsplit {

using detail::invalid_argument;

namespace {

constexpr int64_t kBiasLimit = int64_t(1) << 40;

// The context model section of a format 3 file, from *at; on success *at is past it.
Status parse_context(const uint8_t* p, size_t* at_io, size_t end, uint32_t table_count, codec::ContextModel* m) {
  size_t at = *at_io;
  auto u16 = [&](size_t i) { return uint32_t(p[i]) | uint32_t(p[i + 1]) << 8; };
  auto u32 = [&](size_t i) { return u16(i) | u16(i + 2) << 16; };
  auto i64 = [&](size_t i) { return int64_t(uint64_t(u32(i)) | uint64_t(u32(i + 4)) << 32); };
  auto cut = [&](auto&&... what) { return invalid_argument("the context model's ", what..., " is cut off"); };
  auto weights = [&](size_t count, std::vector<int16_t>* out) {
    if ((end - at) / 2 < count) return false;
    for (size_t j = 0; j < count; ++j) out->push_back(int16_t(u16(at + 2 * j)));
    at += 2 * count;
    return true;
  };
  if (end - at < 18) return cut("header");
  const uint32_t elements = u32(at), hidden = u32(at + 4), bins = u32(at + 8), groups = u32(at + 12);
  const uint32_t hidden_shift = p[at + 16], out_shift = p[at + 17];
  at += 18;
  if (elements < 1 || elements > 65536) return invalid_argument("context model of ", elements, " elements (expected 1 to 65536)");
  if (hidden < 1 || hidden > 65536) return invalid_argument("context model with ", hidden, " hidden units (expected 1 to 65536)");
  if (groups < 1 || groups > elements) return invalid_argument("context model with ", groups, " groups for ", elements, " elements");
  if (bins < 1 || uint64_t(groups) * bins != table_count)
    return invalid_argument("context model's ", groups, " groups x ", bins, " bins are not the ", table_count, " tables");
  if (hidden_shift > 40 || out_shift > 40) return invalid_argument("context model's shifts ", hidden_shift, ", ", out_shift, " exceed 40");
  m->elements = elements;
  m->hidden = hidden;
  m->bins = bins;
  m->groups = groups;
  m->hidden_shift = hidden_shift;
  m->out_shift = out_shift;
  for (uint32_t k = 0; k < hidden; ++k) {
    if (end - at < 12) return cut("hidden unit ", k, " of ", hidden);
    const uint32_t d = u32(at);
    const int64_t b = i64(at + 4);
    at += 12;
    if (d >= elements) return invalid_argument("context model's hidden unit ", k, " has degree ", d, ", beyond its ", elements, " elements");
    if (k > 0 && d < m->degree.back()) return invalid_argument("context model's hidden units are not sorted by degree (unit ", k, ")");
    if (b < -kBiasLimit || b > kBiasLimit) return invalid_argument("context model's hidden unit ", k, " has a bias beyond 2^40");
    m->degree.push_back(d);
    m->hidden_bias.push_back(b);
    m->hidden_first.push_back(uint32_t(m->hidden_weights.size()));
    if (!weights(size_t(d) + 1, &m->hidden_weights)) return cut("hidden unit ", k, " of ", hidden);
  }
  uint32_t visible = 0;
  for (uint32_t i = 0; i < elements; ++i) {
    while (visible < hidden && m->degree[visible] < i) ++visible;
    m->visible.push_back(visible);
    m->out_first.push_back(m->out_weights.size());
    for (int o = 0; o < 2; ++o) {
      if (end - at < 8) return cut("element ", i, " of ", elements);
      const int64_t b = i64(at);
      at += 8;
      if (b < -kBiasLimit || b > kBiasLimit) return invalid_argument("context model's element ", i, " has a bias beyond 2^40");
      m->out_bias.push_back(b);
      if (!weights(size_t(visible) + i, &m->out_weights)) return cut("element ", i, " of ", elements);
    }
  }
  *at_io = at;
  return {};
}

}  // namespace

EntropyTables::EntropyTables(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EntropyTables::~EntropyTables() = default;
uint32_t EntropyTables::version() const { return impl_->version; }
size_t EntropyTables::count() const { return impl_->tables.size(); }

Status EntropyTables::check_elements(int64_t n) const {
  const auto& t = *impl_;
  if (!t.context.empty()) {  // the context model picks each element's table
    if (n <= 0 || uint64_t(n) % t.context.elements != 0)
      return invalid_argument(n, " elements are not whole samples of the tables' ", t.context.elements,
                              "-element context model");
    return {};
  }
  if (n <= 0 || uint64_t(n) % count() != 0)
    return invalid_argument(n, " elements cannot be split among ", count(), " tables");
  if (!t.predictor.empty() && uint64_t(n) % t.predictor.elements != 0)
    return invalid_argument(n, " elements are not whole samples of the tables' ", t.predictor.elements,
                            "-element predictor");
  return {};
}

Result<std::shared_ptr<const EntropyTables>> EntropyTables::parse(const uint8_t* p, size_t size,
                                                                  const std::string& origin) {
  auto bad = [&](auto&&... what) { return invalid_argument(origin, ": ", what...); };
  auto u16 = [&](size_t at) { return uint32_t(p[at]) | uint32_t(p[at + 1]) << 8; };
  auto u32 = [&](size_t at) { return u16(at) | u16(at + 2) << 16; };
  if (size < 16) return bad("is ", size, " bytes, too short for an entropy tables file");
  if (p[0] != 'L' || p[1] != 'S' || p[2] != 'E' || p[3] != 'T') return bad("magic is not \"LSET\"");
  const uint32_t format = u16(4);
  if (format < 1 || format > 3) return bad("format version ", format, " is not supported (expected 1, 2 or 3)");
  const uint32_t stored = u32(size - 4);
  const uint32_t crc = codec::crc32c(p, size - 4);
  if (stored != crc) return detail::data_loss(origin, ": CRC-32C mismatch (the file is corrupt)");
  const uint32_t count = u32(8);
  if (count < 1 || count > 65536) return bad("table count ", count, " is outside [1, 65536]");
  auto impl = std::make_unique<Impl>();
  impl->version = crc;
  impl->tables.reserve(count);
  size_t at = 12;
  const size_t end = size - 4;
  for (uint32_t i = 0; i < count; ++i) {
    if (at + 3 > end) return bad("table ", i, " of ", count, " is cut off");
    const int offset = p[at];
    const uint32_t m = u16(at + 1);
    at += 3;
    if (m < 2 || m > 257) return bad("table ", i, " has ", m, " frequencies (expected 2 to 257)");
    if (at + 2 * size_t(m) > end) return bad("table ", i, " of ", count, " is cut off");
    std::vector<uint32_t> freqs(m);
    for (uint32_t k = 0; k < m; ++k) freqs[k] = u16(at + 2 * k);
    at += 2 * size_t(m);
    auto t = codec::rans::Table::create(offset, freqs, /*with_decoder=*/false);
    if (!t.ok()) return bad("table ", i, ": ", t.status().message());
    impl->tables.push_back(std::move(*t));
  }
  if (format == 2) {
    if (at + 4 > end) return bad("the predictor's element count is cut off");
    const uint32_t elements = u32(at);
    at += 4;
    if (elements > (1u << 24)) return bad("predictor of ", elements, " elements is larger than 2^24");
    auto& pr = impl->predictor;
    pr.elements = elements;
    for (uint32_t i = 0; i < elements; ++i) {
      if (at + 8 > end) return bad("predictor entry ", i, " of ", elements, " is cut off");
      pr.bias.push_back(int32_t(u32(at)));
      const uint32_t taps = u32(at + 4);
      at += 8;
      if (taps > i) return bad("predictor entry ", i, " reads ", taps, " preceding codes, more than the ", i, " before it");
      if ((end - at) / 4 < taps) return bad("predictor entry ", i, " of ", elements, " is cut off");
      pr.first.push_back(uint32_t(pr.weights.size()));
      pr.taps.push_back(taps);
      for (uint32_t t = 0; t < taps; ++t) pr.weights.push_back(int32_t(u32(at + 4 * t)));
      at += 4 * size_t(taps);
    }
  }
  if (format == 3) {
    Status st = parse_context(p, &at, end, count, &impl->context);
    if (!st.ok()) return bad(st.message());
  }
  if (at != end) return bad(end - at, " bytes after the last table");
  for (const auto& t : impl->tables) impl->pointers.push_back(&t);
  return std::shared_ptr<const EntropyTables>(new EntropyTables(std::move(impl)));
}

Result<std::shared_ptr<const EntropyTables>> EntropyTables::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return detail::not_found("entropy tables file ", path, " cannot be opened");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse(bytes.data(), bytes.size(), path);
}

}  // namespace libsplit
