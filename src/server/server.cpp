#include "libsplit/server.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <dirent.h>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <asio.hpp>

#include "common/errors.h"
#include "common/log.h"
#include "libsplit/bundle.h"
#include "libsplit/preprocess.h"
#include "net/endpoint.h"
#include "net/stream.h"
#include "protocol/frame_reader.h"
#include "server/http.h"
#include "server/metrics.h"
#include "protocol/frames.h"

namespace libsplit {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using detail::cat;
using detail::invalid_argument;
namespace proto = protocol;

namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// "1.10.0" > "1.9.2": compares dot-separated numeric parts, then text.
bool version_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (isdigit(a[i]) && isdigit(b[j])) {
      size_t ei = i, ej = j;
      while (ei < a.size() && isdigit(a[ei])) ++ei;
      while (ej < b.size() && isdigit(b[ej])) ++ej;
      const std::string na = a.substr(i, ei - i), nb = b.substr(j, ej - j);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ei;
      j = ej;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

struct Batcher;

struct Model {
  std::unique_ptr<Bundle> bundle;
  std::atomic<uint32_t> queued{0};  // requests posted to the workers and not yet started
  // Moving average of each split's tail time in us (the last: the full model); unknown until
  // one ran (kUnknownTail). Decides whether a request may run inline on its I/O thread.
  static constexpr uint32_t kUnknownTail = UINT32_MAX;
  std::unique_ptr<std::atomic<uint32_t>[]> tail_us;
  // With batching on: one queue per split, the last for the full model.
  std::vector<std::unique_ptr<Batcher>> batchers;
};

}  // namespace

class Connection;

// An admitted request on its way to a worker.
struct Pending {
  std::shared_ptr<Connection> conn;
  std::shared_ptr<proto::Request> req;
  int index = -1;  // manifest split index; -1 = the full model
  Clock::time_point arrival, deadline;
};

namespace {
// Requests of one model and split waiting to be run together.
struct Batcher {
  std::mutex mu;
  std::condition_variable cv;  // the queue reached max_batch
  std::deque<Pending> queue;
  bool collecting = false;  // a worker is gathering a batch from this queue
};
}  // namespace

struct ServerState;

// One client connection. Reads, the timer and state changes run on `strand`; writes are guarded
// by write_mu_ (a worker writes its reply itself when nothing is queued, see send()).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(ServerState* server, tcp::socket socket);
  void start();
  void close();  // thread-safe
  void send(proto::FrameType type, std::vector<uint8_t> body, bool close_after = false);  // thread-safe
  // A request's answer was handed to the socket (thread-safe): drain counts it done.
  void finish_request();
  // The split id a request index names: "full", a manifest id, or "unknown".
  std::string split_label(uint16_t index) const;
  const std::string& model_name() const;
  const Bundle& bundle() const { return *bundle_; }
  // Answer an admitted request (thread-safe; each ends the request).
  void reply(const Pending& p, Tensor out, Clock::time_point start, Clock::time_point end);
  void reply_error(const Pending& p, const Status& s);

 private:
  void read_more();
  void on_bytes();
  void on_frame();
  void handle_hello();
  void handle_request();
  void fail(const Status& st, uint64_t request_id = 0);  // error frame, then close
  // Answers a request that is not admitted (it was never counted in flight).
  void refuse(uint64_t id, const std::string& split, const Status& st);
  void set_deadline(uint32_t ms, const char* why);
  void arm_timer_at(Clock::time_point t);
  void start_write_locked();
  void do_close();

  ServerState* server_;
  net::Stream stream_;  // TCP, or TLS over it
  asio::strand<asio::any_io_executor> strand_;
  // One deadline for the connection (handshake, frame, idle); the timer is re-armed only when
  // it fires early or the deadline moves earlier, so a request costs no timer system call.
  asio::steady_timer timer_;
  Clock::time_point deadline_{};
  const char* deadline_why_ = "";
  Clock::time_point timer_at_{};
  bool timer_armed_ = false;
  bool in_frame_ = false;  // a frame has started arriving: the frame timeout runs
  std::string peer_;
  proto::FrameReader reader_;
  proto::Frame frame_;  // the frame being handled; its body points into reader_
  bool hello_done_ = false;
  std::mutex write_mu_;  // guards the four below
  bool closing_ = false;  // written on the strand only, so the strand may read it unlocked
  bool writing_ = false;
  bool close_after_write_ = false;  // likewise
  std::deque<std::vector<uint8_t>> write_queue_;
  std::atomic<uint32_t> in_flight_{0};
  const Bundle* bundle_ = nullptr;
  Model* model_ = nullptr;
  std::vector<int> split_map_;  // request split index -> manifest split index
};

struct ServerState {
  ServerOptions opt;
  std::map<std::string, std::map<std::string, Model, bool (*)(const std::string&, const std::string&)>> models;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  tcp::acceptor acceptor{io};
  std::unique_ptr<asio::thread_pool> workers;
  std::vector<std::thread> io_threads;
  asio::steady_timer summary_timer{io};
  std::mutex mu;
  std::set<std::shared_ptr<Connection>> connections;
  std::condition_variable stopped_cv;
  bool started = false, stopped = false;
  uint16_t port = 0;

