#include "libsplit/preprocess.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "model/resize.h"

#ifdef LIBSPLIT_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace libsplit {

using detail::invalid_argument;

namespace {

// HWC pixels (rows `row_bytes` apart) -> the spec's [1, C, H, W] pixel tensor.
Tensor hwc_to_tensor(const uint8_t* pixels, size_t row_bytes, const InputSpec& spec) {
  const int64_t c = spec.shape[1], h = spec.shape[2], w = spec.shape[3];
  Tensor t;
  t.shape = spec.shape;
  t.data.resize(size_t(c * h * w));
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* row = pixels + size_t(y) * row_bytes;
    for (int64_t x = 0; x < w; ++x)
      for (int64_t k = 0; k < c; ++k) t.data[size_t((k * h + y) * w + x)] = float(row[x * c + k]);
  }
  return t;
}

// input.preprocess on 8-bit pixels: the shorter side resized to p.resize (the longer to
// resize * long / short, integer division, as torchvision's Resize(int)), then the centre
// crop at torchvision's CenterCrop offsets, round((size - crop) / 2) with halves to even.
// OpenCV's cv::resize where libsplit has OpenCV, else resize_u8 (src/model/resize.h).
Result<Tensor> resize_and_crop(const uint8_t* pixels, int height, int width, int channels, const InputSpec& spec) {
  const PreprocessSpec& p = *spec.preprocess;
  detail::Interpolation mode;
  if (!detail::parse_interpolation(p.interpolation, &mode))
    return invalid_argument("input.preprocess.interpolation \"", p.interpolation, "\" is not area, bilinear or nearest");
  // What parse_manifest checks, again for a hand-made spec: the crop is the input's H x W.
  if (p.crop_height != spec.shape[2] || p.crop_width != spec.shape[3] || p.resize < std::max(p.crop_height, p.crop_width) ||
      channels > 4)
    return invalid_argument("input.preprocess: crop ", p.crop_width, "x", p.crop_height, " and resize ", p.resize,
                            " do not fit the input ", shape_to_string(spec.shape),
                            " (the crop is its H x W, resize at least the crop's larger side, 1 to 4 channels)");
  const int64_t shorter = std::min(height, width), longer = std::max(height, width);
  const int64_t resized_long = int64_t(p.resize) * longer / shorter;
  const int64_t nh = height <= width ? p.resize : resized_long, nw = height <= width ? resized_long : p.resize;
  if (double(nh) * double(nw) * channels > double(int64_t(1) << 28))
    return invalid_argument("image is ", width, "x", height, ": resizing its shorter side to ", p.resize, " gives ", nw, "x",
                            nh, ", more than 256 MiB of pixels");
  std::vector<uint8_t> resized;
  const uint8_t* px = pixels;
  if (nh != height || nw != width) {
    resized.resize(size_t(nh * nw * channels));
#ifdef LIBSPLIT_WITH_OPENCV
    const int flag = mode == detail::Interpolation::kArea       ? cv::INTER_AREA
                     : mode == detail::Interpolation::kBilinear ? cv::INTER_LINEAR
                                                                : cv::INTER_NEAREST;
    try {
      cv::Mat in(height, width, CV_8UC(channels), const_cast<uint8_t*>(pixels));
      cv::Mat out(int(nh), int(nw), CV_8UC(channels), resized.data());
      cv::resize(in, out, out.size(), 0, 0, flag);
      if (out.data != resized.data()) return detail::internal_error("cv::resize did not write into its buffer");
    } catch (const std::exception& e) {
      return invalid_argument("image cannot be resized from ", width, "x", height, " to ", nw, "x", nh, ": ", e.what());
    }
#else
    detail::resize_u8(pixels, height, width, channels, resized.data(), int(nh), int(nw), mode);
#endif
    px = resized.data();
  }
  const int64_t top = int64_t(std::nearbyint(double(nh - p.crop_height) / 2.0));
  const int64_t left = int64_t(std::nearbyint(double(nw - p.crop_width) / 2.0));
  const size_t row_bytes = size_t(nw) * size_t(channels);
  return hwc_to_tensor(px + size_t(top) * row_bytes + size_t(left) * size_t(channels), row_bytes, spec);
}

}  // namespace

Result<Tensor> pixels_to_tensor(const uint8_t* pixels, int height, int width, int channels, const InputSpec& spec) {
  const int64_t c = spec.shape[1], h = spec.shape[2], w = spec.shape[3];
  if (spec.preprocess && channels == c && height > 0 && width > 0) {
    if (!pixels) return invalid_argument("pixel buffer is null");
    return resize_and_crop(pixels, height, width, channels, spec);
  }
  if (height != h || width != w || channels != c)
    return invalid_argument("image is ", width, "x", height, " with ", channels, " channel(s); the model expects ", w,
                            "x", h, " with ", c, " channel(s)",
                            (height != h || width != w) && !spec.preprocess
                                ? " (the manifest has no input.preprocess to resize it)"
                                : "");
  if (!pixels) return invalid_argument("pixel buffer is null");
  return hwc_to_tensor(pixels, size_t(w * c), spec);
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
