// input.preprocess: the plain C++ resampler against hand-computed values and (where libsplit has
// OpenCV) against cv::resize within a measured budget; decoding PNG, JPEG and PPM files of other
// sizes to exactly the tensor cv::resize and torchvision's crop arithmetic give.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "libsplit/bundle.h"
#include "libsplit/preprocess.h"
#include "model/resize.h"

#ifdef LIBSPLIT_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace {

using libsplit::InputSpec;
using libsplit::PreprocessSpec;
using libsplit::Tensor;
using libsplit::detail::Interpolation;
using libsplit::detail::resize_u8;

std::vector<uint8_t> resized(const std::vector<uint8_t>& src, int h, int w, int c, int nh, int nw, Interpolation mode) {
  std::vector<uint8_t> out(size_t(nh * nw * c));
  resize_u8(src.data(), h, w, c, out.data(), nh, nw, mode);
  return out;
}

// Values small enough to check by hand.
TEST(ResizeFallback, MatchesHandComputedValues) {
  // 2x4 gray -> 1x2: area averages 2x2 blocks (halves round up), nearest takes the top-left
  // pixel of each block (OpenCV's INTER_NEAREST: floor(dst * scale), no half-pixel shift), and
  // bilinear at an exact halving samples the blocks' centres, i.e. the same average.
  const std::vector<uint8_t> a = {10, 20, 30, 42,  //
                                  50, 60, 70, 80};
  EXPECT_EQ(resized(a, 2, 4, 1, 1, 2, Interpolation::kArea), (std::vector<uint8_t>{35, 56}));  // 140/4, 222/4
  EXPECT_EQ(resized(a, 2, 4, 1, 1, 2, Interpolation::kNearest), (std::vector<uint8_t>{10, 30}));
  EXPECT_EQ(resized(a, 2, 4, 1, 1, 2, Interpolation::kBilinear), (std::vector<uint8_t>{35, 56}));

  // 1x3 -> 1x2, area: destination 0 covers source [0, 1.5): (p0 + p1 / 2) / 1.5; destination 1
  // covers [1.5, 3): (p1 / 2 + p2) / 1.5.
  const std::vector<uint8_t> b = {0, 90, 200};
  EXPECT_EQ(resized(b, 1, 3, 1, 1, 2, Interpolation::kArea), (std::vector<uint8_t>{30, 163}));  // 30, 163.33

  // 1x2 -> 1x4 bilinear: source positions -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
  const std::vector<uint8_t> c = {0, 200};
  EXPECT_EQ(resized(c, 1, 2, 1, 1, 4, Interpolation::kBilinear), (std::vector<uint8_t>{0, 50, 150, 200}));
  EXPECT_EQ(resized(c, 1, 2, 1, 1, 4, Interpolation::kNearest), (std::vector<uint8_t>{0, 0, 200, 200}));

  // Channels stay apart; equal sizes copy; a constant image stays constant in every mode.
  const std::vector<uint8_t> rgb = {255, 0, 7, 255, 0, 7, 255, 0, 7, 255, 0, 7};  // 2x2, 3 channels
  for (auto mode : {Interpolation::kArea, Interpolation::kBilinear, Interpolation::kNearest}) {
    EXPECT_EQ(resized(rgb, 2, 2, 3, 1, 1, mode), (std::vector<uint8_t>{255, 0, 7}));
    EXPECT_EQ(resized(rgb, 2, 2, 3, 2, 2, mode), rgb);
    const auto big = resized(rgb, 2, 2, 3, 5, 3, mode);
    for (size_t i = 0; i < big.size(); ++i) ASSERT_EQ(big[i], rgb[i % 3]) << int(mode) << " at " << i;
  }
}

