// The server against garbage on its port: wrong magic, truncated frames, huge declared lengths,
// random bytes, idle and half-open connections. It must not crash, must not grow without bound,
// and must still answer a valid request afterwards.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <fstream>
#include <random>
#include <thread>

#include <asio.hpp>

#include "libsplit/libsplit.h"
#include "protocol/frames.h"

namespace {

using asio::ip::tcp;
namespace proto = libsplit::protocol;

// AddressSanitizer holds freed memory in quarantine (up to 256 MiB): resident memory says nothing
// about the daemon's own growth there, so the memory bounds apply to uninstrumented builds only.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCheckRss = false;
#else
constexpr bool kCheckRss = true;
#endif

long rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

class Robustness : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    libsplit::ServerOptions so;
    so.models_dir = std::string(LIBSPLIT_MODELS_DIR) + "/fmnist-resnet";
    so.listen = "127.0.0.1:0";
    so.handshake_timeout_ms = 300;
    so.frame_timeout_ms = 300;
    so.idle_timeout_ms = 2000;
    so.max_frame_bytes = 64 * 1024;
    so.http_listen = "127.0.0.1:0";
    auto s = libsplit::Server::create(so);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    server_ = s->release();
    ASSERT_TRUE(server_->start().ok());
  }
  static void TearDownTestSuite() { delete server_; }

  tcp::socket open_socket() {
    tcp::socket s(io_);
    s.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
    return s;
  }
  // Reads until the server closes; returns the bytes read. Bounded by the server's timeouts
  // (and by a socket receive timeout as a backstop).
  std::vector<uint8_t> read_to_eof(tcp::socket& s) {
    timeval tv{10, 0};
    setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::vector<uint8_t> all;
    std::array<uint8_t, 4096> buf;
    for (;;) {
      std::error_code ec;
      size_t n = s.read_some(asio::buffer(buf), ec);
      all.insert(all.end(), buf.begin(), buf.begin() + long(n));
      if (ec) break;
    }
    return all;
  }
  // The first frame the server sent must be an error frame.
  void expect_error_frame(const std::vector<uint8_t>& bytes, libsplit::StatusCode code) {
    ASSERT_GE(bytes.size(), proto::kHeaderSize);
    proto::FrameHeader h;
    ASSERT_TRUE(proto::decode_header(bytes.data(), bytes.size(), 1 << 20, &h).ok());
    ASSERT_EQ(h.type, proto::FrameType::kError);
    proto::ErrorFrame e;
    ASSERT_TRUE(proto::decode_error(bytes.data() + proto::kHeaderSize, h.body_length, &e).ok());
    EXPECT_EQ(e.code, code) << e.message;
  }
  void valid_request_succeeds() {
    libsplit::ClientOptions co;
    co.server = "127.0.0.1:" + std::to_string(server_->port());
    co.model = "fmnist-resnet";
    auto c = libsplit::Client::connect(co);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    const auto split = (*c)->splits().at(0);
    libsplit::Tensor z{split.bottleneck_shape,
                       std::vector<float>(size_t(libsplit::Tensor::element_count(split.bottleneck_shape)), 0.25f)};
    z.data[0] = -1;
    libsplit::EncodedTensor enc;
    ASSERT_TRUE(libsplit::encode(z, *libsplit::parse_codec("q8"), &enc).ok());  // any split takes q8
    auto r = (*c)->infer(split.index, enc, 3);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->top.size(), 3u);
  }
  // One HTTP exchange with the health/metrics endpoint: the whole response, headers included.
  std::string http(const std::string& request) {
    tcp::socket s(io_);
    s.connect({asio::ip::make_address("127.0.0.1"), server_->http_port()});
    asio::write(s, asio::buffer(request));
    auto bytes = read_to_eof(s);
    return std::string(bytes.begin(), bytes.end());
  }
  asio::io_context io_;
  static libsplit::Server* server_;
};
libsplit::Server* Robustness::server_ = nullptr;

TEST_F(Robustness, HealthReadinessAndMetricsOverHttp) {
  ASSERT_GT(server_->http_port(), 0);
  auto r = http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("\r\n\r\nok\n"), std::string::npos) << r;
  r = http("GET /readyz HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK", 0), 0u) << r;
  valid_request_succeeds();
  r = http("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << r;
  EXPECT_NE(r.find("libsplit_requests_total{model=\"fmnist-resnet\",split=\""), std::string::npos) << r;
  EXPECT_NE(r.find("status=\"ok\"}"), std::string::npos) << r;
  EXPECT_NE(r.find("libsplit_tail_seconds_bucket{model=\"fmnist-resnet\",le=\"+Inf\"}"), std::string::npos) << r;
  EXPECT_NE(r.find("libsplit_queue_wait_seconds_count{model=\"fmnist-resnet\"}"), std::string::npos) << r;
  EXPECT_NE(r.find("libsplit_rejected_total{cause=\"queue_full\"}"), std::string::npos) << r;
  EXPECT_NE(r.find("libsplit_received_bytes_total "), std::string::npos) << r;
  EXPECT_NE(r.find("libsplit_open_connections "), std::string::npos) << r;
  EXPECT_NE(r.find("libsplit_ready 1"), std::string::npos) << r;
}

