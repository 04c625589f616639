// Linear prediction of a bottleneck's 8-bit codes from the codes before them, so that rANS
// codes the (smaller, more peaked) prediction residuals instead of the codes. Lossless: the
// decoder rebuilds each code from its residual and the prediction made from codes it already
// has. Integer arithmetic only (Q16 weights, 64-bit sums), so every machine predicts alike.
//
// For element i of a sample (i in [0, elements)), with codes c:
//   acc  = bias[i] + sum_{t < taps[i]} weight[i][t] * c[i - taps[i] + t]      (int64)
//   p    = clamp(floor((acc + 2^15) / 2^16), 0, 255)
//   symbol = (c[i] - p + 128) mod 256,        c[i] = (symbol + p - 128) mod 256
// A tensor of n = k * elements codes is k samples, each predicted on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace libsplit::codec {

struct Predictor {
  size_t elements = 0;            // 0: no predictor
  std::vector<int32_t> bias;      // per element, Q16
  std::vector<uint32_t> first;    // per element: index of its first weight in `weights`
  std::vector<uint32_t> taps;     // per element: how many preceding codes it reads (<= i)
  std::vector<int32_t> weights;   // Q16, per element in order, oldest preceding code first

  bool empty() const { return elements == 0; }
  uint8_t predict(const uint8_t* sample, size_t i) const;
  // n must be a multiple of elements.
  void to_symbols(const uint8_t* codes, size_t n, uint8_t* symbols) const;
  void to_codes(const uint8_t* symbols, size_t n, uint8_t* codes) const;
};

}  // namespace libsplit::codec
