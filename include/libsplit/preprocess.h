// Turning images into model inputs as the manifest's InputSpec says:
// pixels -> (input.preprocess: resize, centre crop) -> NCHW float in [0, 255] ("pixel tensor")
// -> normalised ((p / 255 - mean) / std).
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

// Interleaved (HWC) 8-bit pixels, `channels` of them per pixel in the spec's channel order;
// `channels` must equal the spec's. With spec.preprocess, an image of any size is resized (its
// shorter side to preprocess.resize, the longer to resize * longer / shorter, integer division)
// and centre-cropped to the input's H x W (offsets round((size - crop) / 2), halves to even), as
// torchvision's Resize(int) and CenterCrop do; the resampling is OpenCV's cv::resize on the 8-bit
// image (INTER_AREA, INTER_LINEAR or INTER_NEAREST), or libsplit's own close equivalent in builds
// without OpenCV. Without it, height and width must equal the spec's: no silent resizing.
Result<Tensor> pixels_to_tensor(const uint8_t* pixels, int height, int width, int channels,
                                const InputSpec& spec);
// Normalises a pixel tensor in place.
Status normalize_input(const InputSpec& spec, Tensor* pixels);

// Decodes PNG/JPEG/BMP bytes (OpenCV), converting to the spec's channel count and order (a
// colour model reads gray images as three equal channels and drops alpha), then as
// pixels_to_tensor (resizing and cropping under spec.preprocess).
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
