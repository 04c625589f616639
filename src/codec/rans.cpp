#include "codec/rans.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "common/errors.h"

namespace libsplit::codec::rans {
namespace {

constexpr uint64_t kLow = 1ull << 31;  // the state stays in [kLow, kLow << 32) between symbols

// High 64 bits of a 64x64-bit product.
#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 u128;
uint64_t mul_hi(uint64_t a, uint64_t b) { return uint64_t(u128(a) * b >> 64); }
#else
uint64_t mul_hi(uint64_t a, uint64_t b) {
  const uint64_t a0 = uint32_t(a), a1 = a >> 32, b0 = uint32_t(b), b1 = b >> 32;
  const uint64_t mid = (a0 * b0 >> 32) + uint32_t(a1 * b0) + uint32_t(a0 * b1);
  return a1 * b1 + (a1 * b0 >> 32) + (a0 * b1 >> 32) + (mid >> 32);
}
#endif

void put_u32(std::vector<uint32_t>* words, uint64_t x) { words->push_back(uint32_t(x)); }

uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

}  // namespace

Result<Table> Table::create(int offset, const std::vector<uint32_t>& freqs, bool with_decoder) {
  if (freqs.size() < 1 || freqs.size() > 257)
    return detail::invalid_argument("rANS table needs 1 to 257 frequencies (symbols + escape), got ", freqs.size());
  const size_t n = freqs.size() - 1;
  if (offset < 0 || offset + n > 256)
    return detail::invalid_argument("rANS table range [", offset, ", ", offset + int(n), ") is outside [0, 256)");
  uint64_t sum = 0;
  for (size_t i = 0; i < freqs.size(); ++i) {
    if (freqs[i] == 0 || freqs[i] > kScale)
      return detail::invalid_argument("rANS frequency ", i, " is ", freqs[i], " (must be in [1, ", kScale, "])");
    sum += freqs[i];
  }
  if (sum != kScale) return detail::invalid_argument("rANS frequencies sum to ", sum, ", not ", kScale);
  Table t;
  t.offset_ = offset;
  t.freqs_ = freqs;
  t.starts_.resize(freqs.size());
  t.enc_.resize(freqs.size());
  uint32_t start = 0;
  for (size_t s = 0; s < freqs.size(); ++s) {
    const uint32_t f = freqs[s];
    t.starts_[s] = start;
    EncSymbol& e = t.enc_[s];
    e.x_max = ((kLow >> kScaleBits) << 32) * f;
    e.cmpl_freq = kScale - f;
    if (f < 2) {
      // x / 1 = x: multiply by 2^64 - 1 and take the high word, plus a bias that corrects it.
      e.rcp_freq = ~0ull;
      e.rcp_shift = 0;
      e.bias = start + kScale - 1;
    } else {
      // Alverson's reciprocal: ceil(2^(63 + shift) / f) with f <= 2^shift, so
      // q = mul_hi(x, rcp) >> (shift - 1) equals x / f for every 63-bit x.
      uint32_t shift = 0;
      while (f > (1u << shift)) ++shift;
      uint64_t x0 = f - 1, x1 = 1ull << (shift + 31);
      const uint64_t t1 = x1 / f;
      x0 += (x1 % f) << 32;
      const uint64_t t0 = x0 / f;
      e.rcp_freq = t0 + (t1 << 32);
      e.rcp_shift = shift - 1;
      e.bias = start;
    }
    start += f;
  }
  if (with_decoder) t.build_decoder();
  return t;
}

void Table::build_decoder() {
  if (has_decoder()) return;
  start_freq_.resize(freqs_.size());
  for (size_t s = 0; s < freqs_.size(); ++s) start_freq_[s] = starts_[s] | (freqs_[s] - 1) << 16;
  bucket_first_.resize(kBuckets);
  constexpr uint32_t kBucketSlots = kScale / kBuckets;
  size_t s = 0;
  for (uint32_t b = 0; b < kBuckets; ++b) {
    while (starts_[s] + freqs_[s] <= b * kBucketSlots) ++s;
    bucket_first_[b] = uint16_t(s);
  }
}

std::vector<uint32_t> Table::normalize(const std::vector<uint64_t>& counts) {
  const size_t k = counts.size();
  std::vector<uint32_t> f(k, 1);
  if (k == 0 || k > kScale) return {};
  const uint64_t total = std::accumulate(counts.begin(), counts.end(), uint64_t(0));
  const uint32_t spare = kScale - uint32_t(k);  // what is left after the minimum of 1 each
  if (total == 0) {
    for (size_t i = 0; i < spare; ++i) ++f[i % k];
    return f;
  }
  // Largest remainder: floor shares first, then one more to the largest fractional parts.
  std::vector<std::pair<double, size_t>> rest(k);
  uint32_t given = 0;
  for (size_t i = 0; i < k; ++i) {
    const double share = double(counts[i]) / double(total) * spare;
    const uint32_t whole = uint32_t(share);
    f[i] += whole;
    given += whole;
    rest[i] = {share - whole, i};
  }
  std::sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  for (size_t i = 0; given < spare; ++i, ++given) ++f[rest[i % k].second];
  return f;
}

namespace {

// One symbol into the state, backwards (the decoder reads forwards).
inline void encode_one(uint64_t& x, std::vector<uint32_t>* words, const Table::EncSymbol* enc, int lo, size_t count,
                       int v) {
  size_t s = size_t(v - lo);
  if (v < lo || s >= count) {
    // The escape, then the code itself in kRawBits flat: pushed first, decoded second.
    constexpr uint64_t kRawMax = (kLow >> kRawBits) << 32;
    if (x >= kRawMax) {
      put_u32(words, x);
      x >>= 32;
    }
    x = (x << kRawBits) + uint64_t(v);
    s = count;
  }
  const Table::EncSymbol& e = enc[s];
  if (x >= e.x_max) {
    put_u32(words, x);
    x >>= 32;
  }
  const uint64_t q = mul_hi(x, e.rcp_freq) >> e.rcp_shift;
  x = x + e.bias + q * e.cmpl_freq;
}

void write_stream(uint64_t x, const std::vector<uint32_t>& words, std::vector<uint8_t>* out) {
  const size_t base = out->size();
  out->resize(base + 8 + 4 * words.size());
  uint8_t* p = out->data() + base;
  for (int b = 0; b < 8; ++b) *p++ = uint8_t(x >> (8 * b));
  for (size_t w = words.size(); w-- > 0;) {
    const uint32_t v = words[w];
    p[0] = uint8_t(v);
    p[1] = uint8_t(v >> 8);
    p[2] = uint8_t(v >> 16);
    p[3] = uint8_t(v >> 24);
    p += 4;
  }
}

}  // namespace

// What decoding one symbol with a table reads, hoisted out of the symbol loop.
struct DecodeView {
  const uint32_t* start_freq;  // start | (freq - 1) << 16
  const uint16_t* bucket_first;
  uint32_t escape;
  int offset;
};

namespace {

// The stream's reader: the state and the next word. Every read is bounds-checked.
struct Reader {
  uint64_t x = 0;
  const uint8_t* p = nullptr;
  const uint8_t* end = nullptr;