  std::atomic<uint64_t> accepted{0}, open{0}, rejected{0}, ok{0}, failed{0}, proto_errors{0}, rx{0}, tx{0};
  std::shared_ptr<net::TlsContext> tls;  // set: every connection is TLS
  std::atomic<uint64_t> tls_failures{0};
  std::atomic<uint64_t> queue_full{0}, late{0}, forwards{0}, forward_requests{0}, inline_runs{0};
  std::atomic<uint64_t> requests_received{0};
  std::atomic<uint32_t> busy{0};  // requests handed to the workers (or run inline) and not finished
  server::Metrics metrics;
  std::unique_ptr<server::HttpEndpoint> http;
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};
  std::atomic<uint64_t> in_flight_total{0};  // requests accepted and not yet answered
  std::condition_variable idle_cv;           // with mu: in_flight_total reached 0
  server::HttpResponse http_get(const std::string& path);

  // An I/O thread's loop: io.run(), or with busy_poll_us, polling without sleeping for that long
  // after each event before it blocks again (a request that comes soon after the last one is
  // read without a wake-up). It spins only while no tail runs: a busy server's cores belong to
  // its workers.
  void run_io() {
    const auto spin = std::chrono::microseconds(opt.busy_poll_us);
    if (spin.count() == 0) {
      io.run();
      return;
    }
    auto last = Clock::now();
    while (!io.stopped()) {
      if (io.poll_one() > 0) {
        last = Clock::now();
      } else if (busy.load(std::memory_order_relaxed) > 0 || Clock::now() - last >= spin) {
        if (io.run_one() == 0) return;  // stopped
        last = Clock::now();
      }
    }
  }

  // The deadline check and input decoding every request passes before a forward: false (and the
  // request answered) when it cannot run.
  bool take_input(const Pending& p, Clock::time_point now, Tensor* x);
  void run_one(Model* model, Pending p);  // decrements busy when done
  void run_batch(Model* model, Batcher* b);
  Status load_models();
  Model* find(const std::string& name, const std::string& version, std::string* available);
  void accept();
  void schedule_summary();
  void remove(const std::shared_ptr<Connection>& c) {
    std::lock_guard<std::mutex> lock(mu);
    connections.erase(c);
  }
};

Status ServerState::load_models() {
  const std::string& dir = opt.models_dir;
  if (!is_dir(dir)) return detail::not_found("models directory \"", dir, "\" does not exist");
  std::vector<std::string> bundle_dirs;
  if (is_file(dir + "/manifest.json")) {
    bundle_dirs.push_back(dir);
  } else {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return detail::not_found("cannot list models directory \"", dir, "\"");
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (is_file(dir + "/" + name + "/manifest.json")) bundle_dirs.push_back(dir + "/" + name);
    }
    ::closedir(d);
    std::sort(bundle_dirs.begin(), bundle_dirs.end());
  }
  if (bundle_dirs.empty()) return detail::not_found("no bundle (a directory with manifest.json) in \"", dir, "\"");
  BundleOptions bo;
  bo.device = opt.device;
  bo.load_heads = false;
  bo.load_local = false;  // on-device models only
  bo.intra_op_threads = opt.torch_threads;
  bo.optimize = opt.optimize;
  for (const auto& b : bundle_dirs) {
    auto bundle = Bundle::open(b, bo);
    if (!bundle.ok()) return bundle.status();
    const auto& m = (*bundle)->manifest();
    auto& versions = models.try_emplace(m.name, &version_less).first->second;
    if (versions.count(m.version)) return invalid_argument(b, ": model ", m.name, " version ", m.version, " is loaded twice");
    detail::logger()->info("loaded {} {} ({} splits) from {}", m.name, m.version, m.splits.size(), b);
    Model& model = versions[m.version];
    model.bundle = std::move(*bundle);
    if (opt.max_batch > 1)
      for (size_t i = 0; i <= m.splits.size(); ++i) model.batchers.push_back(std::make_unique<Batcher>());
    model.tail_us = std::make_unique<std::atomic<uint32_t>[]>(m.splits.size() + 1);
    for (size_t i = 0; i <= m.splits.size(); ++i) model.tail_us[i] = Model::kUnknownTail;
  }
  return {};
}

Model* ServerState::find(const std::string& name, const std::string& version, std::string* available) {
  auto it = models.find(name);
  if (it != models.end()) {
    if (version.empty()) return &it->second.rbegin()->second;
    auto v = it->second.find(version);
    if (v != it->second.end()) return &v->second;
  }
  for (const auto& [n, vs] : models)
    for (const auto& [v, m] : vs) *available += (available->empty() ? "" : ", ") + n + " " + v;
  return nullptr;
}

void ServerState::accept() {
  acceptor.async_accept(asio::make_strand(io), [this](std::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      detail::logger()->warn("accept failed: {}", ec.message());
    } else {
      ++accepted;
      std::shared_ptr<Connection> c;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (connections.size() >= opt.max_connections) {
          ++rejected;
          std::error_code ignored;
          socket.close(ignored);
        } else {
          c = std::make_shared<Connection>(this, std::move(socket));
          connections.insert(c);
        }
      }
      if (c) c->start();
    }
    accept();
  });
}

void ServerState::schedule_summary() {
  if (opt.summary_interval_ms == 0) return;
  summary_timer.expires_after(std::chrono::milliseconds(opt.summary_interval_ms));
  summary_timer.async_wait([this](std::error_code ec) {
    if (ec) return;
    detail::logger()->info("summary: {} connections open, {} accepted, {} requests ok, {} failed ({} queue full, "
                           "{} past their deadline), {} protocol errors, {} bytes in, {} bytes out",
                           open.load(), accepted.load(), ok.load(), failed.load(), queue_full.load(), late.load(),
                           proto_errors.load(), rx.load(), tx.load());
    schedule_summary();
  });
}

