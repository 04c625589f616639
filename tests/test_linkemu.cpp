// The link emulator (src/linkemu): bytes pass unchanged, rate, delay, live shape changes,
// Mahimahi traces, the control language and port, end-of-stream propagation. Loopback only; the
// timing tests assert with generous tolerances around the emulated times.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <asio.hpp>

#include "libsplit/log.h"
#include "linkemu/linkemu.h"

namespace le = libsplit::linkemu;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// The server behind the proxy: echoes, closes each connection at once, or holds connections
// without reading. Runs its own I/O thread.
class TestServer {
 public:
  enum class Mode { kEcho, kCloseAtOnce, kHold };

  explicit TestServer(Mode mode = Mode::kEcho) : mode_(mode) {
    const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestServer() {
    io_.stop();
    thread_.join();
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }

  // True once `n` echo connections have seen their peer close.
  bool wait_peer_closed(int n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return closed_ >= n; });
  }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    Session(TestServer* srv, tcp::socket s) : server(srv), socket(std::move(s)), buf(64 * 1024) {}
    void read() {
      socket.async_read_some(asio::buffer(buf), [self = shared_from_this()](std::error_code ec, size_t n) {
        if (ec) return self->end();
        asio::async_write(self->socket, asio::buffer(self->buf.data(), n), [self](std::error_code ec2, size_t) {
          if (ec2) return self->end();
          self->read();
        });
      });
    }
    void end() {
      std::error_code ignored;
      socket.close(ignored);
      std::lock_guard<std::mutex> lock(server->mu_);
      ++server->closed_;
      server->cv_.notify_all();
    }
    TestServer* server;
    tcp::socket socket;
    std::vector<uint8_t> buf;
  };

  void accept() {
    acceptor_.async_accept([this](std::error_code ec, tcp::socket s) {
      if (ec) return;
      s.set_option(tcp::no_delay(true), ec);
      if (mode_ == Mode::kCloseAtOnce) {
        s.close(ec);
      } else if (mode_ == Mode::kHold) {
        held_.push_back(std::move(s));
      } else {
        std::make_shared<Session>(this, std::move(s))->read();
      }
      accept();
    });
  }

  Mode mode_;
  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  std::vector<tcp::socket> held_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  int closed_ = 0;
};

