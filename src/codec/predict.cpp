#include "codec/predict.h"

#include "codec/fixed_point.h"

namespace libsplit::codec {

uint8_t Predictor::predict(const uint8_t* sample, size_t i) const {
  int64_t acc = bias[i];
  const int32_t* w = weights.data() + first[i];
  const uint8_t* c = sample + (i - taps[i]);
  for (uint32_t t = 0; t < taps[i]; ++t) acc += int64_t(w[t]) * c[t];
  const int64_t q = round_shift(acc, 16);
  return uint8_t(q < 0 ? 0 : q > 255 ? 255 : q);
}

void Predictor::to_symbols(const uint8_t* codes, size_t n, uint8_t* symbols) const {
  for (size_t s = 0; s + elements <= n; s += elements)
    for (size_t i = 0; i < elements; ++i)
      symbols[s + i] = uint8_t(codes[s + i] - predict(codes + s, i) + 128);
}

void Predictor::to_codes(const uint8_t* symbols, size_t n, uint8_t* codes) const {
  for (size_t s = 0; s + elements <= n; s += elements)
    for (size_t i = 0; i < elements; ++i)  // predict() reads only codes [s, s + i): already rebuilt
      codes[s + i] = uint8_t(symbols[s + i] + predict(codes + s, i) - 128);
}

}  // namespace libsplit::codec
