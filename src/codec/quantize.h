// The torchdistill quantization formula on plain float spans (see include/libsplit/codec.h).
// Compiled with -ffp-contract=off so that no fused multiply-add changes a rounding.
#pragma once
#include <cstddef>
#include <cstdint>

namespace libsplit::codec {

struct QuantParams {
  float scale = 1;
  uint8_t zero_point = 0;
};

// Parameters for values [x, x+n) at `bits` (1..8). n must be > 0.
QuantParams choose_params(const float* x, size_t n, int bits);
// Writes n codes (one per byte, unpacked) for x under p.
void quantize(const float* x, size_t n, const QuantParams& p, int bits, uint8_t* codes);
// Writes n floats: scale * (code - zero_point).
void dequantize(const uint8_t* codes, size_t n, const QuantParams& p, float* out);

// Packs n codes of `bits` (2, 4 or 8) into ceil(n * bits / 8) bytes, low bits first.
void pack(const uint8_t* codes, size_t n, int bits, uint8_t* out);
void unpack(const uint8_t* packed, size_t n, int bits, uint8_t* codes);

}  // namespace libsplit::codec