Connection::Connection(ServerState* server, tcp::socket socket)
    : server_(server), stream_(std::move(socket)), strand_(stream_.socket().get_executor()),
      timer_(stream_.socket().get_executor()) {
  std::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  stream_.socket().set_option(tcp::no_delay(true), ec);
  if (server->tls) stream_.start_tls(*server->tls);
}

void Connection::start() {
  ++server_->open;
  detail::logger()->info("connection from {}", peer_);
  asio::dispatch(strand_, [self = shared_from_this()] {
    // The TLS handshake and the hello share the handshake timeout.
    self->set_deadline(self->server_->opt.handshake_timeout_ms, "handshake timeout");
#ifdef LIBSPLIT_HAVE_TLS
    if (auto* tls = self->stream_.tls()) {
      tls->async_handshake(asio::ssl::stream_base::server, asio::bind_executor(self->strand_, [self](std::error_code ec) {
        if (self->closing_) return;
        if (ec) {
          ++self->server_->tls_failures;
          self->server_->metrics.rejected("tls");
          detail::logger()->info("closing {}: TLS handshake failed: {}", self->peer_, ec.message());
          return self->do_close();
        }
        self->read_more();
      }));
      return;
    }
#endif
    self->read_more();
  });
}

void Connection::set_deadline(uint32_t ms, const char* why) {
  deadline_ = Clock::now() + std::chrono::milliseconds(ms);
  deadline_why_ = why;
  if (!timer_armed_ || deadline_ < timer_at_) arm_timer_at(deadline_);
}

void Connection::arm_timer_at(Clock::time_point t) {
  timer_armed_ = true;
  timer_at_ = t;
  timer_.expires_at(t);
  timer_.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
    if (ec) return;  // re-armed for an earlier deadline, or closing
    self->timer_armed_ = false;
    if (self->closing_) return;
    if (Clock::now() < self->deadline_) return self->arm_timer_at(self->deadline_);  // it moved later
    detail::logger()->info("closing {}: {}", self->peer_, self->deadline_why_);
    self->do_close();
  }));
}

void Connection::read_more() {
  if (closing_ || close_after_write_) return;
  size_t n = 0;
  uint8_t* p = reader_.space(&n);
  stream_.async_read_some(asio::buffer(p, n),
                          asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec, size_t got) {
                            if (ec) return self->do_close();
                            self->server_->rx += got;
                            self->reader_.commit(got);
                            self->on_bytes();
                          }));
}

// Handles every complete frame buffered, then sets the deadline and reads again.
void Connection::on_bytes() {
  for (;;) {
    const uint32_t limit = hello_done_ ? server_->opt.max_frame_bytes : proto::kMaxHelloBody;
    auto got = reader_.next(limit, &frame_);
    if (!got.ok()) {
      ++server_->proto_errors;
      return fail(got.status());
    }
    if (!*got) break;
    in_frame_ = false;
    on_frame();
    if (closing_ || close_after_write_) return;  // an error frame is on its way, then we close
  }
  if (reader_.mid_frame()) {
    if (!in_frame_) {
      in_frame_ = true;
      set_deadline(server_->opt.frame_timeout_ms, "frame not completed in time");
    }
  } else if (hello_done_) {
    set_deadline(server_->opt.idle_timeout_ms, "idle timeout");
  }
  read_more();
}

void Connection::on_frame() {
  using proto::FrameType;
  const FrameType type = frame_.header.type;
  if (!hello_done_ && type != FrameType::kHello) {
    ++server_->proto_errors;
    return fail(invalid_argument("the first frame must be a hello, got type ", int(type)));
  }
  switch (type) {
    case FrameType::kHello:
      if (hello_done_) {
        ++server_->proto_errors;
        return fail(invalid_argument("a second hello on one connection"));
      }
      handle_hello();
      break;
    case FrameType::kRequest:
      handle_request();
      ++server_->requests_received;  // after admission: admitted or refused, never undecided
      break;
    case FrameType::kPing: {
      uint64_t nonce;
      Status st = proto::decode_ping(frame_.body, frame_.size(), &nonce);
      if (!st.ok()) {
        ++server_->proto_errors;
        return fail(st);
      }
      send(FrameType::kPong, proto::encode_u64(nonce));
      break;
    }
    default:
      ++server_->proto_errors;
      return fail(invalid_argument("frame type ", int(type), " is not accepted by the server"));
  }
}

