// Lossless PNG for offloaded inputs (codec "png"): 8-bit greyscale or RGB, non-interlaced, the
// five standard row filters. Our own reader and writer over zlib; the reader accepts any valid
// PNG of that kind (several IDAT chunks, ancillary chunks skipped) and checks every length and
// CRC before use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "libsplit/status.h"

namespace libsplit::codec::png {

// `planar` holds channels x height x width bytes (channel-major, as a [1, C, H, W] tensor);
// channels is 1 (greyscale) or 3 (RGB).
Status encode(const uint8_t* planar, int channels, int height, int width, std::vector<uint8_t>* out);

// Decodes into `planar` (channels x height x width bytes). The image must have exactly these
// dimensions and channel count; anything else, or a malformed stream, is an error naming why.
Status decode(const uint8_t* data, size_t size, int channels, int height, int width, uint8_t* planar);

}  // namespace libsplit::codec::png
