// Wire protocol: round trips of every frame, rejection of every malformed field, and a bounded
// random-input sweep over every decoder (no crash, no out-of-bounds read under ASan).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "protocol/frame_reader.h"
#include "protocol/frames.h"
#include "protocol/wire.h"

namespace {

namespace proto = libsplit::protocol;
using libsplit::CodecKind;
using libsplit::StatusCode;

proto::Request sample_request() {
  proto::Request r;
  r.id = 0x0102030405060708ull;
  r.deadline_us = 250000;
  r.split = 2;
  r.top_k = 5;
  libsplit::Tensor t{{1, 2, 7, 7}, std::vector<float>(98)};
  for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = float(i) * 0.1f - 3.0f;
  EXPECT_TRUE(libsplit::encode(t, {CodecKind::kQuantPerTensor, 8}, &r.tensor).ok());
  return r;
}

TEST(Protocol, RequestRoundTrip) {
  const auto r = sample_request();
  const auto body = proto::encode_request(r);
  proto::Request back;
  ASSERT_TRUE(proto::decode_request(body.data(), body.size(), &back).ok());
  EXPECT_EQ(back.id, r.id);
  EXPECT_EQ(back.deadline_us, r.deadline_us);
  EXPECT_EQ(back.split, r.split);
  EXPECT_EQ(back.top_k, r.top_k);
  EXPECT_EQ(back.tensor.codec, r.tensor.codec);
  EXPECT_EQ(back.tensor.shape, r.tensor.shape);
  EXPECT_EQ(back.tensor.scales, r.tensor.scales);
  EXPECT_EQ(back.tensor.zero_points, r.tensor.zero_points);
  EXPECT_EQ(back.tensor.payload, r.tensor.payload);
}

TEST(Protocol, RequestOverheadIsSmall) {
  // Bar: the whole request frame is at most 64 bytes larger than a per-tensor 8-bit payload.
  const auto r = sample_request();
  std::vector<uint8_t> frame;
  proto::append_frame(proto::FrameType::kRequest, proto::encode_request(r), &frame);
  EXPECT_EQ(frame.size(), proto::request_frame_size(r));
  EXPECT_LE(frame.size() - r.tensor.payload.size(), 64u);
  EXPECT_EQ(frame.size() - r.tensor.payload.size(), 51u);  // documented in PROTOCOL.md
}

TEST(Protocol, PerChannelAndPackedRequestsRoundTrip) {
  for (const char* name : {"q8c", "q4c", "q2", "f16", "f32"}) {
    proto::Request r = sample_request();
    libsplit::Tensor t{{1, 3, 3, 3}, std::vector<float>(27, 0.5f)};
    t.data[4] = -1;
    ASSERT_TRUE(libsplit::encode(t, *libsplit::parse_codec(name), &r.tensor).ok());
    const auto body = proto::encode_request(r);
    proto::Request back;
    ASSERT_TRUE(proto::decode_request(body.data(), body.size(), &back).ok()) << name;
    EXPECT_EQ(back.tensor.payload, r.tensor.payload) << name;
    EXPECT_EQ(back.tensor.scales, r.tensor.scales) << name;
  }
}

TEST(Protocol, HelloAndReplyRoundTrip) {
  proto::Hello h;
  h.model = "fmnist-resnet";
  h.version = "1.0.0";
  h.split = "bf2";
  h.token = "secret";
  auto b = proto::encode_hello(h);
  proto::Hello hb;
  ASSERT_TRUE(proto::decode_hello(b.data(), b.size(), &hb).ok());
  EXPECT_EQ(hb.model, h.model);
  EXPECT_EQ(hb.version, h.version);
  EXPECT_EQ(hb.split, h.split);
  EXPECT_EQ(hb.token, h.token);
  EXPECT_EQ(hb.max_frame, h.max_frame);

  proto::HelloReply r;
  r.model = "m";
  r.version = "2";
  r.input_shape = {1, 1, 28, 28};
  r.splits.push_back({0, "bf1", {CodecKind::kQuantPerTensor, 8}, {1, 1, 7, 7}});
  r.splits.push_back({1, "bf4", {CodecKind::kQuantPerChannel, 4}, {1, 4, 7, 7}});
  b = proto::encode_hello_reply(r);
  proto::HelloReply rb;
  ASSERT_TRUE(proto::decode_hello_reply(b.data(), b.size(), &rb).ok());
  ASSERT_EQ(rb.splits.size(), 2u);
  EXPECT_EQ(rb.splits[1].id, "bf4");
  EXPECT_EQ(rb.splits[1].codec, (libsplit::CodecSpec{CodecKind::kQuantPerChannel, 4}));
  EXPECT_EQ(rb.splits[1].bottleneck_shape, (std::vector<int64_t>{1, 4, 7, 7}));
  EXPECT_EQ(rb.input_shape, r.input_shape);
}

TEST(Protocol, ResponseAndErrorRoundTrip) {
  proto::Response r;
  r.id = 9;
  r.queue_us = 12;
  r.tail_us = 345;
  r.top = {{3, 0.75f}, {1, 0.125f}};
  auto b = proto::encode_response(r);
  proto::Response rb;
  ASSERT_TRUE(proto::decode_response(b.data(), b.size(), &rb).ok());
  EXPECT_EQ(rb.id, 9u);
  EXPECT_EQ(rb.tail_us, 345u);
  ASSERT_EQ(rb.top.size(), 2u);
  EXPECT_EQ(rb.top[0].index, 3u);
  EXPECT_EQ(rb.top[1].score, 0.125f);

  r.has_tensor = true;
  r.output = {{1, 3}, {1.f, -2.f, 3.5f}};
  b = proto::encode_response(r);
  ASSERT_TRUE(proto::decode_response(b.data(), b.size(), &rb).ok());
  EXPECT_TRUE(rb.has_tensor);
  EXPECT_EQ(rb.output.data, r.output.data);

  proto::ErrorFrame e{42, StatusCode::kResourceExhausted, "queue full"};
  b = proto::encode_error(e);
  proto::ErrorFrame eb;
  ASSERT_TRUE(proto::decode_error(b.data(), b.size(), &eb).ok());
  EXPECT_EQ(eb.id, 42u);
  EXPECT_EQ(eb.code, StatusCode::kResourceExhausted);
  EXPECT_EQ(eb.message, "queue full");
}

TEST(Protocol, HeaderRejectsEveryMalformedField) {
  std::vector<uint8_t> frame;
  proto::append_frame(proto::FrameType::kPing, proto::encode_u64(7), &frame);
  proto::FrameHeader h;
  ASSERT_TRUE(proto::decode_header(frame.data(), frame.size(), 1024, &h).ok());
  ASSERT_TRUE(proto::check_body(h, frame.data() + 12, frame.size() - 12).ok());

  auto mutate = [&](size_t at, uint8_t v) {
    auto f = frame;
    f[at] = v;
    return f;
  };
  auto f = mutate(0, 'X');
  EXPECT_FALSE(proto::decode_header(f.data(), f.size(), 1024, &h).ok());  // magic
  f = mutate(1, 'X');
  EXPECT_FALSE(proto::decode_header(f.data(), f.size(), 1024, &h).ok());
  f = mutate(2, 0);
  EXPECT_FALSE(proto::decode_header(f.data(), f.size(), 1024, &h).ok());  // type 0
  f = mutate(2, 99);
  EXPECT_FALSE(proto::decode_header(f.data(), f.size(), 1024, &h).ok());  // unknown type
  f = mutate(3, 1);
  EXPECT_FALSE(proto::decode_header(f.data(), f.size(), 1024, &h).ok());  // flags
  f = mutate(7, 0xFF);                                                    // 4 GiB body
  auto st = proto::decode_header(f.data(), f.size(), 1024, &h);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("exceeds"), std::string::npos);
  EXPECT_FALSE(proto::decode_header(frame.data(), 11, 1024, &h).ok());  // short header
  f = mutate(12, frame[12] ^ 1);                                        // body bit flip
  ASSERT_TRUE(proto::decode_header(f.data(), f.size(), 1024, &h).ok());
  EXPECT_EQ(proto::check_body(h, f.data() + 12, f.size() - 12).code(), StatusCode::kDataLoss);
  EXPECT_FALSE(proto::check_body(h, f.data() + 12, f.size() - 13).ok());
}

