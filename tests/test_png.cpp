// Lossless PNG offload (codec "png"): exact round trips, agreement with OpenCV's PNG reader and
// writer, and a decoder that rejects every malformed stream without reading out of bounds.
#include <gtest/gtest.h>

#include <random>

#include <zlib.h>

#include "codec/png.h"
#include "libsplit/codec.h"
#include "protocol/frames.h"

#ifdef LIBSPLIT_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>
#endif

namespace {

using libsplit::CodecKind;
using libsplit::CodecSpec;
using libsplit::EncodedTensor;
using libsplit::StatusCode;
using libsplit::Tensor;
namespace png = libsplit::codec::png;

const CodecSpec kPng{CodecKind::kImagePng, 8};

// A smooth image (gradients plus a little noise), the kind a camera gives, or pure noise.
Tensor image(int c, int h, int w, bool smooth, uint32_t seed) {
  std::mt19937 rng(seed);
  Tensor t;
  t.shape = {1, c, h, w};
  t.data.resize(size_t(c * h * w));
  for (int k = 0; k < c; ++k)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const float v = smooth ? float((x * 3 + y * 2 + k * 40) % 256 + int(rng() % 3)) : float(rng() % 256);
        t.data[size_t((k * h + y) * w + x)] = std::min(v, 255.f);
      }
  return t;
}

TEST(Png, RoundTripsExactly) {
  for (int c : {1, 3})
    for (bool smooth : {true, false})
      for (auto [h, w] : {std::pair{1, 1}, std::pair{28, 28}, std::pair{7, 33}, std::pair{224, 224}}) {
        const Tensor t = image(c, h, w, smooth, uint32_t(c * 1000 + h + w));
        EncodedTensor e;
        ASSERT_TRUE(libsplit::encode(t, kPng, &e).ok());
        Tensor back;
        auto st = libsplit::decode(e, &back);
        ASSERT_TRUE(st.ok()) << st.to_string();
        EXPECT_EQ(back.shape, t.shape);
        EXPECT_EQ(back.data, t.data) << c << "x" << h << "x" << w << (smooth ? " smooth" : " noise");
        if (smooth && h * w >= 28 * 28) {
          EXPECT_LT(e.payload.size(), t.data.size() / 2);
        }
      }
}

TEST(Png, RejectsShapesItCannotCarry) {
  EncodedTensor e;
  for (auto shape : std::vector<std::vector<int64_t>>{{1, 2, 4, 4}, {2, 1, 4, 4}, {1, 4, 4}, {1, 1, 0, 4}}) {
    Tensor t;
    t.shape = shape;
    t.data.assign(size_t(libsplit::Tensor::element_count(shape)), 0.f);
    auto st = libsplit::encode(t, kPng, &e);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << libsplit::shape_to_string(shape);
  }
}