void Connection::handle_hello() {
  proto::Hello h;
  Status st = proto::decode_hello(frame_.body, frame_.size(), &h);
  if (!st.ok()) {
    ++server_->proto_errors;
    return fail(st);
  }
  // Authentication comes before any model work; the comparison takes the same time wherever
  // the tokens differ.
  if (!server_->opt.auth_token.empty()) {
    const std::string& want = server_->opt.auth_token;
    unsigned char diff = h.token.size() == want.size() ? 0 : 1;
    for (size_t i = 0; i < want.size(); ++i) diff |= uint8_t(want[i] ^ (i < h.token.size() ? h.token[i] : 0));
    if (diff != 0) {
      ++server_->proto_errors;
      return fail(Status(StatusCode::kUnauthenticated, "missing or wrong token"));
    }
  }
  if (h.major != proto::kVersionMajor)
    return fail(Status(StatusCode::kFailedPrecondition,
                       cat("protocol version ", h.major, ".", h.minor, " is not supported; the server speaks ",
                           proto::kVersionMajor, ".", proto::kVersionMinor)));
  std::string available;
  model_ = server_->find(h.model, h.version, &available);
  bundle_ = model_ ? model_->bundle.get() : nullptr;
  if (!bundle_)
    return fail(detail::not_found("model \"", h.model, "\"", h.version.empty() ? "" : " version \"" + h.version + "\"",
                                  " is not served; available: ", available));
  const auto& m = bundle_->manifest();
  proto::HelloReply r;
  r.max_frame = server_->opt.max_frame_bytes;
  r.model = m.name;
  r.version = m.version;
  r.input_shape = m.input.shape;
  for (size_t i = 0; i < m.splits.size(); ++i) {
    if (!h.split.empty() && m.splits[i].id != h.split) continue;
    proto::SplitInfo s;
    s.index = uint16_t(split_map_.size());
    s.id = m.splits[i].id;
    s.codec = m.splits[i].codec;
    s.bottleneck_shape = m.splits[i].bottleneck_shape;
    r.splits.push_back(s);
    split_map_.push_back(int(i));
  }
  if (!h.split.empty() && split_map_.empty()) {
    std::string ids;
    for (const auto& s : m.splits) ids += (ids.empty() ? "" : ", ") + s.id;
    return fail(detail::not_found("split \"", h.split, "\" is not in model ", m.name, " ", m.version, "; available: ", ids));
  }
  hello_done_ = true;
  detail::logger()->info("{} uses {} {} ({} splits)", peer_, m.name, m.version, r.splits.size());
  send(proto::FrameType::kHelloReply, proto::encode_hello_reply(r));
}

std::string Connection::split_label(uint16_t index) const {
  if (index == proto::kSplitFull) return "full";
  if (index < split_map_.size()) return bundle_->manifest().splits[size_t(split_map_[index])].id;
  return "unknown";
}

const std::string& Connection::model_name() const { return bundle_->manifest().name; }

void Connection::handle_request() {
  auto req = std::make_shared<proto::Request>();
  Status st = proto::decode_request(frame_.body, frame_.size(), req.get());
  // The frame was well delimited and its CRC right: a bad request is refused, the connection kept.
  if (!st.ok()) return refuse(req->id, "unknown", st);
  int index = -1;
  if (req->split != proto::kSplitFull) {
    if (req->split >= split_map_.size())
      return refuse(req->id, "unknown",
                    detail::not_found("split index ", req->split, " was not agreed in the handshake (",
                                      split_map_.size(), " splits)"));
    index = split_map_[req->split];
  }
  if (server_->draining)
    return refuse(req->id, split_label(req->split), detail::unavailable("the server is draining: no new requests"));
  if (in_flight_.load() >= server_->opt.max_in_flight_per_connection) {
    server_->metrics.rejected("in_flight");
    return refuse(req->id, split_label(req->split),
                  detail::resource_exhausted("more than ", server_->opt.max_in_flight_per_connection,
                                             " requests in flight"));
  }
  // Admission: the model's queue is bounded; a full queue is answered at once.
  if (model_->queued.fetch_add(1) >= server_->opt.max_queue_per_model) {
    --model_->queued;
    ++server_->queue_full;
    server_->metrics.rejected("queue_full");
    return refuse(req->id, split_label(req->split),
                  detail::resource_exhausted("the queue of model ", bundle_->manifest().name, " is full (",
                                             server_->opt.max_queue_per_model, " requests waiting)"));
  }
  ++in_flight_;
  ++server_->in_flight_total;
  const auto arrival = Clock::now();
  // A request may shorten the server's default deadline, never extend it.
  uint64_t budget_us = uint64_t(server_->opt.default_deadline_ms) * 1000;
  if (req->deadline_us != 0) budget_us = std::min<uint64_t>(budget_us, req->deadline_us);
  Pending p{shared_from_this(), std::move(req), index, arrival, arrival + std::chrono::microseconds(budget_us)};
  if (server_->opt.max_batch > 1) {
    Batcher* b = model_->batchers[index < 0 ? model_->batchers.size() - 1 : size_t(index)].get();
    {
      std::lock_guard<std::mutex> lock(b->mu);
      b->queue.push_back(std::move(p));
      if (b->queue.size() >= server_->opt.max_batch) b->cv.notify_one();
    }
    asio::post(*server_->workers, [state = server_, model = model_, b] { state->run_batch(model, b); });
    return;
  }
  // A server serving one device, which waits for this answer, runs a short tail right here on
  // the I/O thread, sparing the hand-off to a worker (and its wake-up). Only when the I/O thread
  // has nothing else to read meanwhile: this is the only connection, and no further request is
  // already behind this one on it (pipelined); and no worker is busy. Every later request finds
  // `busy` non-zero until this one is done.
  const uint32_t limit = server_->opt.inline_tail_max_us;
  auto& tail_us = model_->tail_us[index < 0 ? bundle_->manifest().splits.size() : size_t(index)];
  uint32_t idle = 0;
  auto alone = [this] {
    if (server_->open.load() != 1 || reader_.buffered() > 0) return false;
    std::error_code ec;
    return stream_.socket().available(ec) == 0 && !ec;
  };
  if (limit > 0 && tail_us.load(std::memory_order_relaxed) <= limit && alone() &&
      server_->busy.compare_exchange_strong(idle, 1)) {
    --model_->queued;
    ++server_->inline_runs;
    server_->run_one(model_, std::move(p));
    return;
  }
  ++server_->busy;
  asio::post(*server_->workers, [state = server_, model = model_, p = std::move(p)]() mutable {
    --model->queued;
    state->run_one(model, std::move(p));
  });
}

