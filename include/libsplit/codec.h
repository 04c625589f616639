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
#include <memory>
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
  // Entropy-coded kinds (protocol 1.1): a variable-length payload.
  kQuantRans = 5,    // "q8rans": the q8 codes, rANS-coded with the split's calibrated tables
  kQuantZstd = 6,    // "q8zstd": the q8 codes, zstd-compressed (the generic baseline)
  kSymbolRans = 7,   // "s8rans": round(x) clamped to [-128, 127] as codes x + 128 (unit step, no
                     // scale: learned variational bottlenecks), rANS-coded with the learned tables
  kImagePng = 8,     // "png": the model input's uint8 pixels as a lossless PNG (offload only;
                     // shape [1, C, H, W] with C = 1 or 3)
};

struct CodecSpec {
  CodecKind kind = CodecKind::kQuantPerTensor;
  int bits = 8;  // 2, 4 or 8 for the quantized kinds; 32/16/8 for the others

  bool operator==(const CodecSpec& o) const { return kind == o.kind && bits == o.bits; }
  bool operator!=(const CodecSpec& o) const { return !(*this == o); }
};

// Names used in manifests and flags: "f32", "f16", "q8", "q4", "q2" (per tensor),
// "q8c", "q4c", "q2c" (per channel), "u8image", "q8rans", "q8zstd", "s8rans", "png".
Result<CodecSpec> parse_codec(const std::string& name);
std::string codec_name(const CodecSpec& spec);
// True for q8rans and s8rans, which need a split's EntropyTables at both ends.
bool needs_tables(const CodecSpec& spec);
// True for the kinds whose payload length depends on the data (q8rans, q8zstd, s8rans, png).
bool is_variable_length(const CodecSpec& spec);
// True for the kinds that carry the model's input pixels rather than a bottleneck (u8image, png).
bool is_image(const CodecSpec& spec);

// Per-channel (or per-element) rANS frequency tables of one split, from the bundle's tables file
// (format in src/codec/tables.cpp), optionally with a linear predictor: the tables then code
// each code's residual from its prediction (lossless either way). version() is the CRC-32C of the file's contents: it travels in
// every entropy-coded frame, and a frame coded with other tables is rejected, not misdecoded.
class LIBSPLIT_API EntropyTables {
 public:
  // Parses a tables file's bytes; `origin` names it in errors. A malformed file is an error that
  // says which field is wrong.
  static Result<std::shared_ptr<const EntropyTables>> parse(const uint8_t* data, size_t size,
                                                            const std::string& origin);
  static Result<std::shared_ptr<const EntropyTables>> load(const std::string& path);
  ~EntropyTables();
  EntropyTables(const EntropyTables&) = delete;
  EntropyTables& operator=(const EntropyTables&) = delete;

  uint32_t version() const;
  size_t count() const;  // number of tables: a tensor of n elements uses each for n / count() values
                         // (unless a context model picks each element's table)
  // Whether a tensor of n elements can be coded with these tables: n > 0, and whole samples of
  // the tables' predictor or context model, or a multiple of count(); an error saying why not.
  Status check_elements(int64_t n) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit EntropyTables(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// An encoded tensor: what a request frame carries.
struct EncodedTensor {
  CodecSpec codec;
  std::vector<int64_t> shape;
  std::vector<float> scales;         // quantized kinds: 1 (per tensor) or shape[1] values
  std::vector<uint8_t> zero_points;  // same count as scales; each in [0, 2^bits - 1]
  std::vector<uint8_t> payload;      // packed codes, halves, floats, pixels or a coded stream
  uint32_t table_version = 0;        // q8rans and s8rans: EntropyTables::version() of the coder
};

// Bytes of payload for `elements` values under `spec` (2-bit and 4-bit codes round up to a byte);
// for the variable-length kinds, the bytes of the uncoded 8-bit codes.
size_t payload_size(const CodecSpec& spec, int64_t elements);

// Encodes `tensor` with `spec`. Fails on an unsupported spec or a shape whose element count does
// not match the data; per-channel needs at least 2 dimensions. kImageU8 takes pixel values
// already in [0, 255] (they are rounded and clamped). q8rans and s8rans need `tables` (whose
// count divides the element count).
Status encode(const Tensor& tensor, const CodecSpec& spec, EncodedTensor* out,
              const EntropyTables* tables = nullptr);

// Decodes back to float32. Validates everything first (payload size, parameter counts, zero
// points in range) and fails with kInvalidArgument rather than reading out of bounds. kImageU8
// decodes to the pixel values (0..255); normalisation belongs to the model's input spec.
// q8rans and s8rans need `tables`; a frame coded with other tables (table_version differs) fails
// with kFailedPrecondition; a truncated or corrupt stream fails with kDataLoss.
Status decode(const EncodedTensor& encoded, Tensor* out, const EntropyTables* tables = nullptr);

}  // namespace libsplit
LIBSPLIT_PUBLIC_END
