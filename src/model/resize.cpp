#include "model/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace libsplit::detail {

bool parse_interpolation(const std::string& name, Interpolation* out) {
  if (name == "area") *out = Interpolation::kArea;
  else if (name == "bilinear") *out = Interpolation::kBilinear;
  else if (name == "nearest") *out = Interpolation::kNearest;
  else return false;
  return true;
}

namespace {

constexpr int kCoefBits = 11;  // OpenCV's INTER_RESIZE_COEF_BITS: weights in 1/2048
constexpr int kCoefScale = 1 << kCoefBits;

// float -> short as OpenCV's saturate_cast<short>(float): round half to even (the default
// rounding mode), then saturate.
int16_t round_to_short(float v) {
  const float r = std::nearbyint(v);
  return int16_t(std::clamp(r, -32768.0f, 32767.0f));
}

// One destination index of a two-tap interpolation: source indices (in range) and weights in
// 1/2048.
struct Taps {
  int s0, s1;
  int16_t w0, w1;
};

// The two taps of each destination index along one axis, with OpenCV's coefficients: half-pixel
// centres for bilinear, or the coverage-based fraction of its INTER_AREA emulation. `reset_borders`:
// the horizontal pass, where OpenCV sets the fraction to 0 at both borders; vertically it keeps
// the fraction and only clamps the rows (the same value up to the weights' rounding).
std::vector<Taps> linear_taps(int src, int dst, bool area_mode, bool reset_borders) {
  const double inv_scale = double(dst) / src, scale = 1. / inv_scale;
  std::vector<Taps> taps(static_cast<size_t>(dst));
  for (int d = 0; d < dst; ++d) {
    float f;
    int s;
    if (!area_mode) {
      f = float((d + 0.5) * scale - 0.5);
      s = int(std::floor(f));
      f -= float(s);
    } else {
      s = int(std::floor(d * scale));
      f = float((d + 1) - (s + 1) * inv_scale);
      f = f <= 0 ? 0.f : f - std::floor(f);
    }
    if (reset_borders) {
      if (s < 0) f = 0, s = 0;
      if (s >= src - 1) f = 0, s = src - 1;
    }
    Taps& t = taps[size_t(d)];
    t.s0 = std::clamp(s, 0, src - 1);
    t.s1 = std::clamp(s + 1, 0, src - 1);
    t.w0 = round_to_short((1.f - f) * kCoefScale);
    t.w1 = round_to_short(f * kCoefScale);
  }
  return taps;
}

void resize_linear(const uint8_t* src, int src_h, int src_w, int cn, uint8_t* dst, int dst_h, int dst_w, bool area_mode) {
  const auto xt = linear_taps(src_w, dst_w, area_mode, true);
  const auto yt = linear_taps(src_h, dst_h, area_mode, false);
  const size_t row = size_t(dst_w) * size_t(cn);
  std::vector<int32_t> h0(row), h1(row);
  // A source row interpolated horizontally: values in 1/2048.
  auto horizontal = [&](int sy, int32_t* out) {
    const uint8_t* s = src + size_t(sy) * size_t(src_w) * size_t(cn);
    for (int dx = 0; dx < dst_w; ++dx) {
      const Taps& t = xt[size_t(dx)];
      for (int c = 0; c < cn; ++c)
        out[size_t(dx) * size_t(cn) + size_t(c)] = t.w0 * s[t.s0 * cn + c] + t.w1 * s[t.s1 * cn + c];
    }
  };
  int row0 = -1, row1 = -1;
  for (int dy = 0; dy < dst_h; ++dy) {
    const Taps& t = yt[size_t(dy)];
    if (t.s0 != row0) {  // rows move down: the previous second row is often this first one
      if (t.s0 == row1) {
        std::swap(h0, h1);
        row0 = row1;
        row1 = -1;
      } else {
        horizontal(t.s0, h0.data());
        row0 = t.s0;
      }
    }
    if (t.s1 != row1) {
      horizontal(t.s1, h1.data());
      row1 = t.s1;
    }
    // The vertical sum with OpenCV's arithmetic for 8-bit images: each row's value shifted to 16
    // bits, the high half of its product with the weight, then a rounding shift by 2 (not the
    // exactly rounded (w0 * a + w1 * b + 2^21) >> 22, which differs on about 1 value in 8).
    uint8_t* d = dst + size_t(dy) * row;
    for (size_t i = 0; i < row; ++i) {
      const int v = (((h0[i] >> 4) * t.w0) >> 16) + (((h1[i] >> 4) * t.w1) >> 16);
      d[i] = uint8_t(std::clamp((v + 2) >> 2, 0, 255));
    }
  }
}

// The exact area weights along one axis when shrinking (src >= dst), in units of 1/dst of a
// source pixel: destination index d covers [d*src, (d+1)*src), source index s covers
// [s*dst, (s+1)*dst); a weight is their overlap. Each destination index's weights sum to src.
struct AreaTap {
  int d, s;
  int64_t w;
};
std::vector<AreaTap> area_taps(int src, int dst) {
  std::vector<AreaTap> taps;
  for (int d = 0; d < dst; ++d) {
    const int64_t lo = int64_t(d) * src, hi = int64_t(d + 1) * src;
    for (int64_t s = lo / dst; s * dst < hi; ++s) {
      const int64_t w = std::min(hi, (s + 1) * dst) - std::max(lo, s * dst);
      if (w > 0) taps.push_back({d, int(s), w});
    }
  }
  return taps;
}

void resize_area_shrink(const uint8_t* src, int src_h, int src_w, int cn, uint8_t* dst, int dst_h, int dst_w) {
  const auto xt = area_taps(src_w, dst_w), yt = area_taps(src_h, dst_h);
  const size_t row = size_t(dst_w) * size_t(cn);
  const int64_t den = int64_t(src_w) * src_h;  // the sum of a destination pixel's weights
  std::vector<int64_t> h(row), acc(row);
  // Rounding to nearest, halves as OpenCV takes them: up when halving both sides (its 2x2 box
  // filter adds 2 before the shift), else to even (its float sums end in cvRound).
  const bool halves_up = src_w == 2 * dst_w && src_h == 2 * dst_h;
  size_t k = 0;
  for (int dy = 0; dy < dst_h; ++dy) {
    std::fill(acc.begin(), acc.end(), 0);
    for (; k < yt.size() && yt[k].d == dy; ++k) {
      const uint8_t* s = src + size_t(yt[k].s) * size_t(src_w) * size_t(cn);
      std::fill(h.begin(), h.end(), 0);
      for (const AreaTap& t : xt)
        for (int c = 0; c < cn; ++c) h[size_t(t.d) * size_t(cn) + size_t(c)] += t.w * s[t.s * cn + c];
      for (size_t i = 0; i < row; ++i) acc[i] += yt[k].w * h[i];
    }
    uint8_t* d = dst + size_t(dy) * row;
    for (size_t i = 0; i < row; ++i) {
      const int64_t q = acc[i] / den, twice_r = 2 * (acc[i] % den);
      d[i] = uint8_t(q + (twice_r > den || (twice_r == den && (halves_up || (q & 1)))));
    }
  }
}

void resize_nearest(const uint8_t* src, int src_h, int src_w, int cn, uint8_t* dst, int dst_h, int dst_w) {
  const double ifx = 1. / (double(dst_w) / src_w), ify = 1. / (double(dst_h) / src_h);
  std::vector<int> xs(static_cast<size_t>(dst_w));
  for (int x = 0; x < dst_w; ++x) xs[size_t(x)] = std::min(int(std::floor(x * ifx)), src_w - 1);
  for (int y = 0; y < dst_h; ++y) {
    const int sy = std::min(int(std::floor(y * ify)), src_h - 1);
    const uint8_t* s = src + size_t(sy) * size_t(src_w) * size_t(cn);
    uint8_t* d = dst + size_t(y) * size_t(dst_w) * size_t(cn);
    for (int x = 0; x < dst_w; ++x) std::memcpy(d + size_t(x) * size_t(cn), s + size_t(xs[size_t(x)]) * size_t(cn), size_t(cn));
  }
}

}  // namespace

void resize_u8(const uint8_t* src, int src_h, int src_w, int channels, uint8_t* dst, int dst_h, int dst_w,
               Interpolation mode) {
  if (src_h == dst_h && src_w == dst_w) {
    std::memcpy(dst, src, size_t(src_h) * size_t(src_w) * size_t(channels));
    return;
  }
  switch (mode) {
    case Interpolation::kNearest:
      resize_nearest(src, src_h, src_w, channels, dst, dst_h, dst_w);
      return;
    case Interpolation::kBilinear:
      resize_linear(src, src_h, src_w, channels, dst, dst_h, dst_w, /*area_mode=*/false);
      return;
    case Interpolation::kArea:
      if (src_h >= dst_h && src_w >= dst_w) resize_area_shrink(src, src_h, src_w, channels, dst, dst_h, dst_w);
      else resize_linear(src, src_h, src_w, channels, dst, dst_h, dst_w, /*area_mode=*/true);
      return;
  }
}

}  // namespace libsplit::detail