namespace {

// Checks and decodes one request's tensor for the tail of manifest split `index` (-1: the full
// model), normalising images. Errors name the request's problem; the connection stays open.
Result<Tensor> prepare_input(const Bundle& bundle, int index, const proto::Request& req) {
  const auto& m = bundle.manifest();
  const EntropyTables* tables = nullptr;
  const auto& expected = index < 0 ? m.input.shape : m.splits[size_t(index)].bottleneck_shape;
  if (req.tensor.codec.kind == CodecKind::kImagePng) {
    // A PNG says its own size: it must be the model's input, checked before inflating.
    if (index >= 0) return invalid_argument("codec png is only for the full model (split 0xFFFF)");
    if (req.tensor.shape != m.input.shape)
      return invalid_argument("codec png: shape ", shape_to_string(req.tensor.shape), " is not the model's input ",
                              shape_to_string(m.input.shape));
  } else if (is_variable_length(req.tensor.codec)) {
    // Coded payloads carry no size of their own: the split's shape bounds what decoding makes.
    if (index < 0) return invalid_argument("codec ", codec_name(req.tensor.codec), " is only for a split agreed in the handshake");
    const auto& spec = m.splits[size_t(index)];
    if (req.tensor.shape != spec.bottleneck_shape)
      return invalid_argument("codec ", codec_name(req.tensor.codec), ": shape ", shape_to_string(req.tensor.shape),
                              " is not split ", spec.id, "'s bottleneck ", shape_to_string(spec.bottleneck_shape));
    tables = bundle.tables(size_t(index));
  } else if (index >= 0 && is_image(req.tensor.codec)) {
    return invalid_argument("codec ", codec_name(req.tensor.codec), " is only for the full model (split 0xFFFF)");
  }
  // Any batch size, the rest of the shape as the model expects (checked before decoding, so a
  // batched run never fails for one request's shape).
  if (req.tensor.shape.size() != expected.size() || req.tensor.shape.empty() || req.tensor.shape[0] < 1 ||
      !std::equal(expected.begin() + 1, expected.end(), req.tensor.shape.begin() + 1))
    return invalid_argument(index < 0 ? std::string("model input") : "split " + m.splits[size_t(index)].id + " bottleneck",
                            ": shape ", shape_to_string(req.tensor.shape), " does not match ",
                            shape_to_string(expected), " (any batch size)");
  Tensor x;
  LIBSPLIT_RETURN_IF_ERROR(decode(req.tensor, &x, tables));
  if (index < 0 && is_image(req.tensor.codec)) LIBSPLIT_RETURN_IF_ERROR(normalize_input(m.input, &x));
  return x;
}

Result<Tensor> run_model(const Bundle& bundle, int index, const Tensor& x) {
  return index < 0 ? bundle.run_full(x) : bundle.run_tail(size_t(index), x);
}

}  // namespace

void Connection::refuse(uint64_t id, const std::string& split, const Status& st) {
  ++server_->failed;
  server_->metrics.request(model_name(), split, st.code());
  send(proto::FrameType::kError, proto::encode_error({id, st.code(), st.message()}));
}

void Connection::reply_error(const Pending& p, const Status& s) {
  --in_flight_;  // before the answer leaves: a client that sends again on reading it is admitted
  refuse(p.req->id, split_label(p.req->split), s);
  finish_request();
}

void Connection::reply(const Pending& p, Tensor out, Clock::time_point start, Clock::time_point end) {
  proto::Response r;
  r.id = p.req->id;
  r.queue_us = uint32_t(std::chrono::duration_cast<std::chrono::microseconds>(start - p.arrival).count());
  r.tail_us = uint32_t(std::chrono::duration_cast<std::chrono::microseconds>(end - start).count());
  if (p.req->top_k == 0) {
    r.has_tensor = true;
    r.output = std::move(out);
  } else {
    r.top = top_k(out, p.req->top_k);
  }
  --in_flight_;  // as in reply_error
  ++server_->ok;
  server_->metrics.request(model_name(), split_label(p.req->split), StatusCode::kOk);
  server_->metrics.timing(model_name(), std::chrono::duration<double>(start - p.arrival).count(),
                          std::chrono::duration<double>(end - start).count());
  send(proto::FrameType::kResponse, proto::encode_response(r));
  finish_request();
}

bool ServerState::take_input(const Pending& p, Clock::time_point now, Tensor* x) {
  if (now > p.deadline) {
    ++late;
    metrics.rejected("deadline");
    p.conn->reply_error(p, detail::deadline_exceeded("deadline passed while queued"));
    return false;
  }
  auto in = prepare_input(p.conn->bundle(), p.index, *p.req);
  if (!in.ok()) {
    p.conn->reply_error(p, in.status());
    return false;
  }
  *x = std::move(*in);
  return true;
}