TEST(Protocol, RequestRejectsEveryMalformedField) {
  const auto good = proto::encode_request(sample_request());
  proto::Request out;
  // Every truncation fails cleanly.
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_FALSE(proto::decode_request(good.data(), n, &out).ok()) << "prefix " << n;
  // Layout: id 0..7, deadline 8..11, split 12..13, top_k 14, codec 15, bits 16, ndim 17,
  // dims 18..33, scale 34..37, zero point 38, payload 39..
  auto with = [&](size_t at, std::vector<uint8_t> bytes) {
    auto b = good;
    for (size_t i = 0; i < bytes.size(); ++i) b[at + i] = bytes[i];
    proto::Request r;
    return proto::decode_request(b.data(), b.size(), &r);
  };
  EXPECT_FALSE(with(15, {9}).ok());             // unknown codec
  EXPECT_FALSE(with(16, {3}).ok());             // 3 bits
  EXPECT_FALSE(with(16, {16}).ok());            // q with 16 bits
  EXPECT_FALSE(with(17, {0}).ok());             // ndim 0
  EXPECT_FALSE(with(17, {9}).ok());             // ndim 9
  EXPECT_FALSE(with(18, {0, 0, 0, 0}).ok());    // dim 0
  EXPECT_FALSE(with(22, {0xFF, 0xFF, 0xFF, 0xFF}).ok());  // huge dim
  EXPECT_FALSE(with(26, {0, 0, 0, 1}).ok());    // 2^24 + ... elements vs payload
  EXPECT_FALSE(with(34, {0, 0, 0xC0, 0x7F}).ok());  // NaN scale
  EXPECT_FALSE(with(34, {0, 0, 0x80, 0xBF}).ok());  // negative scale
  EXPECT_FALSE(with(34, {0, 0, 0, 0}).ok());        // zero scale
  auto b = good;
  b.push_back(0);  // trailing byte: payload size mismatch
  EXPECT_FALSE(proto::decode_request(b.data(), b.size(), &out).ok());
  // 2-bit codes with a zero point above 3.
  auto r = sample_request();
  libsplit::Tensor t{{1, 4}, {0, 1, 2, 3}};
  ASSERT_TRUE(libsplit::encode(t, {CodecKind::kQuantPerTensor, 2}, &r.tensor).ok());
  r.tensor.zero_points[0] = 4;
  b = proto::encode_request(r);
  auto st = proto::decode_request(b.data(), b.size(), &out);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("zero point"), std::string::npos);
}