#ifdef LIBSPLIT_WITH_OPENCV
// Random images (uniform noise, the worst case for rounding, and smooth gradients), shrunk by
// integer and non-integer factors, enlarged, stretched one way and shrunk the other, 1 and 3
// channels: the fallback against cv::resize, level by level. Measured with Debian's OpenCV 4.6
// on x86-64 over these 18 sizes and 400 random ones (1..200 pixels a side), 2 contents each,
// 11.25 M values a mode: nearest and bilinear identical on every value; area at most 1 level
// apart on 0.0019% of the values (mean |difference| 0.000019; OpenCV sums in float, libsplit
// exactly). A wider sweep (3,000 random sizes up to 300 a side, about 100 M values a mode) gave
// the same: nearest and bilinear identical, area 1 level apart on 0.001% of the values, all of
// them where both sides shrink (0.0047% of those). Budget asserted:
// at most 1 level, mean at most 0.001 (a bilinear pass rounding the exact sum instead of as
// OpenCV does would be 1 level apart on 1 value in 8: mean 0.126).
TEST(ResizeFallback, AgreesWithOpenCvWithinOneLevel) {
  struct Case {
    int h, w, nh, nw;
  };
  std::vector<Case> cases = {
      {64, 48, 32, 24},    {99, 66, 33, 22},    {96, 128, 24, 32},  {97, 150, 73, 112}, {150, 97, 112, 73},
      {300, 400, 73, 97},  {480, 640, 64, 85},  {37, 53, 19, 11},   {1000, 751, 97, 73}, {28, 28, 73, 73},
      {17, 23, 64, 50},    {5, 7, 73, 102},     {40, 100, 80, 50},  {100, 40, 30, 90},  {64, 64, 63, 65},
      {73, 112, 73, 112},  {2, 3, 1, 1},        {1, 9, 4, 2}};
  std::mt19937 sizes(2024);
  for (int i = 0; i < 400; ++i) {
    Case k{1 + int(sizes() % 200), 1 + int(sizes() % 200), 1 + int(sizes() % 200), 1 + int(sizes() % 200)};
    if (i % 2 == 0) {  // shrink both sides
      k.nh = 1 + int(sizes() % uint32_t(k.h));
      k.nw = 1 + int(sizes() % uint32_t(k.w));
    }
    cases.push_back(k);
  }
  for (auto [mode, flag, name] : {std::tuple{Interpolation::kNearest, int(cv::INTER_NEAREST), "nearest"},
                                  std::tuple{Interpolation::kBilinear, int(cv::INTER_LINEAR), "bilinear"},
                                  std::tuple{Interpolation::kArea, int(cv::INTER_AREA), "area"}}) {
    int max_diff = 0;
    int64_t sum_diff = 0, values = 0, differing = 0;
    uint32_t seed = 1;
    for (const Case& k : cases)
      for (bool smooth : {false, true}) {
        const int c = seed % 3 == 0 ? 1 : 3;
        std::mt19937 rng(seed++);
        std::vector<uint8_t> src(size_t(k.h * k.w * c));
        for (int y = 0; y < k.h; ++y)
          for (int x = 0; x < k.w; ++x)
            for (int ch = 0; ch < c; ++ch)
              src[size_t((y * k.w + x) * c + ch)] =
                  uint8_t(smooth ? std::min(255, (x * 255 / k.w + y * 128 / k.h + ch * 50) % 256 + int(rng() % 5))
                                 : int(rng() % 256));
        const auto ours = resized(src, k.h, k.w, c, k.nh, k.nw, mode);
        cv::Mat in(k.h, k.w, CV_8UC(c), src.data()), ref;
        cv::resize(in, ref, cv::Size(k.nw, k.nh), 0, 0, flag);
        ASSERT_TRUE(ref.isContinuous());
        for (size_t i = 0; i < ours.size(); ++i) {
          const int d = std::abs(int(ours[i]) - int(ref.data[i]));
          max_diff = std::max(max_diff, d);
          sum_diff += d;
          differing += d != 0;
          ASSERT_LE(d, 1) << name << ": " << k.h << "x" << k.w << "x" << c << " -> " << k.nh << "x" << k.nw
                          << (smooth ? " smooth" : " noise") << ", value " << i;
        }
        values += int64_t(ours.size());
      }
    const double mean = double(sum_diff) / double(values);
    std::printf("%-8s: max |difference| %d, mean %.6f, %.4f%% of %lld values differ\n", name, max_diff, mean,
                100.0 * double(differing) / double(values), (long long)values);
    EXPECT_LE(mean, 0.001) << name;
  }
}
#endif