// A plain blocking client socket with send/receive timeouts, so a broken proxy fails a test
// instead of hanging it. Reading and writing from two threads is fine.
class Client {
 public:
  explicit Client(uint16_t port, int timeout_ms = 5000) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_timeout(timeout_ms);
  }
  ~Client() { close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }
  void set_timeout(int ms) {
    const timeval tv{ms / 1000, (ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  // Bytes written before an error or a timeout.
  size_t write_all(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    size_t done = 0;
    while (done < n) {
      const ssize_t k = ::send(fd_, p + done, n - done, MSG_NOSIGNAL);
      if (k <= 0) break;
      done += size_t(k);
    }
    return done;
  }
  // One send call: what it took before the timeout (or -1).
  ssize_t send_once(const void* data, size_t n) { return ::send(fd_, data, n, MSG_NOSIGNAL); }
  bool write_all(const std::string& s) { return write_all(s.data(), s.size()) == s.size(); }
  // Exactly n bytes; false on end of stream, error or timeout.
  bool read_exact(void* data, size_t n) {
    auto* p = static_cast<uint8_t*>(data);
    size_t done = 0;
    while (done < n) {
      const ssize_t k = ::recv(fd_, p + done, n - done, 0);
      if (k <= 0) return false;
      done += size_t(k);
    }
    return true;
  }
  // True if the peer ended the stream (no more bytes, no error, within the timeout).
  bool read_eof() {
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }
  std::string read_line() {
    std::string line;
    char c;
    while (::recv(fd_, &c, 1, 0) == 1 && c != '\n') line += c;
    return line;
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = uint8_t(rng());
  return out;
}

std::unique_ptr<le::Proxy> start_proxy(const TestServer& server, const le::Shape& up, const le::Shape& down,
                                       const std::string& control = "") {
  le::Options o;
  o.target = server.address();
  o.up = up;
  o.down = down;
  o.control = control;
  auto p = le::Proxy::start(o);
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return p.ok() ? std::move(*p) : nullptr;
}

// Sends `data` through the proxy to the echo server (writer thread) and reads the echo back;
// returns the milliseconds from the first write to the last echoed byte, or -1 on failure.
double echo_round_trip(uint16_t port, const std::vector<uint8_t>& data, std::vector<uint8_t>* echoed = nullptr) {
  Client c(port);
  if (!c.connected()) return -1;
  std::vector<uint8_t> back(data.size());
  const auto t0 = Clock::now();
  std::thread writer([&] { c.write_all(data.data(), data.size()); });
  const bool ok = c.read_exact(back.data(), back.size());
  const double ms = ms_since(t0);
  writer.join();
  if (echoed) *echoed = std::move(back);
  return ok ? ms : -1;
}

le::Shape rate_shape(double bps) {
  le::Shape s;
  s.rate_bps = bps;
  return s;
}

std::string write_temp_file(const std::string& name, const std::string& text) {
  const std::string path = std::string(LIBSPLIT_TEST_TMP) + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

}  // namespace

// (a) Bytes pass unchanged and in order, with jitter larger than the delay in both directions.
TEST(LinkEmu, BytesPassUnchangedAndInOrderWithJitter) {
  TestServer server;
  le::Shape up, down;
  up.rate_bps = 200e6;
  up.delay_us = 1000;
  up.jitter_us = 3000;
  down.delay_us = 500;
  down.jitter_us = 2000;
  auto proxy = start_proxy(server, up, down);
  ASSERT_TRUE(proxy);
  const auto data = random_bytes(1 << 20, 42);
  std::vector<uint8_t> echoed;
  ASSERT_GE(echo_round_trip(proxy->port(), data, &echoed), 0);
  EXPECT_TRUE(echoed == data) << "the echoed megabyte differs from what was sent";
  EXPECT_EQ(proxy->stats().connections, 1u);
}

TEST(LinkEmu, ConcurrentConnectionsShareTheLinkAndKeepTheirBytes) {
  TestServer server;
  le::Shape up = rate_shape(100e6);
  up.jitter_us = 1000;
  auto proxy = start_proxy(server, up, le::Shape{});
  ASSERT_TRUE(proxy);
  constexpr int kConnections = 3;
  std::vector<std::vector<uint8_t>> sent(kConnections), got(kConnections);
  std::vector<double> ms(kConnections);
  std::vector<std::thread> threads;
  for (int i = 0; i < kConnections; ++i) {
    sent[size_t(i)] = random_bytes(256 * 1024, uint32_t(100 + i));
    threads.emplace_back([&, i] { ms[size_t(i)] = echo_round_trip(proxy->port(), sent[size_t(i)], &got[size_t(i)]); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kConnections; ++i) {
    EXPECT_GE(ms[size_t(i)], 0) << "connection " << i;
    EXPECT_TRUE(got[size_t(i)] == sent[size_t(i)]) << "connection " << i;
  }
  EXPECT_EQ(proxy->stats().connections, uint64_t(kConnections));
}

// (b) 200,000 bytes up at 8 Mbit/s: 200 ms of serialization.
TEST(LinkEmu, RateLimitsThroughput) {
  TestServer server;
  auto proxy = start_proxy(server, rate_shape(8e6), le::Shape{});
  ASSERT_TRUE(proxy);
  const double ms = echo_round_trip(proxy->port(), random_bytes(200000, 7));
  ASSERT_GE(ms, 0);
  EXPECT_GE(ms, 0.85 * 200);
  EXPECT_LE(ms, 1.5 * 200);
}

// (c) A 1-byte round trip through 20 ms of one-way delay each way.
TEST(LinkEmu, DelayAppliesInEachDirection) {
  TestServer server;
  le::Shape s;
  s.delay_us = 20000;
  auto proxy = start_proxy(server, s, s);
  ASSERT_TRUE(proxy);
  Client c(proxy->port());
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    const char out = char('a' + i);
    char in = 0;
    const auto t0 = Clock::now();
    ASSERT_EQ(c.write_all(&out, 1), 1u);
    ASSERT_TRUE(c.read_exact(&in, 1));
    const double ms = ms_since(t0);
    EXPECT_EQ(in, out);
    EXPECT_GE(ms, 40.0) << "round trip " << i;
    EXPECT_LT(ms, 200.0) << "round trip " << i;
  }
}

// (d) The rate changes under a live transfer: fast at first, then measurably slow.
TEST(LinkEmu, SetShapeChangesTheRateOfALiveTransfer) {
  TestServer server;
  auto proxy = start_proxy(server, rate_shape(40e6), le::Shape{});  // 5 MB/s
  ASSERT_TRUE(proxy);
  const auto data = random_bytes(1 << 20, 9);
  Client c(proxy->port());
  ASSERT_TRUE(c.connected());
  std::vector<uint8_t> back(data.size());
  const auto t0 = Clock::now();
  std::thread writer([&] { c.write_all(data.data(), data.size()); });

  constexpr size_t kFast = 100000, kSlow = 100000;
  const bool fast_ok = c.read_exact(back.data(), kFast);
  const double fast_ms = ms_since(t0);
  ASSERT_TRUE(proxy->set_shape(le::Direction::kUp, rate_shape(2e6)).ok());  // 250 KB/s
  const auto t1 = Clock::now();
  const bool slow_ok = c.read_exact(back.data() + kFast, kSlow);
  const double slow_ms = ms_since(t1);
  ASSERT_TRUE(proxy->set_shape(le::Direction::kUp, le::Shape{}).ok());  // the rest at full speed
  const bool rest_ok = c.read_exact(back.data() + kFast + kSlow, back.size() - kFast - kSlow);
  writer.join();

  ASSERT_TRUE(fast_ok && slow_ok && rest_ok);
  EXPECT_TRUE(back == data);
  // 100 KB at 5 MB/s is 20 ms; 100 KB at 250 KB/s is 400 ms, less what departed at the fast rate
  // before the new shape took hold (up to 70 KB, 14 ms at 5 MB/s, of a busy host's wake-ups).
  EXPECT_LT(fast_ms, 150.0);
  EXPECT_GE(slow_ms, 120.0);
  EXPECT_LE(slow_ms, 700.0);
  EXPECT_GT((kFast / fast_ms) / (kSlow / slow_ms), 3.0) << "fast " << fast_ms << " ms, slow " << slow_ms << " ms";
  EXPECT_EQ(proxy->shape(le::Direction::kUp).rate_bps, 0);
}

// (e) Mahimahi traces.
TEST(LinkEmu, ParsesMahimahiTraces) {
  auto t = le::parse_mahimahi_trace("0\n1\n1\r\n2\n\n5\n");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(*t, (std::vector<uint32_t>{0, 1, 1, 2, 5}));
  EXPECT_EQ(*le::parse_mahimahi_trace("7"), std::vector<uint32_t>{7});

  auto garbage = le::parse_mahimahi_trace("1\n2\nabc\n4\n");
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), libsplit::StatusCode::kInvalidArgument);
  EXPECT_NE(garbage.status().message().find("line 3"), std::string::npos) << garbage.status().message();
  EXPECT_NE(garbage.status().message().find("abc"), std::string::npos) << garbage.status().message();

  auto negative = le::parse_mahimahi_trace("1\n-2\n");
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.status().message().find("line 2"), std::string::npos) << negative.status().message();

  auto decreasing = le::parse_mahimahi_trace("1\n5\n3\n");
  ASSERT_FALSE(decreasing.ok());
  EXPECT_NE(decreasing.status().message().find("line 3"), std::string::npos) << decreasing.status().message();
  EXPECT_NE(decreasing.status().message().find("decrease"), std::string::npos) << decreasing.status().message();

  for (const std::string empty : {"", "\n\n  \n"}) {
    auto e = le::parse_mahimahi_trace(empty);
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.status().message().find("empty"), std::string::npos) << e.status().message();
  }
  auto zero_period = le::parse_mahimahi_trace("0\n0\n");
  ASSERT_FALSE(zero_period.ok());
  EXPECT_NE(zero_period.status().message().find("line 2"), std::string::npos) << zero_period.status().message();
  auto huge = le::parse_mahimahi_trace("99999999999\n");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("line 1"), std::string::npos);

  const auto path = write_temp_file("linkemu-trace-ok.txt", "1\n2\n3\n");
  auto loaded = le::load_mahimahi_trace(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  EXPECT_EQ(*loaded, (std::vector<uint32_t>{1, 2, 3}));
  const auto bad_path = write_temp_file("linkemu-trace-bad.txt", "1\n2\nx\n");
  auto bad = le::load_mahimahi_trace(bad_path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(bad_path), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("line 3"), std::string::npos) << bad.status().message();
  auto missing = le::load_mahimahi_trace(std::string(LIBSPLIT_TEST_TMP) + "/no-such-trace.txt");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), libsplit::StatusCode::kNotFound);
}