// A worker (or an idle I/O thread) runs one request on its own (batching off). It stops counting
// as busy before it answers, so that the client's next request, sent on reading the answer,
// finds the server idle.
void ServerState::run_one(Model* model, Pending p) {
  struct Busy {
    std::atomic<uint32_t>& n;
    bool held = true;
    void release() {
      if (held) --n;
      held = false;
    }
    ~Busy() { release(); }
  } busy_slot{busy};
  const auto start = Clock::now();
  Tensor x;
  if (!take_input(p, start, &x)) return;
  const Bundle& bundle = p.conn->bundle();
  ++forwards;
  ++forward_requests;
  auto out = run_model(bundle, p.index, x);
  busy_slot.release();
  if (!out.ok()) return p.conn->reply_error(p, out.status());
  const auto end = Clock::now();
  // The split's moving average (1/8 weight): racing updates lose a sample, nothing worse.
  auto& avg = model->tail_us[p.index < 0 ? bundle.manifest().splits.size() : size_t(p.index)];
  const auto took = uint32_t(std::min<int64_t>(std::chrono::duration_cast<std::chrono::microseconds>(end - start).count(),
                                               Model::kUnknownTail - 1));
  const uint32_t old = avg.load(std::memory_order_relaxed);
  avg.store(old == Model::kUnknownTail ? took : uint32_t((7ull * old + took) / 8), std::memory_order_relaxed);
  metrics.batch(bundle.manifest().name, 1);
  p.conn->reply(p, std::move(*out), start, end);
}

// A worker takes up to max_batch requests of one model and split: at once when that many wait,
// else when the oldest has waited batch_delay_us. One worker collects per batcher at a time;
// every queued request has a run_batch posted for it, and a collector that leaves requests
// behind posts one more, so none is stranded.
void ServerState::run_batch(Model* model, Batcher* b) {
  std::vector<Pending> batch;
  bool more = false;
  {
    std::unique_lock<std::mutex> lock(b->mu);
    if (b->collecting || b->queue.empty()) return;
    b->collecting = true;
    if (b->queue.size() < opt.max_batch) {
      const auto until = b->queue.front().arrival + std::chrono::microseconds(opt.batch_delay_us);
      b->cv.wait_until(lock, until, [&] { return b->queue.size() >= opt.max_batch; });
    }
    const size_t n = std::min<size_t>(opt.max_batch, b->queue.size());
    for (size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(b->queue.front()));
      b->queue.pop_front();
    }
    b->collecting = false;
    more = !b->queue.empty();
  }
  model->queued -= uint32_t(batch.size());
  if (more) asio::post(*workers, [this, model, b] { run_batch(model, b); });

  const auto start = Clock::now();
  const Bundle& bundle = *model->bundle;
  std::vector<Pending> ready;
  std::vector<Tensor> inputs;
  for (auto& p : batch) {
    Tensor x;
    if (!take_input(p, start, &x)) continue;
    inputs.push_back(std::move(x));
    ready.push_back(std::move(p));
  }
  if (ready.empty()) return;
  // One forward over the requests stacked along the batch dimension.
  Tensor stacked;
  stacked.shape = inputs[0].shape;
  stacked.shape[0] = 0;
  for (auto& x : inputs) {
    stacked.shape[0] += x.shape[0];
    stacked.data.insert(stacked.data.end(), x.data.begin(), x.data.end());
  }
  const int index = ready[0].index;
  ++forwards;
  forward_requests += ready.size();
  auto out = run_model(bundle, index, stacked);
  if (out.ok() && (out->shape.empty() || out->shape[0] != stacked.shape[0]))
    out = detail::internal_error("the model answered a batch of ", stacked.shape[0], " with shape ", shape_to_string(out->shape));
  if (!out.ok()) {
    for (auto& p : ready) p.conn->reply_error(p, out.status());
    return;
  }
  const auto end = Clock::now();
  metrics.batch(bundle.manifest().name, ready.size());
  const size_t per_row = out->data.size() / size_t(out->shape[0]);
  size_t row = 0;
  for (size_t i = 0; i < ready.size(); ++i) {
    Tensor y;
    y.shape = out->shape;
    y.shape[0] = inputs[i].shape[0];
    const size_t begin = row * per_row, count = size_t(y.shape[0]) * per_row;
    y.data.assign(out->data.begin() + ptrdiff_t(begin), out->data.begin() + ptrdiff_t(begin + count));
    row += size_t(y.shape[0]);
    ready[i].conn->reply(ready[i], std::move(y), start, end);
  }
}

void Connection::finish_request() {
  if (--server_->in_flight_total == 0 && server_->draining) {
    std::lock_guard<std::mutex> lock(server_->mu);
    server_->idle_cv.notify_all();
  }
}

void Connection::fail(const Status& st, uint64_t request_id) {
  detail::logger()->info("closing {}: {}", peer_, st.to_string());
  send(proto::FrameType::kError, proto::encode_error({request_id, st.code(), st.message()}), /*close_after=*/true);
}

