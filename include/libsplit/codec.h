// The bottleneck codec: how a head's output becomes the bytes of a request and back.
//
// Quantization is the per-tensor asymmetric formula of torchdistill's quantize_tensor (used by
// BottleFit and sc2-benchmark checkpoints), bit-exact on every platform:
//   qmax = 2^bits - 1, scale = (max - min) / qmax,
//   zero_point = trunc(clamp(0 - min / scale, 0, qmax)),
//   q = round_half_even(clamp(zero_point + x / scale, 0, qmax)),   x' = scale * (q - zero_point)
// A constant tensor (max == min) uses scale = |value| / qmax (1 for zero), so it decodes exactly. The per-channel variant applies the same
// formula to each slice along `channel_axis`. Codes of 2 and 4 bits are packed little-end first
// (element i sits in the lowest unused bits of its byte). All functions are pure and thread-safe.
#pragma once

#include "libsplit/export.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "libsplit/status.h"
#include "libsplit/tensor.h"

LIBSPLIT_PUBLIC_BEGIN
namespace libsplit {

// Stable numbering: these values travel on the wire.
enum class CodecKind : uint8_t {
  kFloat32 = 0,          // raw little-endian float32
  kFloat16 = 1,          // IEEE half, round to nearest even
  kQuantPerTensor = 2,   // one scale and zero point
  kQuantPerChannel = 3,  // one scale and zero point per channel (axis 1)
  kImageU8 = 4,          // raw uint8 pixels of the model input; the receiver normalises them
};

struct CodecSpec {
  CodecKind kind = CodecKind::kQuantPerTensor;
  int bits = 8;  // 2, 4 or 8 for the quantized kinds; 32/16/8 for the others

  bool operator==(const CodecSpec& o) const { return kind == o.kind && bits == o.bits; }
  bool operator!=(const CodecSpec& o) const { return !(*this == o); }
};

// Names used in manifests and flags: "f32", "f16", "q8", "q4", "q2" (per tensor),
// "q8c", "q4c", "q2c" (per channel), "u8image".
Result<CodecSpec> parse_codec(const std::string& name);
std::string codec_name(const CodecSpec& spec);

// An encoded tensor: what a request frame carries.
struct EncodedTensor {
  CodecSpec codec;
  std::vector<int64_t> shape;
  std::vector<float> scales;         // quantized kinds: 1 (per tensor) or shape[1] values
  std::vector<uint8_t> zero_points;  // same count as scales; each in [0, 2^bits - 1]
  std::vector<uint8_t> payload;      // packed codes, halves, floats or pixels
};

// Bytes of payload for `elements` values under `spec` (2-bit and 4-bit codes round up to a byte).
size_t payload_size(const CodecSpec& spec, int64_t elements);

// Encodes `tensor` with `spec`. Fails on an unsupported spec or a shape whose element count does
// not match the data; per-channel needs at least 2 dimensions. kImageU8 takes pixel values
// already in [0, 255] (they are rounded and clamped).
Status encode(const Tensor& tensor, const CodecSpec& spec, EncodedTensor* out);

// Decodes back to float32. Validates everything first (payload size, parameter counts, zero
// points in range) and fails with kInvalidArgument rather than reading out of bounds. kImageU8
// decodes to the pixel values (0..255); normalisation belongs to the model's input spec.
Status decode(const EncodedTensor& encoded, Tensor* out);

}  // namespace libsplit
LIBSPLIT_PUBLIC_END
