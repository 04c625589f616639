#include "libsplit/client.h"

#include <chrono>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <asio.hpp>

#include "common/errors.h"
#include "common/log.h"
#include "net/endpoint.h"
#include "net/stream.h"
#include "protocol/frame_reader.h"
#include "protocol/frames.h"

namespace libsplit {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using detail::cat;
namespace proto = protocol;

struct Client::Impl : std::enable_shared_from_this<Impl> {
  ClientOptions opt;
  std::vector<net::HostPort> endpoints;  // the servers to try, in order (ClientOptions.server)
  size_t current = 0;                    // the one connected to, or tried next
  std::string where() const { return endpoints[current].host + ":" + std::to_string(endpoints[current].port); }
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread;
  net::Stream stream{tcp::socket(io)};  // TCP, or TLS over it
  std::shared_ptr<net::TlsContext> tls;  // set: connections are TLS
  tcp::resolver resolver{io};
  asio::steady_timer handshake_timer{io};
  asio::steady_timer reconnect_timer{io};

  mutable std::mutex mu;  // guards splits/input_shape after the first handshake
  std::vector<RemoteSplit> splits;
  std::vector<int64_t> input_shape;
  std::atomic<bool> is_connected{false};
  bool draining = false;  // the server said it drains: no new requests; close once all answered
  bool shutting_down = false;
  uint64_t generation = 0;  // bumps on every new socket: stale handlers check it
  uint32_t backoff_ms = 0;
  uint32_t server_max_frame = proto::kDefaultMaxFrame;
  uint16_t server_minor = 0;
  uint64_t next_id = 1;
  // Caller-driven mode: calls take turns on call_mu and run `io` themselves.
  std::mutex call_mu;
  Clock::time_point next_attempt{};  // earliest reconnect attempt after a drop

  struct Pending {
    ReplyCallback done;
    std::unique_ptr<asio::steady_timer> timer;  // the deadline; caller-driven calls watch it themselves
    Clock::time_point sent;
    size_t request_bytes = 0;
    // Set until the request is sent a second time: a request whose connection was lost is sent
    // once more, on the next connection (to the same server or the next endpoint). Inference
    // requests are idempotent; pings are not resent (they measure their connection).
    std::shared_ptr<const std::vector<uint8_t>> frame;
    bool parked = false;  // waiting for a new connection
  };
  std::unordered_map<uint64_t, Pending> pending;
  std::deque<std::shared_ptr<const std::vector<uint8_t>>> write_queue;
  bool writing = false;
  std::array<uint8_t, proto::kHeaderSize> header_buf{};  // the handshake reads exactly its reply
  proto::FrameHeader header;
  std::vector<uint8_t> body;
  proto::FrameReader reader;  // after the handshake: whatever the socket has, frames taken whole
  proto::Frame frame;

  // Connects to the current endpoint and, while they are unreachable, to the next ones (each
  // tried once per call).
  void handshake(std::function<void(Status)> done, size_t tries_left = 0);
  void handshake_one(std::function<void(Status)> done);
  void tls_handshake(std::function<void(Status)> finish);  // after connect, then send_hello
  void send_hello(std::function<void(Status)> finish);     // the hello and its reply
  void on_connected();
  // Connection lost: requests sent once are parked for the next connection when `retry`, the
  // rest fail; schedules the reconnect.
  void drop(const Status& why, bool retry = false);
  void fail_parked(const Status& why);
  // Why request `id` got no answer within `ms`: a request waiting for a new connection was cut
  // off from the server (unavailable), not slowed by the link (deadline exceeded).
  Status no_reply(uint64_t id, uint32_t ms) const {
    auto it = pending.find(id);
    if (it != pending.end() && it->second.parked)
      return detail::unavailable("connection lost and no reconnect within ", ms, " ms");
    return detail::deadline_exceeded("no reply within ", ms, " ms");
  }
  // Completes every pending request `which` selects with `st`.
  template <typename Which>
  void fail_pending(Which which, const Status& st);
  bool has_parked() const {
    for (const auto& [id, p] : pending)
      if (p.parked) return true;
    return false;
  }
  void schedule_reconnect();
  void read_loop(uint64_t gen);
  void on_frame();
  void write_next();
  void complete(uint64_t id, Result<Reply> r);
  // Returns the request id (0 when `done` was already called with an error).
  uint64_t send_request(uint16_t split, EncodedTensor tensor, int top_k, uint32_t deadline_ms, ReplyCallback done);
  uint64_t send_ping(uint32_t padding, uint32_t deadline_ms, ReplyCallback done);
  // Registers a frame as pending under `id` (its reply completes `done`) and queues it.
  uint64_t enqueue(uint64_t id, std::shared_ptr<const std::vector<uint8_t>> frame, uint32_t deadline_ms,
                   ReplyCallback done, bool retryable);

