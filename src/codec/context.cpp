#include "codec/context.h"

#include "codec/fixed_point.h"

namespace libsplit::codec {

void ContextModel::begin(Sample* s) const {
  s->h.assign(hidden, 0);
  s->z.assign(elements, 0);
  s->ready = 0;
}

void ContextModel::predict(Sample* s, size_t i, uint8_t* prediction, uint32_t* table) const {
  const int32_t* z = s->z.data();
  // The hidden units whose codes are now all known (degree < i).
  for (; s->ready < visible[i]; ++s->ready) {
    const uint32_t k = s->ready;
    const int16_t* w = hidden_weights.data() + hidden_first[k];
    int64_t a = hidden_bias[k];
    for (uint32_t j = 0; j <= degree[k]; ++j) a += int64_t(w[j]) * z[j];
    const int64_t h = a > 0 ? a / (int64_t(1) << hidden_shift) : 0;  // a >= 0: the division is a floor
    s->h[k] = h > kHiddenMax ? kHiddenMax : h;
  }
  const int16_t* w = out_weights.data() + out_first[i];
  int64_t acc[2];
  for (int o = 0; o < 2; ++o) {
    int64_t a = out_bias[2 * i + o];
    for (uint32_t k = 0; k < visible[i]; ++k) a += int64_t(w[k]) * s->h[k];
    w += visible[i];
    for (size_t j = 0; j < i; ++j) a += int64_t(w[j]) * z[j];
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
