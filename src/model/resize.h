// Resampling of 8-bit interleaved images in plain C++, for builds without OpenCV: the three
// modes of the manifest's input.preprocess.interpolation, computed as OpenCV's cv::resize
// computes them for CV_8U images (budget against it measured in tests/test_resize.cpp):
//  - nearest:  source index floor(dst * src_size / dst_size), clamped (OpenCV's INTER_NEAREST,
//              which does not use half-pixel centres);
//  - bilinear: half-pixel centres, src = (dst + 0.5) * scale - 0.5, clamped at the borders, with
//              OpenCV's 11-bit fixed-point weights and its rounding (INTER_LINEAR);
//  - area:     shrinking in both directions, the exact area-weighted average of the source
//              pixels each destination pixel covers (fractional weights at its edges), rounded to
//              nearest (halves as OpenCV: up for an exact halving, else to even); otherwise
//              OpenCV's INTER_AREA emulation, a bilinear interpolation whose weights follow the
//              pixels' coverage.
// Nearest and bilinear are bit-exact with OpenCV 4.6; area differs by one level on a few values
// in 100,000 (OpenCV sums in float), see the test.
// Internal to src/model; preprocess.cpp uses it when built without OpenCV.
#pragma once

#include <cstdint>
#include <string>

namespace libsplit::detail {

enum class Interpolation { kArea, kBilinear, kNearest };

// "area", "bilinear" or "nearest"; false for anything else.
bool parse_interpolation(const std::string& name, Interpolation* out);

// Resizes `src` (src_h x src_w x channels, rows packed) into `dst` (dst_h x dst_w x channels).
// Every size must be >= 1 and channels 1..4; equal sizes copy.
void resize_u8(const uint8_t* src, int src_h, int src_w, int channels, uint8_t* dst, int dst_h, int dst_w,
               Interpolation mode);

}  // namespace libsplit::detail
