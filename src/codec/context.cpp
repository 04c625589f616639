#include "codec/context.h"

#include "codec/fixed_point.h"

namespace libsplit::codec {

namespace {

// sum_j w_j x_j for |w_j| <= 2^15 and |x_j| <= 255: every product is below 2^23 in magnitude,
// so a block of 256 sums exactly in int32 (256 x 2^15 x 255 < 2^31); blocks add up in int64.
int64_t dot(const int16_t* w, const int16_t* x, size_t n) {
  constexpr size_t kBlock = 256;
  int64_t total = 0;
  for (size_t at = 0; at < n; at += kBlock) {
    const size_t end = at + kBlock < n ? at + kBlock : n;
    int32_t block = 0;
    for (size_t j = at; j < end; ++j) block += int32_t(w[j]) * int32_t(x[j]);
    total += block;
  }
  return total;
}

}  // namespace

void ContextModel::begin(Sample* s) const {
  for (auto& d : s->h) d.assign(hidden, 0);
  s->z.assign(elements, 0);
  s->ready = 0;
  s->digits = 1;
}

void ContextModel::predict(Sample* s, size_t i, uint8_t* prediction, uint32_t* table) const {
  const int16_t* z = s->z.data();
  // The hidden units whose codes are now all known (degree < i).
  for (; s->ready < visible[i]; ++s->ready) {
    const uint32_t k = s->ready;
    const int64_t a = hidden_bias[k] + dot(hidden_weights.data() + hidden_first[k], z, size_t(degree[k]) + 1);
    int64_t h = a > 0 ? a / (int64_t(1) << hidden_shift) : 0;  // a >= 0: the division is a floor
    h = h > kHiddenMax ? kHiddenMax : h;
    s->h[0][k] = int16_t(h & 0xff);
    s->h[1][k] = int16_t((h >> 8) & 0xff);
    s->h[2][k] = int16_t(h >> 16);
    if (h >= (int64_t(1) << 16)) s->digits = 3;
    else if (h >= (int64_t(1) << 8) && s->digits < 2) s->digits = 2;
  }
  const int16_t* w = out_weights.data() + out_first[i];
  const size_t v = visible[i];
  int64_t acc[2];
  for (int o = 0; o < 2; ++o) {
    int64_t hw = 0;  // sum_k w_k h_k, digit by digit, the highest first
    for (int d = s->digits - 1; d >= 0; --d) hw = hw * 256 + dot(w, s->h[d].data(), v);
    w += v;
    const int64_t a = out_bias[2 * i + o] + hw + dot(w, z, i);
    w += i;
    acc[o] = round_shift(a, out_shift);
  }
  *prediction = uint8_t(acc[0] < 0 ? 0 : acc[0] > 255 ? 255 : acc[0]);
  const int64_t bin = acc[1] < 0 ? 0 : acc[1] >= int64_t(bins) ? int64_t(bins) - 1 : acc[1];
  *table = uint32_t(i * groups / elements) * bins + uint32_t(bin);
}

void ContextModel::to_symbols(const uint8_t* codes, size_t n, uint8_t* symbols, uint32_t* tables) const {
  Sample s;
  for (size_t base = 0; base + elements <= n; base += elements) {
    begin(&s);
    for (size_t i = 0; i < elements; ++i) {
      uint8_t p;
      predict(&s, i, &p, &tables[base + i]);
      symbols[base + i] = uint8_t(codes[base + i] - p + 128);
      set_code(&s, i, codes[base + i]);
    }
  }
}

}  // namespace libsplit::codec