void Connection::send(proto::FrameType type, std::vector<uint8_t> body, bool close_after) {
  std::vector<uint8_t> frame;
  frame.reserve(proto::kHeaderSize + body.size());
  proto::append_frame(type, body, &frame);
  if (close_after) {
    // Rare (an error that ends the connection): on the strand, after whatever is queued.
    asio::dispatch(strand_, [self = shared_from_this(), frame = std::move(frame)]() mutable {
      std::lock_guard<std::mutex> lock(self->write_mu_);
      if (self->closing_) return;
      self->write_queue_.push_back(std::move(frame));
      self->close_after_write_ = true;
      std::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_receive, ignored);
      if (!self->writing_) self->start_write_locked();
    });
    return;
  }
  std::unique_lock<std::mutex> lock(write_mu_);
  if (closing_) return;
  size_t sent = 0;
  if (!writing_ && write_queue_.empty() && !stream_.is_tls()) {
    // Nothing queued: write from this thread (a worker, usually) instead of waking the I/O
    // thread for it (plain TCP only: a TLS stream is written from its strand). The socket is
    // non-blocking; whatever the kernel does not take now is queued for the strand. closing_ is
    // checked under write_mu_, which do_close holds while it closes the descriptor, so this
    // never writes to a closed (or reused) descriptor.
    const ssize_t n = ::send(stream_.socket().native_handle(), frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      sent = size_t(n);
      server_->tx += sent;
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return;  // the connection is broken: the pending read sees it and closes
    }
    if (sent == frame.size()) return;
  }
  if (sent > 0) frame.erase(frame.begin(), frame.begin() + ptrdiff_t(sent));
  write_queue_.push_back(std::move(frame));
  if (!writing_) {
    writing_ = true;
    lock.unlock();  // dispatch may run the handler right here, on the strand
    asio::dispatch(strand_, [self = shared_from_this()] {
      std::lock_guard<std::mutex> lock(self->write_mu_);
      self->start_write_locked();
    });
  }
}

// On the strand, write_mu_ held: writes the front of the queue, or ends writing.
void Connection::start_write_locked() {
  if (closing_) {
    writing_ = false;
    write_queue_.clear();
    return;
  }
  if (write_queue_.empty()) {
    writing_ = false;
    if (close_after_write_) asio::post(strand_, [self = shared_from_this()] { self->do_close(); });
    return;
  }
  writing_ = true;
  stream_.async_write(asio::buffer(write_queue_.front()),
                    asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec, size_t n) {
                      self->server_->tx += n;
                      bool failed = false;
                      {
                        std::lock_guard<std::mutex> lock(self->write_mu_);
                        self->write_queue_.pop_front();  // the buffer this write used
                        if (ec || self->closing_) {
                          self->writing_ = false;
                          self->write_queue_.clear();
                          failed = true;
                        } else {
                          self->start_write_locked();
                        }
                      }
                      if (failed) self->do_close();
                    }));
}

void Connection::close() {
  asio::dispatch(strand_, [self = shared_from_this()] { self->do_close(); });
}

void Connection::do_close() {
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    if (closing_) return;
    closing_ = true;
    std::error_code ignored;
    timer_.cancel();
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    // A write in progress still owns the front buffer until its handler runs (with an error).
    if (!writing_) write_queue_.clear();
  }
  --server_->open;
  detail::logger()->info("connection {} closed", peer_);
  server_->remove(shared_from_this());
}

server::HttpResponse ServerState::http_get(const std::string& path) {
  if (path == "/healthz") return {200, "text/plain; charset=utf-8", "ok\n"};
  if (path == "/readyz") {
    if (ready) return {200, "text/plain; charset=utf-8", "ready\n"};
    return {503, "text/plain; charset=utf-8", "not ready\n"};
  }
  if (path == "/metrics") {
    server::Metrics::Gauges g;
    g.open_connections = open;
    g.bytes_received = rx;
    g.bytes_sent = tx;
    g.ready = ready;
    return {200, "text/plain; version=0.0.4; charset=utf-8", metrics.render(g)};
  }
  return {404, "text/plain; charset=utf-8", "not found: " + path + " (try /healthz, /readyz, /metrics)\n"};
}