#ifdef LIBSPLIT_WITH_OPENCV
TEST(Png, AgreesWithOpenCv) {
  for (int c : {1, 3}) {
    const Tensor t = image(c, 40, 56, true, 7);
    // Ours -> OpenCV.
    EncodedTensor e;
    ASSERT_TRUE(libsplit::encode(t, kPng, &e).ok());
    cv::Mat m = cv::imdecode(e.payload, cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(m.empty());
    ASSERT_EQ(m.channels(), c);
    for (int y = 0; y < 40; ++y)
      for (int x = 0; x < 56; ++x)
        for (int k = 0; k < c; ++k) {
          // OpenCV keeps colour images as BGR.
          const uint8_t v = c == 1 ? m.at<uint8_t>(y, x) : m.at<cv::Vec3b>(y, x)[2 - k];
          ASSERT_EQ(float(v), t.data[size_t((k * 40 + y) * 56 + x)]);
        }
    // OpenCV -> ours, at several compression levels (different filters and deflate streams).
    for (int level : {0, 3, 9}) {
      std::vector<uint8_t> buf;
      ASSERT_TRUE(cv::imencode(".png", m, buf, {cv::IMWRITE_PNG_COMPRESSION, level}));
      EncodedTensor o{kPng, t.shape, {}, {}, buf, 0};
      Tensor back;
      auto st = libsplit::decode(o, &back);
      ASSERT_TRUE(st.ok()) << st.to_string();
      EXPECT_EQ(back.data, t.data) << "level " << level;
    }
  }
}
#endif

TEST(Png, MalformedStreamsAreErrorsNeverCrashes) {
  const Tensor t = image(3, 16, 16, true, 3);
  EncodedTensor good;
  ASSERT_TRUE(libsplit::encode(t, kPng, &good).ok());
  std::vector<uint8_t> out(3 * 16 * 16);
  // Every truncation.
  for (size_t n = 0; n < good.payload.size(); ++n)
    EXPECT_FALSE(png::decode(good.payload.data(), n, 3, 16, 16, out.data()).ok()) << "truncated at " << n;
  // Random corruption: a flipped bit anywhere is caught (CRC, signature or structure).
  std::mt19937 rng(11);
  for (int i = 0; i < 500; ++i) {
    auto bad = good.payload;
    bad[rng() % bad.size()] ^= uint8_t(1u << (rng() % 8));
    EXPECT_FALSE(png::decode(bad.data(), bad.size(), 3, 16, 16, out.data()).ok()) << "trial " << i;
  }
  // Wrong size, wrong channel count.
  auto st = png::decode(good.payload.data(), good.payload.size(), 3, 16, 17, out.data());
  EXPECT_NE(st.message().find("16x16"), std::string::npos) << st.message();
  EXPECT_FALSE(png::decode(good.payload.data(), good.payload.size(), 1, 16, 16, out.data()).ok());
}

// Builds a PNG chunk by chunk, so that the header fields can be set to what the decoder refuses.
std::vector<uint8_t> build(uint8_t depth, uint8_t type, uint8_t interlace, const std::vector<uint8_t>& raw, int w,
                           int h) {
  std::vector<uint8_t> f = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  auto chunk = [&](const char* name, const std::vector<uint8_t>& body) {
    for (int s = 24; s >= 0; s -= 8) f.push_back(uint8_t(body.size() >> s));
    const size_t start = f.size();
    f.insert(f.end(), name, name + 4);
    f.insert(f.end(), body.begin(), body.end());
    const uint32_t crc = uint32_t(crc32(0, f.data() + start, uInt(f.size() - start)));
    for (int s = 24; s >= 0; s -= 8) f.push_back(uint8_t(crc >> s));
  };
  std::vector<uint8_t> ihdr = {0, 0, 0, uint8_t(w), 0, 0, 0, uint8_t(h), depth, type, 0, 0, interlace};
  chunk("IHDR", ihdr);
  uLongf n = compressBound(uLong(raw.size()));
  std::vector<uint8_t> z(n);
  compress(z.data(), &n, raw.data(), uLong(raw.size()));
  z.resize(n);
  chunk("IDAT", z);
  chunk("IEND", {});
  return f;
}

TEST(Png, RefusesWhatItDoesNotDecode) {
  std::vector<uint8_t> out(4 * 4);
  std::vector<uint8_t> raw(4 * 5, 0);  // 4 rows of filter byte + 4 pixels
  EXPECT_TRUE(png::decode(build(8, 0, 0, raw, 4, 4).data(), build(8, 0, 0, raw, 4, 4).size(), 1, 4, 4, out.data()).ok());
  auto expect_error = [&](const std::vector<uint8_t>& f, const std::string& word) {
    auto st = png::decode(f.data(), f.size(), 1, 4, 4, out.data());
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find(word), std::string::npos) << st.message();
  };
  expect_error(build(16, 0, 0, raw, 4, 4), "bit depth");
  expect_error(build(8, 3, 0, raw, 4, 4), "colour type");
  expect_error(build(8, 0, 1, raw, 4, 4), "interlaced");
  auto more = raw;
  more.push_back(0);
  expect_error(build(8, 0, 0, more, 4, 4), "inflates");
  auto less = raw;
  less.pop_back();
  expect_error(build(8, 0, 0, less, 4, 4), "inflates");
  auto bad_filter = raw;
  bad_filter[5] = 9;
  expect_error(build(8, 0, 0, bad_filter, 4, 4), "filter type");
}

TEST(Png, TravelsInRequestFramesForTheFullModel) {
  const Tensor t = image(1, 28, 28, true, 5);
  libsplit::protocol::Request req;
  req.id = 9;
  req.split = libsplit::protocol::kSplitFull;
  req.top_k = 3;
  ASSERT_TRUE(libsplit::encode(t, kPng, &req.tensor).ok());
  const auto body = libsplit::protocol::encode_request(req);
  EXPECT_EQ(body.size() + libsplit::protocol::kHeaderSize, libsplit::protocol::request_frame_size(req));
  libsplit::protocol::Request back;
  auto st = libsplit::protocol::decode_request(body.data(), body.size(), &back);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(back.tensor.codec, kPng);
  EXPECT_EQ(back.tensor.payload, req.tensor.payload);
  Tensor pixels;
  ASSERT_TRUE(libsplit::decode(back.tensor, &pixels).ok());
  EXPECT_EQ(pixels.data, t.data);
}

}  // namespace