// One 1500-byte opportunity per millisecond is 12 Mbit/s: 300,000 bytes take 200 ms.
TEST(LinkEmu, TraceDrivesTheRate) {
  TestServer server;
  le::Shape up;
  up.rate_bps = 1e3;  // overridden by the trace
  up.trace_ms = {1};
  auto proxy = start_proxy(server, up, le::Shape{});
  ASSERT_TRUE(proxy);
  const double ms = echo_round_trip(proxy->port(), random_bytes(300000, 11));
  ASSERT_GE(ms, 0);
  EXPECT_GE(ms, 0.85 * 200);
  EXPECT_LE(ms, 1.6 * 200);
}

// A trace with gaps: per 100 ms period, 10 opportunities at 1 ms and one at 100 ms. 45,000 bytes
// need 30 opportunities: three periods' bursts, i.e. 200 to 300 ms depending on the phase.
TEST(LinkEmu, TraceWithGapsDeliversInBursts) {
  TestServer server;
  le::Shape up;
  up.trace_ms = std::vector<uint32_t>(10, 1);
  up.trace_ms.push_back(100);
  auto proxy = start_proxy(server, up, le::Shape{});
  ASSERT_TRUE(proxy);
  const double ms = echo_round_trip(proxy->port(), random_bytes(45000, 12));
  ASSERT_GE(ms, 0);
  EXPECT_GE(ms, 150.0);
  EXPECT_LE(ms, 450.0);
}