  bool driven() const { return !opt.io_thread; }
  // Caller-driven mode, call_mu held: runs the I/O on this thread until *flag is set.
  void run_until(const bool* flag) {
    while (!*flag && !io.stopped()) io.run_one();
  }
  void reconnect_now();  // caller-driven, call_mu held
  void shut_down();
  // Caller-driven: sends through `send` (which returns the pending id) and runs the I/O until done.
  Result<Reply> call(uint32_t deadline_ms, const std::function<uint64_t(ReplyCallback)>& send);
};

void Client::Impl::handshake(std::function<void(Status)> done, size_t tries_left) {
  if (tries_left == 0) tries_left = endpoints.size();
  handshake_one([this, self = shared_from_this(), done, tries_left](Status st) {
    if (st.ok() || st.code() != StatusCode::kUnavailable || tries_left <= 1) return done(st);
    detail::logger()->info("{}; trying the next server", st.message());
    current = (current + 1) % endpoints.size();
    handshake(done, tries_left - 1);
  });
}

void Client::Impl::handshake_one(std::function<void(Status)> done) {
  const uint64_t gen = ++generation;
  std::error_code ignored;
  stream.socket().close(ignored);
  stream = net::Stream(tcp::socket(io));
  reader = proto::FrameReader();
  auto self = shared_from_this();
  auto finished = std::make_shared<bool>(false);
  auto finish = [this, self, done, finished, gen](Status st) {
    if (*finished) return;
    *finished = true;
    handshake_timer.cancel();
    if (!st.ok()) {
      std::error_code ig;
      stream.socket().close(ig);
    }
    done(st);
  };
  handshake_timer.expires_after(std::chrono::milliseconds(opt.connect_timeout_ms));
  handshake_timer.async_wait([this, finish](std::error_code ec) {
    if (ec) return;
    finish(detail::unavailable("no handshake with ", where(), " within ", opt.connect_timeout_ms, " ms"));
  });
  resolver.async_resolve(endpoints[current].host, std::to_string(endpoints[current].port), [this, self, finish](std::error_code ec, tcp::resolver::results_type res) {
    if (ec) return finish(detail::unavailable("cannot resolve ", endpoints[current].host, ": ", ec.message()));
    asio::async_connect(stream.socket(), res, [this, self, finish](std::error_code ec, const tcp::endpoint&) {
      if (ec) return finish(detail::unavailable("cannot connect to ", where(), ": ", ec.message()));
      std::error_code ig;
      stream.socket().set_option(tcp::no_delay(true), ig);
      if (tls) return tls_handshake(finish);
      send_hello(finish);
    });
  });
}

void Client::Impl::tls_handshake(std::function<void(Status)> finish) {
#ifdef LIBSPLIT_HAVE_TLS
  stream.start_tls(*tls);
  auto* s = stream.tls();
  // The certificate must name the server: its host name (sent as SNI too) or its IP address.
  const std::string name = opt.tls_server_name.empty() ? endpoints[current].host : opt.tls_server_name;
  std::error_code ig;
  if (asio::ip::make_address(name, ig), ig) SSL_set_tlsext_host_name(s->native_handle(), name.c_str());
  s->set_verify_callback(asio::ssl::host_name_verification(name));
  s->async_handshake(asio::ssl::stream_base::client, [this, self = shared_from_this(), finish](std::error_code ec) {
    if (ec) return finish(detail::unavailable("TLS handshake with ", where(), " failed: ", ec.message()));
    send_hello(finish);
  });
#else
  finish(detail::failed_precondition("TLS was asked for, but libsplit was built without it"));
#endif
}

void Client::Impl::send_hello(std::function<void(Status)> finish) {
  auto self = shared_from_this();
  proto::Hello h;
  h.model = opt.model;
  h.version = opt.version;
  h.split = opt.split;
  h.max_frame = opt.max_frame_bytes;
  h.token = opt.auth_token;
  auto frame = std::make_shared<std::vector<uint8_t>>();
  proto::append_frame(proto::FrameType::kHello, proto::encode_hello(h), frame.get());
  stream.async_write(asio::buffer(*frame), [this, self, finish, frame](std::error_code ec, size_t) {
    if (ec) return finish(detail::unavailable("handshake with ", where(), " failed: ", ec.message()));
    stream.async_read(asio::buffer(header_buf), [this, self, finish](std::error_code ec, size_t n) {
      if (ec)
        return finish(detail::unavailable("handshake with ", where(), " failed: ", ec.message(),
                                          tls ? "" : " (a server that requires TLS closes plain connections)"));
      Status st = proto::decode_header(header_buf.data(), n, opt.max_frame_bytes, &header);
      if (!st.ok()) return finish(Status(StatusCode::kUnavailable, "handshake reply: " + st.message()));
      body.resize(header.body_length);
      stream.async_read(asio::buffer(body), [this, self, finish](std::error_code ec, size_t) {
        if (ec) return finish(detail::unavailable("handshake with ", where(), " failed: ", ec.message()));
        Status st = proto::check_body(header, body.data(), body.size());
        if (!st.ok()) return finish(st);
        if (header.type == proto::FrameType::kError) {
          proto::ErrorFrame e;
          st = proto::decode_error(body.data(), body.size(), &e);
          if (!st.ok()) return finish(st);
          return finish(Status(e.code, "server refused the handshake: " + e.message));
        }
        if (header.type != proto::FrameType::kHelloReply)
          return finish(detail::invalid_argument("handshake: expected a hello reply, got frame type ", int(header.type)));
        proto::HelloReply r;
        st = proto::decode_hello_reply(body.data(), body.size(), &r);
        if (!st.ok()) return finish(st);
        if (r.major != proto::kVersionMajor)
          return finish(Status(StatusCode::kFailedPrecondition,
                               cat("server speaks protocol ", r.major, ".", r.minor, ", this client ",
                                   proto::kVersionMajor, ".", proto::kVersionMinor)));
        server_max_frame = r.max_frame;
        server_minor = r.minor;
        {
          std::lock_guard<std::mutex> lock(mu);
          if (splits.empty()) {
            for (const auto& s : r.splits) splits.push_back({s.index, s.id, s.codec, s.bottleneck_shape});
            input_shape = r.input_shape;
          } else if (splits.size() != r.splits.size()) {
            return finish(Status(StatusCode::kFailedPrecondition,
                                 "the server's splits changed across a reconnect"));
          }
        }
        finish(Status());
      });
    });
  });
}

void Client::Impl::on_connected() {
  is_connected = true;
  backoff_ms = 0;
  detail::logger()->info("connected to {} ({} {})", where(), opt.model, opt.version);
  // Requests lost with the previous connection go out again, in the order they were sent.
  std::vector<std::pair<uint64_t, Pending*>> again;
  for (auto& [id, p] : pending)
    if (p.parked) again.push_back({id, &p});
  std::sort(again.begin(), again.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [id, p] : again) {
    p->parked = false;
    p->sent = Clock::now();
    write_queue.push_back(std::move(p->frame));  // no third send
  }
  if (!again.empty()) detail::logger()->info("sending {} requests again after the reconnect", again.size());
  read_loop(generation);
  write_next();
}

void Client::Impl::drop(const Status& why, bool retry) {
  if (!is_connected && pending.empty()) return;
  const bool was = is_connected.exchange(false);
  draining = false;
  ++generation;
  std::error_code ig;
  stream.socket().close(ig);
  write_queue.clear();
  writing = false;
  for (auto& [id, p] : pending) p.parked = retry && !shutting_down && p.frame != nullptr;
  fail_pending([](const Pending& p) { return !p.parked; },
               Status(why.code() == StatusCode::kOk ? StatusCode::kUnavailable : why.code(), why.message()));
  if (was && !shutting_down) {
    detail::logger()->warn("connection to {} lost: {}", where(), why.message());
    if (has_parked()) backoff_ms = 0;  // answers are awaited: try again at once
    schedule_reconnect();
  }
}

template <typename Which>
void Client::Impl::fail_pending(Which which, const Status& st) {
  std::vector<Pending> failed;  // taken out first: a callback may send a new request
  for (auto it = pending.begin(); it != pending.end();) {
    if (!which(it->second)) {
      ++it;
      continue;
    }
    failed.push_back(std::move(it->second));
    it = pending.erase(it);
  }
  for (auto& p : failed) {
    if (p.timer) p.timer->cancel();
    p.done(st);
  }
}

void Client::Impl::fail_parked(const Status& why) {
  fail_pending([](const Pending& p) { return p.parked; },
               Status(StatusCode::kUnavailable, "connection lost and no server answered again: " + why.message()));
}

void Client::Impl::schedule_reconnect() {
  if (shutting_down) return;
  if (driven()) {
    // The next call tries again: at once after a drop, then after a growing backoff.
    next_attempt = Clock::now() + std::chrono::milliseconds(backoff_ms);
    backoff_ms = backoff_ms == 0 ? opt.reconnect_initial_ms : std::min(backoff_ms * 2, opt.reconnect_max_ms);
    return;
  }
  const uint32_t wait_ms = backoff_ms;  // 0 right after a drop: the first attempt is immediate
  backoff_ms = backoff_ms == 0 ? opt.reconnect_initial_ms : std::min(backoff_ms * 2, opt.reconnect_max_ms);
  reconnect_timer.expires_after(std::chrono::milliseconds(wait_ms));
  reconnect_timer.async_wait([this, self = shared_from_this()](std::error_code ec) {
    if (ec || shutting_down || is_connected) return;
    handshake([this, self](Status st) {
      if (st.ok()) return on_connected();
      detail::logger()->debug("reconnect failed: {}", st.message());
      fail_parked(st);
      schedule_reconnect();
    });
  });
}

void Client::Impl::read_loop(uint64_t gen) {
  size_t n = 0;
  uint8_t* p = reader.space(&n);
  stream.async_read_some(asio::buffer(p, n), [this, self = shared_from_this(), gen](std::error_code ec, size_t got) {
    if (gen != generation) return;
    if (ec) return drop(detail::unavailable("connection to ", where(), " closed: ", ec.message()), /*retry=*/true);
    reader.commit(got);
    for (;;) {
      auto more = reader.next(opt.max_frame_bytes, &frame);
      if (!more.ok()) return drop(Status(StatusCode::kUnavailable, "bad frame from server: " + more.status().message()));
      if (!*more) break;
      on_frame();
      if (gen != generation) return;
    }
    read_loop(gen);
  });
}

void Client::Impl::on_frame() {
  Status st;
  switch (frame.header.type) {
    case proto::FrameType::kResponse: {
      proto::Response r;
      st = proto::decode_response(frame.body, frame.size(), &r);
      if (!st.ok()) return drop(Status(StatusCode::kUnavailable, "bad response from server: " + st.message()));
      auto it = pending.find(r.id);
      if (it == pending.end()) return;  // its deadline already passed
      Reply reply;
      reply.top = std::move(r.top);
      reply.output = std::move(r.output);
      reply.server_queue_us = r.queue_us;
      reply.server_tail_us = r.tail_us;
      reply.round_trip_us = uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - it->second.sent).count());
      reply.request_bytes = it->second.request_bytes;
      reply.response_bytes = proto::kHeaderSize + frame.size();
      complete(r.id, std::move(reply));
      return;
    }
    case proto::FrameType::kError: {
      proto::ErrorFrame e;
      st = proto::decode_error(frame.body, frame.size(), &e);
      if (!st.ok()) return drop(Status(StatusCode::kUnavailable, "bad error frame from server: " + st.message()));
      if (e.id == 0) return drop(Status(e.code, "server closed the connection: " + e.message));
      complete(e.id, Status(e.code, e.message));
      return;
    }
    case proto::FrameType::kPong: {
      uint64_t nonce = 0;
      st = proto::decode_u64(frame.body, frame.size(), &nonce);
      if (!st.ok()) return drop(Status(StatusCode::kUnavailable, "bad pong from server: " + st.message()));
      auto it = pending.find(nonce);
      if (it == pending.end()) return;
      Reply reply;
      reply.round_trip_us = uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - it->second.sent).count());
      reply.request_bytes = it->second.request_bytes;
      reply.response_bytes = proto::kHeaderSize + frame.size();
      complete(nonce, std::move(reply));
      return;
    }
    case proto::FrameType::kDrain:
      // Requests already sent are still answered; new ones wait for the next connection.
      draining = true;
      if (pending.empty()) drop(detail::unavailable("server ", where(), " is draining"));
      return;
    default:
      return drop(detail::unavailable("unexpected frame type ", int(frame.header.type), " from server"));
  }
}