TEST_F(Robustness, BadHttpRequestsGetErrors) {
  EXPECT_EQ(http("GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(http("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(http("garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(http("GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n").rfind("HTTP/1.1 431", 0), 0u);
  // A client that sends nothing is closed after the read timeout; the endpoint keeps serving.
  EXPECT_EQ(http("GET /healthz HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(Robustness, WrongMagic) {
  auto s = open_socket();
  asio::write(s, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  expect_error_frame(read_to_eof(s), libsplit::StatusCode::kInvalidArgument);
  valid_request_succeeds();
}

TEST_F(Robustness, HugeDeclaredLength) {
  auto s = open_socket();
  const uint8_t header[12] = {'L', 'S', 1, 0, 0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0};
  asio::write(s, asio::buffer(header));
  expect_error_frame(read_to_eof(s), libsplit::StatusCode::kResourceExhausted);
  valid_request_succeeds();
}

TEST_F(Robustness, HugeLengthAfterHandshakeIsCappedByMaxFrame) {
  auto s = open_socket();
  proto::Hello h;
  h.model = "fmnist-resnet";
  std::vector<uint8_t> f;
  proto::append_frame(proto::FrameType::kHello, proto::encode_hello(h), &f);
  const uint8_t big[12] = {'L', 'S', 3, 0, 0x00, 0x00, 0x10, 0x00, 0, 0, 0, 0};  // 1 MiB > 64 KiB limit
  f.insert(f.end(), big, big + 12);
  asio::write(s, asio::buffer(f));
  auto bytes = read_to_eof(s);
  proto::FrameHeader hh;
  ASSERT_TRUE(proto::decode_header(bytes.data(), bytes.size(), 1 << 20, &hh).ok());
  EXPECT_EQ(hh.type, proto::FrameType::kHelloReply);
  const size_t second = proto::kHeaderSize + hh.body_length;
  ASSERT_GT(bytes.size(), second);
  std::vector<uint8_t> rest(bytes.begin() + long(second), bytes.end());
  expect_error_frame(rest, libsplit::StatusCode::kResourceExhausted);
}

TEST_F(Robustness, TruncatedFramesAndBadCrc) {
  proto::Hello h;
  h.model = "fmnist-resnet";
  std::vector<uint8_t> frame;
  proto::append_frame(proto::FrameType::kHello, proto::encode_hello(h), &frame);
  for (size_t cut : {size_t(1), size_t(11), size_t(12), frame.size() - 1}) {
    auto s = open_socket();
    asio::write(s, asio::buffer(frame.data(), cut));
    s.shutdown(tcp::socket::shutdown_send);  // half-open: we will send nothing more
    read_to_eof(s);                          // the server closes its side
  }
  auto s = open_socket();
  auto bad = frame;
  ASSERT_GT(bad.size(), proto::kHeaderSize);
  bad.data()[bad.size() - 1] ^= 0x55;  // the body's last byte: the CRC no longer matches
  asio::write(s, asio::buffer(bad));
  expect_error_frame(read_to_eof(s), libsplit::StatusCode::kDataLoss);
  valid_request_succeeds();
}

TEST_F(Robustness, RequestBeforeHelloIsRejected) {
  auto s = open_socket();
  std::vector<uint8_t> f;
  proto::append_frame(proto::FrameType::kPing, proto::encode_u64(1), &f);
  asio::write(s, asio::buffer(f));
  expect_error_frame(read_to_eof(s), libsplit::StatusCode::kInvalidArgument);
}

TEST_F(Robustness, IdleConnectionsAreClosed) {
  std::vector<tcp::socket> idle;
  for (int i = 0; i < 20; ++i) idle.push_back(open_socket());
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& s : idle) read_to_eof(s);  // handshake timeout (300 ms) closes each
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(8));
  valid_request_succeeds();
}

TEST_F(Robustness, TricklingSenderIsCutOff) {
  auto s = open_socket();
  proto::Hello h;
  h.model = "fmnist-resnet";
  std::vector<uint8_t> f;
  proto::append_frame(proto::FrameType::kHello, proto::encode_hello(h), &f);
  // Header at once, then nothing: the frame timeout (300 ms) must close the connection.
  asio::write(s, asio::buffer(f.data(), 13));
  const auto t0 = std::chrono::steady_clock::now();
  read_to_eof(s);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST_F(Robustness, RandomBytesDoNotCrashOrGrowMemory) {
  std::mt19937 rng(77);
  valid_request_succeeds();
  const long before = rss_kb();
  for (int i = 0; i < 300; ++i) {
    auto s = open_socket();
    std::vector<uint8_t> junk(4 + rng() % 2048);
    for (auto& b : junk) b = uint8_t(rng());
    if (i % 3 == 0) {  // a valid-looking header with random type and length, then junk
      junk[0] = 'L';
      junk[1] = 'S';
      junk[3] = 0;
    }
    std::error_code ec;
    asio::write(s, asio::buffer(junk), ec);
    s.shutdown(tcp::socket::shutdown_send, ec);
    read_to_eof(s);
  }
  const long after = rss_kb();
  if (kCheckRss) {
    EXPECT_LT(after - before, 32 * 1024) << "RSS grew from " << before << " kB to " << after << " kB";
  }
  valid_request_succeeds();
  const auto st = server_->stats();
  EXPECT_GT(st.protocol_errors, 100u);
}

// 1,000 connections that open and go: half send a hello and part of a request and then reset
// (RST, not FIN) mid-frame. The daemon stays up, its memory bounded, and answers afterwards.
TEST_F(Robustness, ThousandConnectsAndResetsMidFrame) {
  valid_request_succeeds();
  proto::Hello h;
  h.model = "fmnist-resnet";
  std::vector<uint8_t> start;
  proto::append_frame(proto::FrameType::kHello, proto::encode_hello(h), &start);
  proto::Request req;
  req.id = 1;
  libsplit::Tensor z{{1, 2, 7, 7}, std::vector<float>(98, 0.5f)};
  ASSERT_TRUE(libsplit::encode(z, *libsplit::parse_codec("f32"), &req.tensor).ok());
  std::vector<uint8_t> frame;
  proto::append_frame(proto::FrameType::kRequest, proto::encode_request(req), &frame);
  start.insert(start.end(), frame.begin(), frame.begin() + long(frame.size() / 2));
  const long before = rss_kb();
  for (int i = 0; i < 1000; ++i) {
    auto s = open_socket();
    std::error_code ec;
    if (i % 2 == 1) {
      asio::write(s, asio::buffer(start), ec);
      linger reset{1, 0};  // close() sends RST
      setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
    s.close(ec);
  }
  valid_request_succeeds();
  const long after = rss_kb();
  if (kCheckRss) {
    EXPECT_LT(after - before, 32 * 1024) << "RSS grew from " << before << " kB to " << after << " kB";
  }
  EXPECT_GE(server_->stats().connections_accepted, 1000u);
}

// 100,000 requests (64 in flight on one connection): resident memory grows by less than a fixed
// bound once warm, and every request is answered.
TEST_F(Robustness, HundredThousandRequestsInBoundedMemory) {
  libsplit::ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string(server_->port());
  co.model = "fmnist-resnet";
  co.default_deadline_ms = 60000;
  auto c = libsplit::Client::connect(co);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  // The split with the smallest bottleneck: the least compute per request.
  auto splits = (*c)->splits();
  auto split = *std::min_element(splits.begin(), splits.end(), [](const auto& a, const auto& b) {
    return libsplit::Tensor::element_count(a.bottleneck_shape) < libsplit::Tensor::element_count(b.bottleneck_shape);
  });
  libsplit::Tensor z{split.bottleneck_shape,
                     std::vector<float>(size_t(libsplit::Tensor::element_count(split.bottleneck_shape)), 0.25f)};
  libsplit::EncodedTensor enc;
  ASSERT_TRUE(libsplit::encode(z, *libsplit::parse_codec("q8"), &enc).ok());
  std::mutex mu;
  std::condition_variable cv;
  uint64_t sent = 0, done = 0, ok = 0;
  auto run = [&](uint64_t n) {
    const uint64_t target = sent + n;
    std::unique_lock<std::mutex> lock(mu);
    while (sent < target) {
      if (!cv.wait_for(lock, std::chrono::seconds(60), [&] { return sent - done < 64; })) {
        ADD_FAILURE() << "no answer within 60 s after " << done << " answers";
        return;
      }
      ++sent;
      lock.unlock();
      (*c)->infer_async(split.index, enc, 1, 60000, [&](libsplit::Result<libsplit::Reply> r) {
        std::lock_guard<std::mutex> l(mu);
        ++done;
        ok += r.ok();
        cv.notify_one();
      });
      lock.lock();
    }
    if (!cv.wait_for(lock, std::chrono::seconds(60), [&] { return done == target; }))
      ADD_FAILURE() << "no answer within 60 s after " << done << " answers";
  };
  run(5000);  // warm: allocator pools, metrics maps, socket buffers
  const long before = rss_kb();
  const auto t0 = std::chrono::steady_clock::now();
  run(100000);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const long after = rss_kb();
  EXPECT_EQ(ok, 105000u);
  if (kCheckRss) {
    EXPECT_LT(after - before, 16 * 1024) << "RSS grew from " << before << " kB to " << after << " kB over 100,000 requests";
  }
  std::printf("100,000 requests in %.1f s; RSS %ld kB -> %ld kB\n", s, before, after);
}

}  // namespace