InputSpec spec(const std::string& order, int h, int w, int resize, const std::string& interpolation) {
  InputSpec s;
  const int c = order == "gray" ? 1 : 3;
  s.shape = {1, c, h, w};
  s.mean.assign(size_t(c), 0.f);
  s.std.assign(size_t(c), 1.f);
  s.channel_order = order;
  if (resize > 0) s.preprocess = PreprocessSpec{resize, h, w, interpolation};
  return s;
}

// Without input.preprocess an image must have the input's size, and the error says why.
TEST(Preprocess, WithoutPreprocessTheSizeMustMatch) {
  const auto s = spec("gray", 28, 28, 0, "");
  std::vector<uint8_t> px(32 * 30);
  auto t = libsplit::pixels_to_tensor(px.data(), 30, 32, 1, s);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("image is 32x30 with 1 channel(s); the model expects 28x28"), std::string::npos)
      << t.status().message();
  EXPECT_NE(t.status().message().find("(the manifest has no input.preprocess to resize it)"), std::string::npos)
      << t.status().message();
  // With it, the channel count must still match.
  auto p = libsplit::pixels_to_tensor(px.data(), 30, 32, 1, spec("rgb", 28, 28, 32, "area"));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("3 channel(s)"), std::string::npos) << p.status().message();
}

// A spec made by hand (not parsed from a manifest) whose crop is not the input's size, or whose
// resize is below the crop, is refused instead of reading outside the resized image.
TEST(Preprocess, HandMadeSpecThatDoesNotFitIsAnError) {
  std::vector<uint8_t> px(40 * 50 * 3, 7);
  auto s = spec("rgb", 28, 28, 32, "area");
  s.preprocess->crop_height = 0;  // a default-constructed crop
  auto t = libsplit::pixels_to_tensor(px.data(), 40, 50, 3, s);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("crop 28x0 and resize 32 do not fit the input [1,3,28,28]"), std::string::npos)
      << t.status().message();
  s = spec("rgb", 28, 28, 20, "area");
  EXPECT_FALSE(libsplit::pixels_to_tensor(px.data(), 40, 50, 3, s).ok());
  s = spec("rgb", 28, 28, 32, "cubic");
  t = libsplit::pixels_to_tensor(px.data(), 40, 50, 3, s);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("\"cubic\""), std::string::npos) << t.status().message();
}

// PPM and PGM of other sizes, resized by the fallback in builds without OpenCV (by cv::resize
// with it; both give these values): 2x2 block averages, then torchvision's centre crop, whose
// offset round((size - crop) / 2) takes halves to even.
TEST(Preprocess, ResizesAndCropsPpmAndPgm) {
  auto bytes = [](const std::string& header, const std::vector<uint8_t>& px) {
    std::vector<uint8_t> b(header.begin(), header.end());
    b.insert(b.end(), px.begin(), px.end());
    return b;
  };
  // 6x4 gray: resize 2 makes it 3x2 (2 * 6 / 4 = 3), the 2x2 crop starts at x = round(0.5) = 0.
  const std::vector<uint8_t> g = {0,  4,  8,  12, 16, 20,   //
                                  2,  6,  10, 14, 18, 22,   //
                                  40, 44, 48, 52, 56, 60,   //
                                  42, 46, 50, 54, 58, 62};
  auto pgm = bytes("P5 6 4 255\n", g);
  auto t = libsplit::decode_image(pgm.data(), pgm.size(), spec("gray", 2, 2, 2, "area"));
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->shape, (std::vector<int64_t>{1, 1, 2, 2}));
  EXPECT_EQ(t->data, (std::vector<float>{3, 11, 43, 51}));  // blocks 0..1 of (3, 11, 19 / 43, 51, 59)
  // 10x4 gray (two copies of the above side by side, shifted): 5x2 after resizing, crop x from
  // round(1.5) = 2.
  std::vector<uint8_t> wide;
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 10; ++x) wide.push_back(uint8_t(g[size_t(y * 6 + x % 6)] + (x >= 6 ? 100 : 0)));
  pgm = bytes("P5 10 4 255\n", wide);
  t = libsplit::decode_image(pgm.data(), pgm.size(), spec("gray", 2, 2, 2, "area"));
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->data, (std::vector<float>{19, 103, 59, 143}));  // columns 2 and 3 of (3, 11, 19, 103, 111)

  // A 5x3 colour PPM to a 2x2 "bgr" model, nearest: resize 2 makes it 3x2 (2 * 5 / 3), source
  // columns floor(x * 5 / 3) = 0, 1, 3 and rows floor(y * 3 / 2) = 0, 1; crop x from round(0.5) = 0.
  std::vector<uint8_t> rgb;
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x)
      for (int k = 0; k < 3; ++k) rgb.push_back(uint8_t(100 * k + 10 * y + x));
  auto ppm = bytes("P6\n5 3\n255\n", rgb);
  t = libsplit::decode_image(ppm.data(), ppm.size(), spec("bgr", 2, 2, 2, "nearest"));
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->data, (std::vector<float>{200, 201, 210, 211, 100, 101, 110, 111, 0, 1, 10, 11}));  // B, G, R planes
}