TEST(Protocol, OtherDecodersRejectTruncationAndTrailingBytes) {
  proto::Hello h;
  h.model = "m";
  auto hello = proto::encode_hello(h);
  proto::HelloReply hr;
  hr.input_shape = {1, 1, 28, 28};
  hr.splits.push_back({0, "a", {CodecKind::kQuantPerTensor, 8}, {1, 2, 7, 7}});
  auto reply = proto::encode_hello_reply(hr);
  proto::Response resp;
  resp.top = {{1, 0.5f}};
  auto response = proto::encode_response(resp);
  auto error = proto::encode_error({1, StatusCode::kInternal, "x"});
  for (size_t n = 0; n < hello.size(); ++n) {
    proto::Hello o;
    EXPECT_FALSE(proto::decode_hello(hello.data(), n, &o).ok());
  }
  for (size_t n = 0; n < reply.size(); ++n) {
    proto::HelloReply o;
    EXPECT_FALSE(proto::decode_hello_reply(reply.data(), n, &o).ok());
  }
  for (size_t n = 0; n < response.size(); ++n) {
    proto::Response o;
    EXPECT_FALSE(proto::decode_response(response.data(), n, &o).ok());
  }
  for (size_t n = 0; n < error.size(); ++n) {
    proto::ErrorFrame o;
    EXPECT_FALSE(proto::decode_error(error.data(), n, &o).ok());
  }
  hello.push_back(1);
  proto::Hello o;
  EXPECT_FALSE(proto::decode_hello(hello.data(), hello.size(), &o).ok());
  hello.pop_back();
  hello[0] = 'X';
  EXPECT_FALSE(proto::decode_hello(hello.data(), hello.size(), &o).ok());
  // A reply claiming 65535 splits in a few bytes is rejected before allocating.
  auto big = reply;
  const size_t count_at = 4 + 2 + 2 + 4 + 4 + 1 + 1 + 1 + 16;
  big[count_at] = 0xFF;
  big[count_at + 1] = 0xFF;
  proto::HelloReply ob;
  EXPECT_FALSE(proto::decode_hello_reply(big.data(), big.size(), &ob).ok());
  // Unknown status code in an error frame.
  error[8] = 200;
  proto::ErrorFrame oe;
  EXPECT_FALSE(proto::decode_error(error.data(), error.size(), &oe).ok());
}

TEST(Protocol, RandomBytesNeverCrashDecoders) {
  std::mt19937 rng(20240601);
  const auto seed_request = proto::encode_request(sample_request());
  size_t accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> b;
    if (iter % 2 == 0) {
      b.resize(rng() % 200);
      for (auto& x : b) x = uint8_t(rng());
    } else {  // mutate a valid request in 1..4 places
      b = seed_request;
      for (int k = 0, m = 1 + int(rng() % 4); k < m; ++k) b[rng() % b.size()] = uint8_t(rng());
    }
    proto::Request r;
    proto::Hello h;
    proto::HelloReply hr;
    proto::Response resp;
    proto::ErrorFrame e;
    proto::FrameHeader fh;
    accepted += proto::decode_request(b.data(), b.size(), &r).ok();
    (void)proto::decode_hello(b.data(), b.size(), &h);
    (void)proto::decode_hello_reply(b.data(), b.size(), &hr);
    (void)proto::decode_response(b.data(), b.size(), &resp);
    (void)proto::decode_error(b.data(), b.size(), &e);
    (void)proto::decode_header(b.data(), b.size(), 1 << 20, &fh);
    if (proto::decode_request(b.data(), b.size(), &r).ok()) {
      libsplit::Tensor t;
      // A fixed-size payload was checked by the frame decoder; a coded one (ids 5..7) is checked
      // by the codec, which may refuse it but never reads outside it.
      const bool ok = libsplit::decode(r.tensor, &t).ok();
      if (!libsplit::is_variable_length(r.tensor.codec))
        ASSERT_TRUE(ok) << "a decoded request must carry a decodable tensor";
    }
  }
  EXPECT_GT(accepted, 0u);  // mutations in the payload bytes stay valid requests
}