void Client::Impl::complete(uint64_t id, Result<Reply> r) {
  auto it = pending.find(id);
  if (it == pending.end()) return;
  auto done = std::move(it->second.done);
  if (it->second.timer) it->second.timer->cancel();
  pending.erase(it);
  done(std::move(r));
  if (draining && pending.empty()) drop(detail::unavailable("server ", where(), " is draining"));
}

void Client::Impl::write_next() {
  if (writing || write_queue.empty() || !is_connected) return;
  writing = true;
  stream.async_write(asio::buffer(*write_queue.front()),
                    [this, self = shared_from_this(), gen = generation](std::error_code ec, size_t) {
                      if (gen != generation) return;
                      writing = false;
                      write_queue.pop_front();
                      if (ec) return drop(detail::unavailable("send to ", where(), " failed: ", ec.message()), /*retry=*/true);
                      write_next();
                    });
}

uint64_t Client::Impl::send_request(uint16_t split, EncodedTensor tensor, int top_k, uint32_t deadline_ms,
                                    ReplyCallback done) {
  auto refuse = [&](Status st) {
    done(std::move(st));
    return uint64_t(0);
  };
  if (shutting_down) return refuse(detail::unavailable("client is shutting down"));
  if (!is_connected) return refuse(detail::unavailable("not connected to ", where(), " (reconnecting)"));
  if (draining) return refuse(detail::unavailable("server ", where(), " is draining (reconnecting after)"));
  if (top_k < 0 || top_k > 255) return refuse(detail::invalid_argument("top_k must be in [0, 255], got ", top_k));
  proto::Request req;
  req.id = next_id++;
  const uint32_t ms = deadline_ms ? deadline_ms : opt.default_deadline_ms;
  req.deadline_us = ms >= 4294967u ? 0xFFFFFFFFu : ms * 1000u;
  req.split = split;
  req.top_k = uint8_t(top_k);
  req.tensor = std::move(tensor);
  const size_t frame_bytes = proto::request_frame_size(req);
  if (frame_bytes - proto::kHeaderSize > server_max_frame)
    return refuse(detail::resource_exhausted("request of ", frame_bytes, " bytes exceeds the server's limit of ",
                                             server_max_frame));
  auto frame = std::make_shared<std::vector<uint8_t>>();
  frame->reserve(frame_bytes);
  proto::append_frame(proto::FrameType::kRequest, proto::encode_request(req), frame.get());
  return enqueue(req.id, std::move(frame), ms, std::move(done), /*retryable=*/true);
}