// (f) The control language: units, errors naming the bad token.
TEST(LinkEmu, ParsesValuesWithUnits) {
  EXPECT_EQ(*le::parse_rate("1mbit"), 1e6);
  EXPECT_EQ(*le::parse_rate("2.5kbit"), 2500);
  EXPECT_EQ(*le::parse_rate("1gbit"), 1e9);
  EXPECT_EQ(*le::parse_rate("100bit"), 100);
  EXPECT_EQ(*le::parse_rate("50MBit"), 50e6);
  EXPECT_EQ(*le::parse_rate("0"), 0);
  EXPECT_EQ(*le::parse_rate("unlimited"), 0);
  for (const char* bad : {"fast", "10", "10mbps", "", "-1mbit", "1.2.3mbit", "5000gbit"}) {
    auto r = le::parse_rate(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find(std::string("\"") + bad + "\""), std::string::npos) << r.status().message();
    }
  }
  EXPECT_EQ(*le::parse_duration_us("5ms"), 5000u);
  EXPECT_EQ(*le::parse_duration_us("1.5ms"), 1500u);
  EXPECT_EQ(*le::parse_duration_us("250us"), 250u);
  EXPECT_EQ(*le::parse_duration_us("2s"), 2000000u);
  EXPECT_EQ(*le::parse_duration_us("0"), 0u);
  for (const char* bad : {"5", "5min", "-5ms", "ms", "99999s"}) EXPECT_FALSE(le::parse_duration_us(bad).ok()) << bad;
  EXPECT_EQ(*le::parse_size_bytes("1500"), 1500u);
  EXPECT_EQ(*le::parse_size_bytes("64kib"), 65536u);
  EXPECT_EQ(*le::parse_size_bytes("1mb"), 1000000u);
  EXPECT_FALSE(le::parse_size_bytes("lots").ok());
  EXPECT_FALSE(le::parse_size_bytes("4gib").ok());

  EXPECT_EQ(le::format_rate(1e6), "1mbit");
  EXPECT_EQ(le::format_rate(2.5e3), "2.5kbit");
  EXPECT_EQ(le::format_rate(0), "unlimited");
  EXPECT_EQ(le::format_duration_us(1500), "1.5ms");
  EXPECT_EQ(le::format_duration_us(20000), "20ms");
  EXPECT_EQ(le::format_duration_us(250), "250us");
}

