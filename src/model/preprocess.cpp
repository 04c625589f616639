#include "libsplit/preprocess.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <utility>
#include <vector>

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

namespace {

// Binary PGM (P5) and PPM (P6) with 8-bit samples, read without OpenCV: what a camera driver or
// a test writes, on a device built without image codecs. Header: magic, width, height, maxval
// (1..255), separated by whitespace, '#' comments allowed; then one whitespace byte and the
// pixels, row by row (PPM in RGB order).
Result<Tensor> decode_netpbm(const uint8_t* p, size_t size, const InputSpec& spec) {
  const int channels = p[1] == '5' ? 1 : 3;
  size_t at = 2;
  long fields[3] = {0, 0, 0};
  for (long& v : fields) {
    for (;;) {  // whitespace and comments
      if (at >= size) return invalid_argument("PNM image: header is cut off");
      if (p[at] == '#') {
        while (at < size && p[at] != '\n') ++at;
      } else if (p[at] == ' ' || p[at] == '\t' || p[at] == '\n' || p[at] == '\r') {
        ++at;
      } else {
        break;
      }
    }
    if (p[at] < '0' || p[at] > '9') return invalid_argument("PNM image: header field is not a number");
    while (at < size && p[at] >= '0' && p[at] <= '9') {
      v = v * 10 + (p[at++] - '0');
      if (v > 65535) return invalid_argument("PNM image: header value above 65535");
    }
  }
  const long width = fields[0], height = fields[1], maxval = fields[2];
  if (width < 1 || height < 1) return invalid_argument("PNM image: width and height must be positive");
  if (maxval < 1 || maxval > 255) return invalid_argument("PNM image: maxval ", maxval, " (only 8-bit samples are read)");
  if (at >= size) return invalid_argument("PNM image: no pixel data");
  ++at;  // the single whitespace byte before the pixels
  const size_t need = size_t(width) * size_t(height) * size_t(channels);
  if (size - at < need) return invalid_argument("PNM image: ", need, " pixel bytes expected, ", size - at, " present");
  std::vector<uint8_t> px(p + at, p + at + need);
  if (maxval != 255)
    for (auto& v : px) v = uint8_t(std::min<long>(255, (long(v) * 255 + maxval / 2) / maxval));
  if (channels == 3 && spec.channel_order == "bgr")
    for (size_t i = 0; i < need; i += 3) std::swap(px[i], px[i + 2]);
  return pixels_to_tensor(px.data(), int(height), int(width), channels, spec);
}

}  // namespace

Result<Tensor> decode_image(const uint8_t* bytes, size_t size, const InputSpec& spec) {
  if (size >= 2 && bytes[0] == 'P' && (bytes[1] == '5' || bytes[1] == '6')) return decode_netpbm(bytes, size, spec);
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
  return detail::failed_precondition("decoding this image needs libsplit built with LIBSPLIT_WITH_OPENCV "
                                     "(without it, binary PGM and PPM are read)");
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