uint64_t Client::Impl::send_ping(uint32_t padding, uint32_t deadline_ms, ReplyCallback done) {
  if (shutting_down) return done(detail::unavailable("client is shutting down")), uint64_t(0);
  if (!is_connected) return done(detail::unavailable("not connected to ", where(), " (reconnecting)")), uint64_t(0);
  if (draining) return done(detail::unavailable("server ", where(), " is draining")), uint64_t(0);
  if (padding > (1u << 20)) return done(detail::invalid_argument("ping padding above 1 MiB: ", padding)), uint64_t(0);
  if (server_minor < 2) padding = 0;  // an older server reads exactly a nonce
  padding = std::min<uint32_t>(padding, server_max_frame > 8 ? server_max_frame - 8 : 0);
  const uint64_t id = next_id++;
  auto frame = std::make_shared<std::vector<uint8_t>>();
  proto::append_frame(proto::FrameType::kPing, proto::encode_ping(id, padding), frame.get());
  return enqueue(id, std::move(frame), deadline_ms ? deadline_ms : opt.default_deadline_ms, std::move(done),
                 /*retryable=*/false);  // a ping measures this connection
}

uint64_t Client::Impl::enqueue(uint64_t id, std::shared_ptr<const std::vector<uint8_t>> frame, uint32_t ms,
                               ReplyCallback done, bool retryable) {
  Pending p;
  p.done = std::move(done);
  p.request_bytes = frame->size();
  p.sent = Clock::now();
  if (retryable) p.frame = frame;
  if (!driven()) {
    p.timer = std::make_unique<asio::steady_timer>(io, std::chrono::milliseconds(ms));
    p.timer->async_wait([this, self = shared_from_this(), id, ms](std::error_code ec) {
      if (ec) return;
      complete(id, no_reply(id, ms));
    });
  }
  pending.emplace(id, std::move(p));
  write_queue.push_back(std::move(frame));
  write_next();
  return id;
}

