// Integer fixed-point helpers shared by the predictors: every machine must compute the same
// value, and right shifts of negative values are implementation-defined before C++20.
#pragma once

#include <cstdint>

namespace libsplit::codec {

// floor(v / 2^q), 0 <= q <= 62.
inline int64_t floor_shift(int64_t v, uint32_t q) {
  const int64_t d = int64_t(1) << q;
  return v >= 0 ? v / d : -((-v + d - 1) / d);
}

// floor((v + 2^(q-1)) / 2^q): v / 2^q rounded, halves up (v itself when q = 0).
inline int64_t round_shift(int64_t v, uint32_t q) { return floor_shift(q > 0 ? v + (int64_t(1) << (q - 1)) : v, q); }

}  // namespace libsplit::codec