// The committed Fashion-MNIST bundle with input.preprocess {"resize": 28, "crop": [28, 28]}
// (area): a test image drawn twice as large (each pixel a 2x2 block) in the middle of a wider or
// taller noisy frame, 56x84 or 84x56, shrinks back to exactly its 28x28 pixels once the crop has
// cut the frame away, and the model gives it exactly the original's scores. The original itself
// (its shorter side already 28) passes unchanged.
TEST(Preprocess, BundleWithPreprocessAnswersForALargerFrameAsForTheImage) {
  namespace fs = std::filesystem;
  const fs::path src = fs::path(LIBSPLIT_MODELS_DIR) / "fmnist-resnet";
  const fs::path dir = fs::path(LIBSPLIT_TEST_TMP) / "preprocess-bundle";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().filename() != "manifest.json") fs::create_symlink(e.path(), dir / e.path().filename());
  nlohmann::json m = nlohmann::json::parse(std::ifstream(src / "manifest.json"));
  m["input"]["preprocess"] = {{"resize", 28}, {"crop", {28, 28}}};
  std::ofstream(dir / "manifest.json") << m.dump(2);
  libsplit::BundleOptions o;
  o.load_heads = o.load_tails = o.load_local = false;
  auto bundle = libsplit::Bundle::open(dir.string(), o);
  ASSERT_TRUE(bundle.ok()) << bundle.status().to_string();
  const InputSpec& spec = (*bundle)->manifest().input;
  ASSERT_TRUE(spec.preprocess.has_value());
  EXPECT_EQ(spec.preprocess->interpolation, "area");

  auto images = libsplit::IdxFile::open(std::string(LIBSPLIT_FMNIST_DIR) + "/t10k-images-idx3-ubyte.gz");
  ASSERT_TRUE(images.ok()) << images.status().to_string();
  std::mt19937 rng(3);
  for (int64_t i = 0; i < 4; ++i) {
    const uint8_t* px = images->record(i);
    auto want = libsplit::pixels_to_tensor(px, 28, 28, 1, spec);
    ASSERT_TRUE(want.ok()) << want.status().to_string();
    EXPECT_EQ(want->data, std::vector<float>(px, px + 784));
    ASSERT_TRUE(libsplit::normalize_input(spec, &*want).ok());
    auto want_scores = (*bundle)->run_full(*want);
    ASSERT_TRUE(want_scores.ok()) << want_scores.status().to_string();
    for (bool wide : {true, false}) {
      const int h = wide ? 56 : 84, w = wide ? 84 : 56, top = wide ? 0 : 14, left = wide ? 14 : 0;
      const std::string header = "P5\n" + std::to_string(w) + " " + std::to_string(h) + "\n255\n";
      std::vector<uint8_t> pgm(header.begin(), header.end());
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const int iy = y - top, ix = x - left;
          pgm.push_back(iy >= 0 && iy < 56 && ix >= 0 && ix < 56 ? px[(iy / 2) * 28 + ix / 2] : uint8_t(rng() % 256));
        }
      auto t = libsplit::decode_image(pgm.data(), pgm.size(), spec);
      ASSERT_TRUE(t.ok()) << t.status().to_string();
      EXPECT_EQ(t->data, std::vector<float>(px, px + 784)) << "image " << i << (wide ? " wide" : " tall");
      ASSERT_TRUE(libsplit::normalize_input(spec, &*t).ok());
      auto scores = (*bundle)->run_full(*t);
      ASSERT_TRUE(scores.ok()) << scores.status().to_string();
      EXPECT_EQ(scores->data, want_scores->data);
    }
  }
  fs::remove_all(dir);
}