void Client::Impl::reconnect_now() {
  io.poll();  // whatever already happened on the socket (a close, a drain frame) is noticed now
  if (is_connected || shutting_down || Clock::now() < next_attempt) return;
  bool done = false;
  handshake([this, &done](Status st) {
    if (st.ok()) {
      on_connected();
    } else {
      detail::logger()->debug("reconnect failed: {}", st.message());
      fail_parked(st);
      schedule_reconnect();
    }
    done = true;
  });
  run_until(&done);
}

Result<Reply> Client::Impl::call(uint32_t deadline_ms, const std::function<uint64_t(ReplyCallback)>& send) {
  std::lock_guard<std::mutex> lock(call_mu);
  reconnect_now();
  bool done = false;
  Result<Reply> result = Status();
  const uint32_t ms = deadline_ms ? deadline_ms : opt.default_deadline_ms;
  const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
  const uint64_t id = send([&](Result<Reply> r) {
    result = std::move(r);
    done = true;
  });
  // No timer per request: this thread runs the I/O until the reply or the deadline; for the
  // first busy_poll_us it polls without sleeping (no wake-up to pay when the reply comes soon).
  const auto spin_until = Clock::now() + std::chrono::microseconds(opt.busy_poll_us);
  while (!done && !io.stopped()) {
    if (opt.busy_poll_us > 0 && Clock::now() < std::min(spin_until, deadline)) {
      io.poll_one();
      continue;
    }
    if (io.run_one_until(deadline) == 0 && Clock::now() >= deadline)
      complete(id, no_reply(id, ms));
    // The connection was lost with this request on it: reconnect now (to this server or the
    // next) and send it again.
    if (!done && !is_connected && has_parked()) {
      next_attempt = Clock::now();
      reconnect_now();
    }
  }
  if (!done) return detail::unavailable("client is shutting down");
  return result;
}