TEST(LinkEmu, ParsesControlCommands) {
  auto c = le::parse_control_command("set up rate=1mbit delay=5ms jitter=1ms");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->verb, le::ControlCommand::Verb::kSet);
  EXPECT_EQ(c->direction, le::Direction::kUp);
  EXPECT_TRUE(c->has_rate && c->has_delay && c->has_jitter);
  EXPECT_FALSE(c->has_trace || c->has_queue || c->has_burst);
  le::Shape base;
  base.delay_us = 1;
  base.queue_bytes = 4096;
  const auto s = le::apply_command(base, *c);
  EXPECT_EQ(s.rate_bps, 1e6);
  EXPECT_EQ(s.delay_us, 5000u);
  EXPECT_EQ(s.jitter_us, 1000u);
  EXPECT_EQ(s.queue_bytes, 4096u);  // not named: kept

  auto both = le::parse_control_command("  set both rate=50mbit queue=64kib burst=15kb ");
  ASSERT_TRUE(both.ok()) << both.status().to_string();
  EXPECT_EQ(both->direction, le::Direction::kBoth);
  EXPECT_EQ(both->values.queue_bytes, 65536u);
  EXPECT_EQ(both->values.burst_bytes, 15000u);
  EXPECT_EQ(le::parse_control_command("show down")->verb, le::ControlCommand::Verb::kShow);
  EXPECT_EQ(le::parse_control_command("stats")->verb, le::ControlCommand::Verb::kStats);
  EXPECT_EQ(le::parse_control_command("help")->verb, le::ControlCommand::Verb::kHelp);

  const auto path = write_temp_file("linkemu-trace-cmd.txt", "1\n");
  auto traced = le::parse_control_command("set down trace=" + path);
  ASSERT_TRUE(traced.ok()) << traced.status().to_string();
  EXPECT_EQ(traced->values.trace_ms, std::vector<uint32_t>{1});
  le::Shape with_trace = le::apply_command(le::Shape{}, *traced);
  EXPECT_EQ(with_trace.trace_ms, std::vector<uint32_t>{1});
  EXPECT_TRUE(le::apply_command(with_trace, *le::parse_control_command("set down trace=none")).trace_ms.empty());
  EXPECT_TRUE(le::apply_command(with_trace, *le::parse_control_command("set down rate=1mbit")).trace_ms.empty());

  // Each error names the token at fault.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"set up rate=fast", "rate=fast"},
      {"set up delay=5", "delay=5"},
      {"set up jitter=3min", "jitter=3min"},
      {"set sideways rate=1mbit", "sideways"},
      {"set up speed=1mbit", "speed"},
      {"set up rate", "rate"},
      {"set up queue=100", "queue=100"},
      {"set up", "KEY=VALUE"},
      {"set", "up, down or both"},
      {"frobnicate now", "frobnicate"},
      {"show left", "left"},
      {"stats please", "please"},
      {"", "empty"},
      {"set down trace=/no/such/trace/file", "/no/such/trace/file"},
  };
  for (const auto& [line, token] : bad) {
    auto r = le::parse_control_command(line);
    ASSERT_FALSE(r.ok()) << line;
    EXPECT_EQ(r.status().code(), line.find("trace=") != std::string::npos ? libsplit::StatusCode::kNotFound
                                                                          : libsplit::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(token), std::string::npos) << line << " -> " << r.status().message();
  }
}