// Joins the I/O threads when create() fails after starting the HTTP endpoint (stop() has
// joined them otherwise).
struct Server::Impl : ServerState {
  ~Impl() {
    work.reset();
    io.stop();
    for (auto& t : io_threads)
      if (t.joinable()) t.join();
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { stop(); }

Result<std::unique_ptr<Server>> Server::create(const ServerOptions& o) {
  if (o.io_threads < 1 || o.io_threads > 64) return invalid_argument("io_threads must be in [1, 64], got ", o.io_threads);
  if (o.workers < 1 || o.workers > 256) return invalid_argument("workers must be in [1, 256], got ", o.workers);
  if (o.torch_threads < 1 || o.torch_threads > 256)
    return invalid_argument("torch_threads must be in [1, 256], got ", o.torch_threads);
  if (o.max_frame_bytes < 1024) return invalid_argument("max_frame_bytes must be at least 1024, got ", o.max_frame_bytes);
  if (o.max_connections < 1) return invalid_argument("max_connections must be at least 1");
  if (o.max_batch < 1 || o.max_batch > 1024) return invalid_argument("max_batch must be in [1, 1024], got ", o.max_batch);
  if (o.inline_tail_max_us > 1000000)
    return invalid_argument("inline_tail_max_us must be at most 1000000 (1 s), got ", o.inline_tail_max_us);
  if (o.busy_poll_us > 1000000)
    return invalid_argument("busy_poll_us must be at most 1000000 (1 s), got ", o.busy_poll_us);
  if (o.batch_delay_us > 1000000)
    return invalid_argument("batch_delay_us must be at most 1000000 (1 s), got ", o.batch_delay_us);
  auto hp = net::parse_host_port(o.listen);
  if (!hp.ok()) return hp.status();
  auto impl = std::make_unique<Impl>();
  impl->opt = o;
  if (!o.tls_cert_file.empty() || !o.tls_key_file.empty() || !o.tls_client_ca_file.empty()) {
    auto tls = net::make_server_tls(o.tls_cert_file, o.tls_key_file, o.tls_client_ca_file);
    if (!tls.ok()) return tls.status();
    impl->tls = std::move(*tls);
  }
  // The HTTP endpoint comes up first, on the first I/O thread, so /healthz answers and /readyz
  // says "not ready" while the bundles load and warm up.
  if (!o.http_listen.empty()) {
    auto http = server::HttpEndpoint::create(impl->io, o.http_listen,
                                             [state = impl.get()](const std::string& path) { return state->http_get(path); });
    if (!http.ok()) return http.status();
    impl->http = std::move(*http);
    impl->http->start();
    impl->io_threads.emplace_back([state = impl.get()] { state->run_io(); });
    detail::logger()->info("health and metrics over HTTP on {} (port {}); loading models", o.http_listen,
                           impl->http->port());
  }
  LIBSPLIT_RETURN_IF_ERROR(impl->load_models());
  try {
    std::error_code ec;
    auto addr = asio::ip::make_address(hp->host, ec);
    if (ec) return invalid_argument("listen address \"", hp->host, "\" is not an IP address");
    tcp::endpoint ep(addr, hp->port);
    impl->acceptor.open(ep.protocol());
    impl->acceptor.set_option(tcp::acceptor::reuse_address(true));
    impl->acceptor.bind(ep, ec);
    if (ec) return detail::unavailable("cannot listen on ", o.listen, ": ", ec.message());
    impl->acceptor.listen(asio::socket_base::max_listen_connections);
    impl->port = impl->acceptor.local_endpoint().port();
  } catch (const std::exception& e) {
    return detail::unavailable("cannot listen on ", o.listen, ": ", e.what());
  }
  impl->workers = std::make_unique<asio::thread_pool>(size_t(o.workers));
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const { return impl_->port; }
uint16_t Server::http_port() const { return impl_->http ? impl_->http->port() : 0; }

Status Server::start() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->started) return detail::failed_precondition("server already started");
  impl_->started = true;
  impl_->accept();
  impl_->schedule_summary();
  while (impl_->io_threads.size() < size_t(impl_->opt.io_threads)) impl_->io_threads.emplace_back([this] { impl_->run_io(); });
  detail::logger()->info("listening on {} (port {})", impl_->opt.listen, impl_->port);
  impl_->ready = true;  // every bundle was loaded and warmed up by create()
  return {};
}

Status Server::drain(uint32_t grace_ms) {
  std::vector<std::shared_ptr<Connection>> conns;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return {};
    if (impl_->draining.exchange(true)) return detail::failed_precondition("already draining");
    conns.assign(impl_->connections.begin(), impl_->connections.end());
  }
  impl_->ready = false;
  asio::post(impl_->io, [this] {
    std::error_code ignored;
    impl_->acceptor.close(ignored);
  });
  detail::logger()->info("draining: {} connections, {} requests in flight, grace {} ms", conns.size(),
                         impl_->in_flight_total.load(), grace_ms);
  for (auto& c : conns) c->send(proto::FrameType::kDrain, {});
  bool finished;
  {
    std::unique_lock<std::mutex> lock(impl_->mu);
    finished = impl_->idle_cv.wait_for(lock, std::chrono::milliseconds(grace_ms),
                                       [this] { return impl_->in_flight_total == 0; });
  }
  const uint64_t left = impl_->in_flight_total;
  stop();
  if (!finished)
    return detail::deadline_exceeded(left, " requests were still in flight when the ", grace_ms, " ms grace ended");
  detail::logger()->info("drained: every accepted request was answered");
  return {};
}

void Server::stop() {
  std::vector<std::shared_ptr<Connection>> conns;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
    impl_->ready = false;
    conns.assign(impl_->connections.begin(), impl_->connections.end());
  }
  asio::post(impl_->io, [this] {
    std::error_code ignored;
    impl_->acceptor.close(ignored);
    if (impl_->http) impl_->http->stop();
    impl_->summary_timer.cancel();
  });
  for (auto& c : conns) c->close();
  impl_->workers->join();  // finishes queued tails; their replies go nowhere once closed
  impl_->work.reset();
  impl_->io.stop();
  for (auto& t : impl_->io_threads)
    if (t.joinable()) t.join();
  // Requests that reached a batch queue after the workers stopped hold their connection (and
  // its timer, which needs the io_context): release them while it is alive.
  for (auto& [name, versions] : impl_->models)
    for (auto& [version, model] : versions)
      for (auto& b : model.batchers) {
        std::lock_guard<std::mutex> lock(b->mu);
        b->queue.clear();
      }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->connections.clear();
  }
  impl_->stopped_cv.notify_all();
}

void Server::wait() {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->stopped_cv.wait(lock, [this] { return impl_->stopped && impl_->connections.empty(); });
}

ServerStats Server::stats() const {
  ServerStats s;
  s.connections_accepted = impl_->accepted;
  s.connections_open = impl_->open;
  s.connections_rejected = impl_->rejected;
  s.requests_received = impl_->requests_received;
  s.requests_ok = impl_->ok;
  s.requests_failed = impl_->failed;
  s.rejected_queue_full = impl_->queue_full;
  s.rejected_deadline = impl_->late;
  s.protocol_errors = impl_->proto_errors;
  s.forwards = impl_->forwards;
  s.tls_handshake_failures = impl_->tls_failures;
  s.forward_requests = impl_->forward_requests;
  s.inline_runs = impl_->inline_runs;
  s.bytes_received = impl_->rx;
  s.bytes_sent = impl_->tx;
  return s;
}

}  // namespace libsplit