Client::Client(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

// Fails what is pending and closes the socket; on the I/O thread, or with call_mu held.
void Client::Impl::shut_down() {
  shutting_down = true;
  reconnect_timer.cancel();
  handshake_timer.cancel();
  drop(detail::unavailable("client closed"));
  std::error_code ig;
  stream.socket().close(ig);
}

Client::~Client() {
  auto impl = impl_;
  if (impl->driven()) {
    std::lock_guard<std::mutex> lock(impl->call_mu);
    impl->shut_down();
    impl->work.reset();
    impl->io.poll();  // the aborted operations finish and release the handlers they hold
    impl->io.stop();
    return;
  }
  std::promise<void> closed;
  asio::post(impl->io, [impl, &closed] {
    impl->shut_down();
    closed.set_value();
  });
  closed.get_future().wait();
  impl->work.reset();
  impl->io.stop();
  if (impl->thread.joinable()) impl->thread.join();
}

Result<std::unique_ptr<Client>> Client::connect(const ClientOptions& o) {
  if (o.model.empty()) return detail::invalid_argument("ClientOptions.model is empty: name the bundle to use");
  if (o.max_frame_bytes < 1024) return detail::invalid_argument("max_frame_bytes must be at least 1024");
  if (o.busy_poll_us > 1000000) return detail::invalid_argument("busy_poll_us must be at most 1000000 (1 s), got ", o.busy_poll_us);
  if (o.reconnect_initial_ms == 0 || o.reconnect_max_ms < o.reconnect_initial_ms)
    return detail::invalid_argument("reconnect backoff must satisfy 0 < initial <= max");
  auto impl = std::make_shared<Impl>();
  impl->opt = o;
  if (!o.tls && (!o.tls_ca_file.empty() || !o.tls_cert_file.empty() || !o.tls_key_file.empty()))
    return detail::invalid_argument("TLS files were given but ClientOptions.tls is false");
  if (o.tls) {
    auto tls = net::make_client_tls(o.tls_ca_file, o.tls_cert_file, o.tls_key_file);
    if (!tls.ok()) return tls.status();
    impl->tls = std::move(*tls);
  }
  for (size_t from = 0; from <= o.server.size();) {
    size_t comma = o.server.find(',', from);
    if (comma == std::string::npos) comma = o.server.size();
    auto hp = net::parse_host_port(o.server.substr(from, comma - from));
    if (!hp.ok()) return hp.status();
    impl->endpoints.push_back(*hp);
    from = comma + 1;
  }
  Status st;
  if (impl->driven()) {
    std::lock_guard<std::mutex> lock(impl->call_mu);
    bool done = false;
    impl->handshake([&](Status s) {
      if (s.ok()) impl->on_connected();
      st = s;
      done = true;
    });
    impl->run_until(&done);
  } else {
    impl->thread = std::thread([impl] { impl->io.run(); });
    std::promise<Status> result;
    asio::post(impl->io, [impl, &result] {
      impl->handshake([impl, &result](Status st) {
        if (st.ok()) impl->on_connected();
        result.set_value(st);
      });
    });
    st = result.get_future().get();
  }
  auto client = std::unique_ptr<Client>(new Client(impl));
  if (!st.ok()) {
    const bool retry = o.start_offline && st.code() == StatusCode::kUnavailable;
    if (!retry) return st;  // the destructor stops the thread
    detail::logger()->warn("{}; starting offline, retrying in the background", st.message());
    if (impl->driven()) {
      std::lock_guard<std::mutex> lock(impl->call_mu);
      impl->schedule_reconnect();
    } else {
      asio::post(impl->io, [impl] { impl->schedule_reconnect(); });
    }
  }
  return client;
}

std::vector<RemoteSplit> Client::splits() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->splits;
}
std::vector<int64_t> Client::input_shape() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->input_shape;
}
int Client::find_split(const std::string& id) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (const auto& s : impl_->splits)
    if (s.id == id) return s.index;
  return -1;
}
bool Client::connected() const { return impl_->is_connected; }

