// Turning images into model inputs as the manifest's InputSpec says:
// pixels -> NCHW float in [0, 255] ("pixel tensor") -> normalised ((p / 255 - mean) / std).
// The pixel tensor is what an offloading client sends (codec u8image); the server normalises
// with the same function, so local and offloaded runs see identical inputs. Thread-safe.
#pragma once

#include "libsplit/export.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "libsplit/bundle.h"
#include "libsplit/status.h"
#include "libsplit/tensor.h"

LIBSPLIT_PUBLIC_BEGIN
namespace libsplit {

// Interleaved (HWC) 8-bit pixels, `channels` of them per pixel in the spec's channel order.
// Height, width and channels must equal the spec's; there is no silent resizing.
Result<Tensor> pixels_to_tensor(const uint8_t* pixels, int height, int width, int channels,
                                const InputSpec& spec);
// Normalises a pixel tensor in place.
Status normalize_input(const InputSpec& spec, Tensor* pixels);

// Decodes PNG/JPEG/BMP bytes (OpenCV), converting to the spec's channel count and order.
// Binary PGM (P5) and PPM (P6) with 8-bit samples are read by libsplit itself, also in builds
// without OpenCV (PGM gives 1 channel, PPM 3, which must match the spec; no conversion).
// Other formats fail with kFailedPrecondition when built without OpenCV.
Result<Tensor> decode_image(const uint8_t* bytes, size_t size, const InputSpec& spec);
Result<Tensor> load_image_file(const std::string& path, const InputSpec& spec);

// An IDX file (the MNIST family's format; gzip-compressed or not), unsigned-byte data only.
class IdxFile {
 public:
  static Result<IdxFile> open(const std::string& path);
  const std::vector<int64_t>& dims() const { return dims_; }
  int64_t count() const { return dims_.empty() ? 0 : dims_[0]; }
  int64_t record_size() const { return record_size_; }
  // Record i's bytes (record_size() of them). i must be < count().
  const uint8_t* record(int64_t i) const { return data_.data() + i * record_size_; }

 private:
  std::vector<int64_t> dims_;
  int64_t record_size_ = 0;
  std::vector<uint8_t> data_;
};

}  // namespace libsplit
LIBSPLIT_PUBLIC_END
