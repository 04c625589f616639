#include "codec/quantize.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

namespace libsplit::codec {

QuantParams choose_params(const float* x, size_t n, int bits) {
  const float qmin = 0.0f;
  const float qmax = float((1u << bits) - 1u);
  // Eight running minima and maxima (the compiler keeps them in vector registers), then the
  // same comparison across them: the result is the sequential loop's, a NaN after x[0] ignored.
  constexpr size_t kLanes = 8;
  float lo = x[0], hi = x[0];
  size_t i = 1;
  if (n >= 2 * kLanes) {
    float los[kLanes], his[kLanes];
    for (size_t j = 0; j < kLanes; ++j) los[j] = his[j] = x[j];
    for (i = kLanes; i + kLanes <= n; i += kLanes)
      for (size_t j = 0; j < kLanes; ++j) {
        los[j] = x[i + j] < los[j] ? x[i + j] : los[j];
        his[j] = x[i + j] > his[j] ? x[i + j] : his[j];
      }
    lo = los[0];
    hi = his[0];
    for (size_t j = 1; j < kLanes; ++j) {
      lo = std::min(lo, los[j]);
      hi = std::max(hi, his[j]);
    }
  }
  for (; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  QuantParams p;
  p.scale = (hi - lo) / (qmax - qmin);
  if (p.scale == 0.0f || !std::isfinite(p.scale)) {
    // Constant tensor: the reference formula divides by zero. Pick the scale that makes the
    // constant exactly representable (code qmax for a positive value, 0 for a negative one).
    const float v = std::abs(lo);
    p.scale = (v > 0.0f && std::isfinite(v)) ? v / qmax : 1.0f;
  }
  // Python computes `qmin - min_val / scale` on a float32 tensor, then int() truncates.
  const float initial = qmin - lo / p.scale;
  float zp;
  if (initial < qmin) zp = qmin;
  else if (initial > qmax) zp = qmax;
  else zp = initial;
  p.zero_point = uint8_t(std::trunc(zp));
  return p;
}

namespace {

// q rounded half to even, for 0 <= q <= 255 (as nearbyint in the default rounding mode, like
// torch). Where float arithmetic runs in float precision (FLT_EVAL_METHOD 0), (q + 2^23) - 2^23
// gives exactly that without a libm call, so the loop calling it vectorizes (nearbyint is a call
// on baseline x86-64).
inline float round_half_even(float q) {
#if FLT_EVAL_METHOD == 0
  constexpr float kRound = 8388608.0f;
  return (q + kRound) - kRound;
#else
  return std::nearbyint(q);
#endif
}

}  // namespace

void quantize(const float* x, size_t n, const QuantParams& p, int bits, uint8_t* codes) {
  const float qmax = float((1u << bits) - 1u);
  const float zp = float(p.zero_point);
  const float scale = p.scale;
  for (size_t i = 0; i < n; ++i) {
    float q = zp + x[i] / scale;
    q = q > 0.0f ? q : 0.0f;  // NaN and below zero: 0
    q = q < qmax ? q : qmax;
    codes[i] = uint8_t(int32_t(round_half_even(q)));
  }
}

void dequantize(const uint8_t* codes, size_t n, const QuantParams& p, float* out) {
  const float zp = float(p.zero_point);
  for (size_t i = 0; i < n; ++i) out[i] = p.scale * (float(codes[i]) - zp);
}

void pack(const uint8_t* codes, size_t n, int bits, uint8_t* out) {
  if (bits == 8) {
    std::memcpy(out, codes, n);
    return;
  }
  const size_t per_byte = size_t(8 / bits);
  const uint8_t mask = uint8_t((1u << bits) - 1u);
  const size_t bytes = (n + per_byte - 1) / per_byte;
  std::memset(out, 0, bytes);
  for (size_t i = 0; i < n; ++i)
    out[i / per_byte] |= uint8_t((codes[i] & mask) << ((i % per_byte) * size_t(bits)));
}

void unpack(const uint8_t* packed, size_t n, int bits, uint8_t* codes) {
  if (bits == 8) {
    std::memcpy(codes, packed, n);
    return;
  }
  const size_t per_byte = size_t(8 / bits);
  const uint8_t mask = uint8_t((1u << bits) - 1u);
  for (size_t i = 0; i < n; ++i)
    codes[i] = uint8_t((packed[i / per_byte] >> ((i % per_byte) * size_t(bits))) & mask);
}

}  // namespace libsplit::codec