// Feeds `stream` to a FrameReader in pieces of `piece` bytes; returns the frames' bodies, or the
// first error.
libsplit::Result<std::vector<std::vector<uint8_t>>> reassemble(const std::vector<uint8_t>& stream, size_t piece,
                                                                  uint32_t max_body = 1 << 20) {
  proto::FrameReader reader(64);
  std::vector<std::vector<uint8_t>> bodies;
  size_t at = 0;
  while (at < stream.size()) {
    size_t room = 0;
    uint8_t* p = reader.space(&room);
    EXPECT_GE(room, 1u);
    const size_t n = std::min({room, piece, stream.size() - at});
    std::memcpy(p, stream.data() + at, n);
    reader.commit(n);
    at += n;
    proto::Frame f;
    for (;;) {
      auto got = reader.next(max_body, &f);
      if (!got.ok()) return got.status();
      if (!*got) break;
      bodies.emplace_back(f.body, f.body + f.size());
    }
  }
  EXPECT_FALSE(reader.mid_frame());
  return bodies;
}

TEST(FrameReader, ReassemblesFramesWhateverTheReadSizes) {
  std::vector<std::vector<uint8_t>> want;
  std::vector<uint8_t> stream;
  std::mt19937 rng(7);
  for (size_t len : {0u, 1u, 11u, 12u, 63u, 64u, 65u, 500u, 5000u}) {
    std::vector<uint8_t> body(len);
    for (auto& b : body) b = uint8_t(rng());
    proto::append_frame(proto::FrameType::kRequest, body, &stream);
    want.push_back(body);
  }
  for (size_t piece : {size_t(1), size_t(5), size_t(12), size_t(13), size_t(64), size_t(1000), stream.size()}) {
    SCOPED_TRACE(piece);
    auto got = reassemble(stream, piece);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ(*got, want);
  }
}

TEST(FrameReader, RejectsBadStreamsBeforeGrowing) {
  std::vector<uint8_t> stream;
  proto::append_frame(proto::FrameType::kRequest, std::vector<uint8_t>(100, 7), &stream);
  auto bad_crc = stream;
  bad_crc.back() ^= 1;
  auto r = reassemble(bad_crc, 7);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  auto bad_magic = stream;
  bad_magic[0] = 'X';
  r = reassemble(bad_magic, 3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  // A body declared larger than the limit is refused from its header alone.
  r = reassemble(stream, 12, /*max_body=*/99);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  proto::FrameReader reader(64);
  size_t room = 0;
  uint8_t* p = reader.space(&room);
  std::vector<uint8_t> huge = {'L', 'S', 3, 0, 0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0};
  std::memcpy(p, huge.data(), huge.size());
  reader.commit(huge.size());
  proto::Frame f;
  auto got = reader.next(4u << 20, &f);
  ASSERT_FALSE(got.ok());
  reader.space(&room);
  EXPECT_LE(room, 64u) << "no buffer was sized from a refused header";
}

TEST(FrameReader, GivesBackTheMemoryOfALargeFrame) {
  std::vector<uint8_t> stream;
  proto::append_frame(proto::FrameType::kRequest, std::vector<uint8_t>(100000, 1), &stream);
  proto::append_frame(proto::FrameType::kRequest, std::vector<uint8_t>(10, 2), &stream);
  auto got = reassemble(stream, 4096);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 2u);
  proto::FrameReader reader(64);
  size_t room = 0;
  uint8_t* p = reader.space(&room);
  std::memcpy(p, stream.data(), 12);
  reader.commit(12);
  proto::Frame f;
  ASSERT_FALSE(*reader.next(1 << 20, &f));
  p = reader.space(&room);
  EXPECT_GE(room, 100000u) << "room for the whole declared body";
  std::memcpy(p, stream.data() + 12, 100000);
  reader.commit(100000);
  ASSERT_TRUE(*reader.next(1 << 20, &f));
  reader.space(&room);
  EXPECT_LE(room, 64u);
}

}  // namespace