TEST(LinkEmu, ControlPortRoundTrip) {
  TestServer server;
  auto proxy = start_proxy(server, le::Shape{}, rate_shape(3e6), "127.0.0.1:0");
  ASSERT_TRUE(proxy);
  ASSERT_NE(proxy->control_port(), 0);
  const std::string addr = "127.0.0.1:" + std::to_string(proxy->control_port());

  auto r = le::send_control_command(addr, "set up rate=1mbit delay=5ms");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->rfind("ok up: rate=1mbit", 0), 0u) << *r;
  EXPECT_EQ(proxy->shape(le::Direction::kUp).rate_bps, 1e6);
  EXPECT_EQ(proxy->shape(le::Direction::kUp).delay_us, 5000u);
  EXPECT_EQ(proxy->shape(le::Direction::kDown).rate_bps, 3e6);  // untouched

  auto err = le::send_control_command(addr, "set up rate=fast");
  ASSERT_TRUE(err.ok()) << err.status().to_string();
  EXPECT_EQ(err->rfind("error: ", 0), 0u) << *err;
  EXPECT_NE(err->find("rate=fast"), std::string::npos) << *err;
  EXPECT_EQ(proxy->shape(le::Direction::kUp).rate_bps, 1e6);  // a bad command changes nothing

  auto both = le::send_control_command(addr, "set both jitter=2ms");
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(proxy->shape(le::Direction::kUp).jitter_us, 2000u);
  EXPECT_EQ(proxy->shape(le::Direction::kDown).jitter_us, 2000u);
  EXPECT_EQ(proxy->shape(le::Direction::kDown).rate_bps, 3e6);  // each direction keeps its other fields

  // Several commands on one connection, one reply line each, in order.
  Client c(proxy->control_port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.write_all("show\r\nstats\nnonsense\nshow down\n"));
  const auto show = c.read_line();
  EXPECT_EQ(show.rfind("ok up: rate=1mbit", 0), 0u) << show;
  EXPECT_NE(show.find("down: rate=3mbit"), std::string::npos) << show;
  EXPECT_EQ(c.read_line().rfind("ok connections=", 0), 0u);
  EXPECT_EQ(c.read_line().rfind("error: unknown command \"nonsense\"", 0), 0u);
  EXPECT_EQ(c.read_line().rfind("ok down: rate=3mbit", 0), 0u);

  // The same commands without the port.
  auto direct = proxy->command("set down rate=unlimited");
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(proxy->shape(le::Direction::kDown).rate_bps, 0);
  EXPECT_FALSE(proxy->command("set down rate=quick").ok());

  // Nothing listens on the port once the proxy stopped.
  proxy->stop();
  auto gone = le::send_control_command(addr, "show", std::chrono::milliseconds(1000));
  EXPECT_FALSE(gone.ok());
}

TEST(LinkEmu, NoControlPortUnlessAsked) {
  TestServer server;
  auto proxy = start_proxy(server, le::Shape{}, le::Shape{});
  ASSERT_TRUE(proxy);
  EXPECT_EQ(proxy->control_port(), 0);
}

// (g) End of stream: the client's close reaches the server after the queued bytes, and the
// server's close reaches the client.
TEST(LinkEmu, ClosePropagatesAfterQueuedBytes) {
  TestServer server;
  le::Shape s = rate_shape(20e6);
  s.delay_us = 10000;
  auto proxy = start_proxy(server, s, s);
  ASSERT_TRUE(proxy);
  Client c(proxy->port());
  ASSERT_TRUE(c.connected());
  const auto data = random_bytes(64 * 1024, 5);
  ASSERT_EQ(c.write_all(data.data(), data.size()), data.size());
  c.shutdown_write();  // the echo server closes when it sees the end of the stream
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(c.read_exact(back.data(), back.size()));
  EXPECT_TRUE(back == data);
  EXPECT_TRUE(c.read_eof());
  EXPECT_TRUE(server.wait_peer_closed(1, std::chrono::milliseconds(2000)));
}