void Client::infer_async(uint16_t split, const EncodedTensor& tensor, int top_k, uint32_t deadline_ms, ReplyCallback done) {
  if (impl_->driven())
    return done(impl_->call(deadline_ms, [&](ReplyCallback cb) {
      return impl_->send_request(split, tensor, top_k, deadline_ms, std::move(cb));
    }));
  asio::post(impl_->io, [impl = impl_, split, tensor, top_k, deadline_ms, done = std::move(done)]() mutable {
    impl->send_request(split, std::move(tensor), top_k, deadline_ms, std::move(done));
  });
}

Result<Reply> Client::infer(uint16_t split, const EncodedTensor& tensor, int top_k, uint32_t deadline_ms) {
  if (impl_->driven())
    return impl_->call(deadline_ms, [&](ReplyCallback cb) {
      return impl_->send_request(split, tensor, top_k, deadline_ms, std::move(cb));
    });
  if (impl_->thread.get_id() == std::this_thread::get_id())
    return detail::failed_precondition("blocking infer() called from the client's own callback thread");
  auto promise = std::make_shared<std::promise<Result<Reply>>>();
  auto future = promise->get_future();
  infer_async(split, tensor, top_k, deadline_ms, [promise](Result<Reply> r) { promise->set_value(std::move(r)); });
  return future.get();
}

void Client::ping_async(uint32_t padding, uint32_t deadline_ms, ReplyCallback done) {
  if (impl_->driven())
    return done(impl_->call(deadline_ms, [&](ReplyCallback cb) { return impl_->send_ping(padding, deadline_ms, std::move(cb)); }));
  asio::post(impl_->io, [impl = impl_, padding, deadline_ms, done = std::move(done)]() mutable {
    impl->send_ping(padding, deadline_ms, std::move(done));
  });
}

Result<Reply> Client::ping(uint32_t padding, uint32_t deadline_ms) {
  if (impl_->driven())
    return impl_->call(deadline_ms, [&](ReplyCallback cb) { return impl_->send_ping(padding, deadline_ms, std::move(cb)); });
  if (impl_->thread.get_id() == std::this_thread::get_id())
    return detail::failed_precondition("blocking ping() called from the client's own callback thread");
  auto promise = std::make_shared<std::promise<Result<Reply>>>();
  auto future = promise->get_future();
  ping_async(padding, deadline_ms, [promise](Result<Reply> r) { promise->set_value(std::move(r)); });
  return future.get();
}

}  // namespace libsplit