#ifdef LIBSPLIT_WITH_OPENCV
// The tensor libsplit should give: `rgb` (HWC, the model's channel order) resized to nh x nw with
// cv::resize, cropped at (top, left), as CHW floats. The sizes and offsets are the test's own
// arithmetic, written out per case.
Tensor expected(const cv::Mat& img, int nh, int nw, int top, int left, int h, int w, int flag) {
  cv::Mat r;
  cv::resize(img, r, cv::Size(nw, nh), 0, 0, flag);
  const int c = img.channels();
  Tensor t;
  t.shape = {1, c, h, w};
  t.data.resize(size_t(c * h * w));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) t.data[size_t((k * h + y) * w + x)] = float(r.ptr<uint8_t>(top + y)[(left + x) * c + k]);
  return t;
}

cv::Mat noise_image(int h, int w, int type, uint32_t seed) {
  cv::Mat m(h, w, type);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, 0, 256);
  cv::GaussianBlur(m, m, cv::Size(3, 3), 0);  // some structure, still every level in use
  return m;
}

std::vector<uint8_t> encode(const std::string& ext, const cv::Mat& m, std::vector<int> params = {}) {
  std::vector<uint8_t> buf;
  EXPECT_TRUE(cv::imencode(ext, m, buf, params));
  return buf;
}

// A 150x97 RGB PNG to a 64x64 model (resize 73): 112x73 after resizing (73 * 150 / 97 = 112.9),
// crop from top round(4.5) = 4, left 24; in every interpolation mode.
TEST(Preprocess, PngOfAnotherSizeGivesExactlyTheOpenCvTensor) {
  const cv::Mat rgb = noise_image(97, 150, CV_8UC3, 5);
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  const auto png = encode(".png", bgr);
  for (auto [name, flag] : {std::pair{"area", int(cv::INTER_AREA)}, std::pair{"bilinear", int(cv::INTER_LINEAR)},
                            std::pair{"nearest", int(cv::INTER_NEAREST)}}) {
    const auto s = spec("rgb", 64, 64, 73, name);
    auto t = libsplit::decode_image(png.data(), png.size(), s);
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    EXPECT_EQ(t->shape, (std::vector<int64_t>{1, 3, 64, 64}));
    EXPECT_EQ(t->data, expected(rgb, 73, 112, 4, 24, 64, 64, flag).data) << name;
    // The same pixels handed over raw.
    auto raw = libsplit::pixels_to_tensor(rgb.data, 97, 150, 3, s);
    ASSERT_TRUE(raw.ok()) << raw.status().to_string();
    EXPECT_EQ(raw->data, t->data) << name;
  }
  // Portrait: 97 wide, 150 high -> 73x112, crop from top 24, left round(4.5) = 4.
  cv::Mat tall;
  cv::transpose(rgb, tall);
  auto t = libsplit::pixels_to_tensor(tall.data, 150, 97, 3, spec("rgb", 64, 64, 73, "area"));
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->data, expected(tall, 112, 73, 24, 4, 64, 64, cv::INTER_AREA).data);
  // A non-square input, 48 high and 64 wide, resize 72: 111x72 (72 * 150 / 97 = 111.3), crop
  // from top 12, left round(23.5) = 24.
  t = libsplit::pixels_to_tensor(rgb.data, 97, 150, 3, spec("rgb", 48, 64, 72, "bilinear"));
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->shape, (std::vector<int64_t>{1, 3, 48, 64}));
  EXPECT_EQ(t->data, expected(rgb, 72, 111, 12, 24, 48, 64, cv::INTER_LINEAR).data);
}

