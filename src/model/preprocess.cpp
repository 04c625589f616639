#include "libsplit/preprocess.h"

#include <fstream>
#include <iterator>

#include "common/errors.h"

#ifdef LIBSPLIT_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace libsplit {

using detail::invalid_argument;

Result<Tensor> pixels_to_tensor(const uint8_t* pixels, int height, int width, int channels, const InputSpec& spec) {
  const int64_t c = spec.shape[1], h = spec.shape[2], w = spec.shape[3];
  if (height != h || width != w || channels != c)
    return invalid_argument("image is ", width, "x", height, " with ", channels, " channel(s); the model expects ", w,
                            "x", h, " with ", c, " channel(s)");
  if (!pixels) return invalid_argument("pixel buffer is null");
  Tensor t;
  t.shape = spec.shape;
  t.data.resize(size_t(c * h * w));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t k = 0; k < c; ++k) t.data[size_t((k * h + y) * w + x)] = float(pixels[(y * w + x) * c + k]);
  return t;
}

Status normalize_input(const InputSpec& spec, Tensor* t) {
  if (t->shape.size() != 4 || t->shape[1] != spec.shape[1] || t->shape[2] != spec.shape[2] ||
      t->shape[3] != spec.shape[3])
    return invalid_argument("input shape ", shape_to_string(t->shape), " does not match the model's ",
                            shape_to_string(spec.shape));
  const int64_t c = spec.shape[1], plane = spec.shape[2] * spec.shape[3];
  const int64_t n = t->shape[0];
  for (int64_t b = 0; b < n; ++b)
    for (int64_t k = 0; k < c; ++k) {
      const float mean = spec.mean[size_t(k)], std = spec.std[size_t(k)];
      float* p = t->data.data() + (b * c + k) * plane;
      for (int64_t i = 0; i < plane; ++i) p[i] = (p[i] / 255.0f - mean) / std;
    }
  return {};
}

Result<Tensor> decode_image(const uint8_t* bytes, size_t size, const InputSpec& spec) {
#ifdef LIBSPLIT_WITH_OPENCV
  if (size == 0) return invalid_argument("image is empty");
  cv::Mat raw(1, int(size), CV_8UC1, const_cast<uint8_t*>(bytes));
  const bool gray = spec.channel_order == "gray";
  cv::Mat img;
  try {
    img = cv::imdecode(raw, gray ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
  } catch (const std::exception& e) {
    return invalid_argument("image cannot be decoded: ", e.what());
  }
  if (img.empty()) return invalid_argument("image cannot be decoded (not a PNG, JPEG or BMP OpenCV can read)");
  if (spec.channel_order == "rgb") cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
  if (!img.isContinuous()) img = img.clone();
  return pixels_to_tensor(img.data, img.rows, img.cols, img.channels(), spec);
#else
  return detail::failed_precondition("image decoding needs libsplit built with LIBSPLIT_WITH_OPENCV");
#endif
}

Result<Tensor> load_image_file(const std::string& path, const InputSpec& spec) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return detail::not_found(path, ": cannot open image");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto t = decode_image(bytes.data(), bytes.size(), spec);
  if (!t.ok()) return Status(t.status().code(), path + ": " + t.status().message());
  return t;
}

}  // namespace libsplit