  Status start(const uint8_t* data, size_t size) {
    if (size < 8) return detail::data_loss("rANS stream of ", size, " bytes is shorter than its 8-byte state");
    if ((size - 8) % 4 != 0) return detail::data_loss("rANS stream of ", size, " bytes is not 8 + a multiple of 4");
    for (int b = 0; b < 8; ++b) x |= uint64_t(data[b]) << (8 * b);
    if (x < kLow || x >= (kLow << 32)) return detail::data_loss("rANS stream starts in an impossible state");
    p = data + 8;
    end = data + size;
    return {};
  }
  // Refills the state after it fell below kLow; false when the stream has no word left.
  bool refill() {
    if (x >= kLow) return true;
    if (end - p < 4) return false;
    x = (x << 32) | get_u32(p);
    p += 4;
    return true;
  }
  // One symbol (the code, after an escape's bypass bits); false when the stream is cut short.
  inline bool next(const DecodeView& t, uint8_t* value) {
    const uint32_t slot = uint32_t(x) & (kScale - 1);
    uint32_t s = t.bucket_first[slot >> (kScaleBits - Table::kBucketBits)];
    uint32_t e = t.start_freq[s];
    // On to the symbol whose slots hold `slot`: it exists, the last symbol ends at kScale.
    while (slot > (e & 0xffff) + (e >> 16)) e = t.start_freq[++s];
    x = uint64_t((e >> 16) + 1) * (x >> kScaleBits) + slot - (e & 0xffff);
    if (!refill()) return false;
    if (s == t.escape) {  // the code follows in kRawBits flat
      *value = uint8_t(x & ((1u << kRawBits) - 1));
      x >>= kRawBits;
      return refill();
    }
    *value = uint8_t(t.offset + int(s));
    return true;
  }
  Status finish() const {
    if (p != end) return detail::data_loss("rANS stream has ", end - p, " bytes after its last symbol");
    if (x != kLow) return detail::data_loss("rANS stream is corrupt (final state mismatch)");
    return {};
  }
};

Status check_decoders(const std::vector<const Table*>& tables) {
  if (tables.empty()) return detail::invalid_argument("rANS decode needs at least one table");
  for (const Table* t : tables)
    if (!t->has_decoder()) return detail::failed_precondition("rANS decode: a table was created without its decoder");
  return {};
}

}  // namespace

DecodeView Table::view() const {
  return {start_freq_.data(), bucket_first_.data(), uint32_t(symbols()), offset_};
}

void Coder::encode(const uint8_t* values, size_t n, const std::vector<const Table*>& tables, size_t plane,
                   std::vector<uint8_t>* out) {
  std::vector<uint32_t> words;
  words.reserve(n / 2 + 4);
  uint64_t x = kLow;
  const size_t nt = tables.size();
  const size_t per = plane == 0 ? n + 1 : plane;
  // Backwards, so that the decoder reads forwards; one table per plane of `per` values.
  for (size_t seg_end = n; seg_end > 0;) {
    const size_t seg = (seg_end - 1) / per;
    const Table& t = *tables[seg % nt];
    const size_t seg_begin = seg * per;
    for (size_t i = seg_end; i-- > seg_begin;) encode_one(x, &words, t.enc_.data(), t.offset_, t.symbols(), values[i]);
    seg_end = seg_begin;
  }
  write_stream(x, words, out);
}

void Coder::encode_indexed(const uint8_t* values, const uint32_t* table_index, size_t n,
                           const std::vector<const Table*>& tables, std::vector<uint8_t>* out) {
  std::vector<uint32_t> words;
  words.reserve(n / 2 + 4);
  uint64_t x = kLow;
  for (size_t i = n; i-- > 0;) {
    const Table& t = *tables[table_index[i]];
    encode_one(x, &words, t.enc_.data(), t.offset_, t.symbols(), values[i]);
  }
  write_stream(x, words, out);
}

Status Coder::decode(const uint8_t* data, size_t size, size_t n, const std::vector<const Table*>& tables,
                     size_t plane, uint8_t* values) {
  LIBSPLIT_RETURN_IF_ERROR(check_decoders(tables));
  Reader r;
  LIBSPLIT_RETURN_IF_ERROR(r.start(data, size));
  const size_t nt = tables.size();
  const size_t per = plane == 0 ? n + 1 : plane;
  for (size_t seg = 0, begin = 0; begin < n; ++seg, begin += per) {
    const DecodeView t = tables[seg % nt]->view();
    const size_t stop = std::min(n, begin + per);
    for (size_t i = begin; i < stop; ++i)
      if (!r.next(t, &values[i])) return detail::data_loss("rANS stream truncated at symbol ", i, " of ", n);
    if (stop == n) break;
  }
  return r.finish();
}

Status Coder::decode_adaptive(const uint8_t* data, size_t size, size_t n, const std::vector<const Table*>& tables,
                              SymbolContext* context) {
  LIBSPLIT_RETURN_IF_ERROR(check_decoders(tables));
  Reader r;
  LIBSPLIT_RETURN_IF_ERROR(r.start(data, size));
  for (size_t i = 0; i < n; ++i) {
    const size_t k = context->table_for(i);
    if (k >= tables.size())
      return detail::internal_error("rANS decode: table ", k, " asked for, ", tables.size(), " exist");
    uint8_t v;
    if (!r.next(tables[k]->view(), &v)) return detail::data_loss("rANS stream truncated at symbol ", i, " of ", n);
    context->decoded(i, v);
  }
  return r.finish();
}

}  // namespace libsplit::codec::rans