TEST(LinkEmu, ServerCloseReachesTheClient) {
  TestServer server(TestServer::Mode::kCloseAtOnce);
  le::Shape s;
  s.delay_us = 5000;
  auto proxy = start_proxy(server, s, s);
  ASSERT_TRUE(proxy);
  Client c(proxy->port());
  ASSERT_TRUE(c.connected());
  EXPECT_TRUE(c.read_eof());
}

TEST(LinkEmu, ClientCloseReachesTheServer) {
  TestServer server;
  auto proxy = start_proxy(server, le::Shape{}, le::Shape{});
  ASSERT_TRUE(proxy);
  {
    Client c(proxy->port());
    ASSERT_TRUE(c.connected());
    char x = 'x', y = 0;
    ASSERT_EQ(c.write_all(&x, 1), 1u);
    ASSERT_TRUE(c.read_exact(&y, 1));
  }  // closed
  EXPECT_TRUE(server.wait_peer_closed(1, std::chrono::milliseconds(2000)));
}

TEST(LinkEmu, UnreachableTargetClosesTheClient) {
  uint16_t dead_port = 0;
  {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    dead_port = a.local_endpoint().port();
  }  // nothing listens there any more
  le::Options o;
  o.target = "127.0.0.1:" + std::to_string(dead_port);
  auto proxy = le::Proxy::start(o);
  ASSERT_TRUE(proxy.ok()) << proxy.status().to_string();
  libsplit::set_log_level(libsplit::LogLevel::kError);  // the refused connection is logged as a warning
  Client c((*proxy)->port());
  ASSERT_TRUE(c.connected());
  EXPECT_TRUE(c.read_eof());
  (*proxy)->stop();
  libsplit::set_log_level(libsplit::LogLevel::kWarn);
}

// Backpressure: a target that never reads stalls the client after a bounded amount of data.
TEST(LinkEmu, FullQueueStopsReading) {
  TestServer server(TestServer::Mode::kHold);
  le::Shape up = rate_shape(1e6);
  up.queue_bytes = 16 * 1024;
  auto proxy = start_proxy(server, up, le::Shape{});
  ASSERT_TRUE(proxy);
  Client c(proxy->port(), 300);  // a send blocked this long counts as stalled
  ASSERT_TRUE(c.connected());
  const std::vector<uint8_t> block(1 << 20, 0x5a);
  size_t total = 0;
  for (int i = 0; i < 64; ++i) {
    const ssize_t n = c.send_once(block.data(), block.size());
    if (n > 0) total += size_t(n);
    if (n < ssize_t(block.size())) break;  // timed out: stalled
  }
  // Socket buffers on both sides of the proxy plus the link queue; far less than 64 MiB.
  EXPECT_LT(total, size_t(40) << 20);
  // 1 Mbit/s for well under a second: the link delivered only a little.
  EXPECT_LT(proxy->stats().bytes_up, uint64_t(1) << 20);
}

TEST(LinkEmu, StartRejectsBadOptions) {
  le::Options o;
  auto no_target = le::Proxy::start(o);
  ASSERT_FALSE(no_target.ok());
  EXPECT_NE(no_target.status().message().find("target"), std::string::npos);

  o.target = "127.0.0.1:1";
  o.listen = "localhost:0";
  auto bad_listen = le::Proxy::start(o);
  ASSERT_FALSE(bad_listen.ok());
  EXPECT_NE(bad_listen.status().message().find("localhost"), std::string::npos) << bad_listen.status().message();

  o.listen = "127.0.0.1:0";
  o.down.queue_bytes = 100;
  auto bad_queue = le::Proxy::start(o);
  ASSERT_FALSE(bad_queue.ok());
  EXPECT_NE(bad_queue.status().message().find("down: queue_bytes"), std::string::npos) << bad_queue.status().message();

  o.down.queue_bytes = 1 << 16;
  o.up.trace_ms = {3, 2};
  EXPECT_FALSE(le::Proxy::start(o).ok());

  o.up.trace_ms.clear();
  auto ok = le::Proxy::start(o);
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_FALSE((*ok)->set_shape(le::Direction::kBoth, rate_shape(-1)).ok());
  (*ok)->stop();
  (*ok)->stop();  // idempotent
}