// A gray PNG to a colour model becomes three equal channels; an RGBA PNG loses its alpha
// (not blended); both then resize and crop as a colour PNG does.
TEST(Preprocess, GrayAndRgbaPngsToAColourModel) {
  const auto s = spec("rgb", 64, 64, 73, "area");
  const cv::Mat gray = noise_image(100, 80, CV_8UC1, 9);
  const auto png = encode(".png", gray);
  auto t = libsplit::decode_image(png.data(), png.size(), s);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  cv::Mat gray3;
  cv::cvtColor(gray, gray3, cv::COLOR_GRAY2RGB);
  // 80 wide: 73 x (73 * 100 / 80 = 91), crop from top round(13.5) = 14, left round(4.5) = 4.
  EXPECT_EQ(t->data, expected(gray3, 91, 73, 14, 4, 64, 64, cv::INTER_AREA).data);
  const size_t plane = 64 * 64;
  EXPECT_TRUE(std::equal(t->data.begin(), t->data.begin() + plane, t->data.begin() + plane));
  EXPECT_TRUE(std::equal(t->data.begin(), t->data.begin() + plane, t->data.begin() + 2 * plane));

  const cv::Mat bgra = noise_image(90, 120, CV_8UC4, 11);  // alpha is noise too
  const auto rgba_png = encode(".png", bgra);
  t = libsplit::decode_image(rgba_png.data(), rgba_png.size(), s);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  cv::Mat rgb;
  cv::cvtColor(bgra, rgb, cv::COLOR_BGRA2RGB);
  // 90 high: (73 * 120 / 90 = 97) x 73, crop from top round(4.5) = 4, left round(16.5) = 16.
  EXPECT_EQ(t->data, expected(rgb, 73, 97, 4, 16, 64, 64, cv::INTER_AREA).data);
  // A gray model reads the colour PNG as cv::IMREAD_GRAYSCALE does.
  t = libsplit::decode_image(rgba_png.data(), rgba_png.size(), spec("gray", 64, 64, 73, "area"));
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->shape, (std::vector<int64_t>{1, 1, 64, 64}));
  EXPECT_EQ(t->data, expected(cv::imdecode(rgba_png, cv::IMREAD_GRAYSCALE), 73, 97, 4, 16, 64, 64, cv::INTER_AREA).data);
}

// A camera-sized JPEG (4000x3000) decodes to the input shape, with the values cv::imdecode and
// cv::resize give for the same bytes; the fallback, on the decoded pixels, stays within one level.
TEST(Preprocess, LargeJpegDecodesToTheInputShape) {
  cv::Mat bgr(3000, 4000, CV_8UC3);
  for (int y = 0; y < bgr.rows; ++y)
    for (int x = 0; x < bgr.cols; ++x)
      bgr.at<cv::Vec3b>(y, x) = cv::Vec3b(uint8_t(x * 255 / 4000), uint8_t(y * 255 / 3000), uint8_t((x / 50 + y / 50) % 2 * 200));
  const auto jpeg = encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, 90});
  const auto s = spec("rgb", 224, 224, 256, "area");
  auto t = libsplit::decode_image(jpeg.data(), jpeg.size(), s);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->shape, (std::vector<int64_t>{1, 3, 224, 224}));
  cv::Mat decoded = cv::imdecode(jpeg, cv::IMREAD_COLOR), rgb;
  cv::cvtColor(decoded, rgb, cv::COLOR_BGR2RGB);
  // 3000 high: 256 x (256 * 4000 / 3000 = 341), crop from top 16, left round(58.5) = 58.
  EXPECT_EQ(t->data, expected(rgb, 256, 341, 16, 58, 224, 224, cv::INTER_AREA).data);

  std::vector<uint8_t> ours(256 * 341 * 3);
  ASSERT_TRUE(rgb.isContinuous());
  resize_u8(rgb.data, 3000, 4000, 3, ours.data(), 256, 341, Interpolation::kArea);
  float worst = 0;
  for (int y = 0; y < 224; ++y)
    for (int x = 0; x < 224; ++x)
      for (int k = 0; k < 3; ++k)
        worst = std::max(worst, std::abs(float(ours[size_t(((16 + y) * 341 + 58 + x) * 3 + k)]) -
                                         t->data[size_t((k * 224 + y) * 224 + x)]));
  EXPECT_LE(worst, 1.0f);
}
#endif

}  // namespace
