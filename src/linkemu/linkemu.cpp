#include "linkemu/linkemu.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iterator>
#include <limits>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <asio.hpp>

#include "common/errors.h"
#include "common/log.h"
#include "net/endpoint.h"

namespace libsplit::linkemu {

using detail::invalid_argument;

// ---------------------------------------------------------------------------------------------
// Values: rates, durations, sizes, traces
// ---------------------------------------------------------------------------------------------
namespace {

constexpr double kMaxRateBps = 1e12;              // 1000gbit
constexpr uint32_t kMaxDurationUs = 3600000000u;  // one hour
constexpr uint64_t kMaxSizeBytes = 1ull << 30;    // 1 GiB

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string quoted(const std::string& s) {
  constexpr size_t kShown = 60;
  return "\"" + (s.size() > kShown ? s.substr(0, kShown) + "..." : s) + "\"";
}

// "2.5mbit" -> {2.5, "mbit"}; false if the text does not start with a plain decimal number.
bool split_number(const std::string& text, double* value, std::string* unit) {
  size_t i = 0, dots = 0, digits = 0;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '.') {
      ++dots;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      ++digits;
    } else {
      break;
    }
  }
  if (digits == 0 || dots > 1 || digits > 15) return false;
  *value = std::strtod(text.substr(0, i).c_str(), nullptr);
  *unit = lower(text.substr(i));
  return std::isfinite(*value);
}

struct Unit {
  const char* name;
  double scale;
};

std::string fmt_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

Result<double> parse_rate(const std::string& text) {
  static constexpr std::array<Unit, 4> kUnits{{{"bit", 1}, {"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}}};
  if (lower(text) == "unlimited") return 0.0;
  double v = 0;
  std::string unit;
  if (!split_number(text, &v, &unit))
    return invalid_argument(
        quoted(text), " is not a rate: write a number and a unit, e.g. 10mbit (bit, kbit, mbit or gbit per second)");
  if (unit.empty()) {
    if (v == 0) return 0.0;
    return invalid_argument(quoted(text), " has no unit: write e.g. ", text, "bit, ", text, "kbit or ", text,
                            "mbit (per second; 0 or unlimited = no limit)");
  }
  for (const auto& u : kUnits) {
    if (unit != u.name) continue;
    const double bps = v * u.scale;
    if (bps > kMaxRateBps) return invalid_argument(quoted(text), " is above the largest rate, 1000gbit");
    if (bps != 0 && bps < 1)
      return invalid_argument(quoted(text), " is below the smallest rate, 1bit (use 0 for no limit)");
    return bps;
  }
  return invalid_argument(quoted(text), " has an unknown unit ", quoted(unit),
                          ": use bit, kbit, mbit or gbit (per second)");
}

Result<uint32_t> parse_duration_us(const std::string& text) {
  static constexpr std::array<Unit, 3> kUnits{{{"us", 1}, {"ms", 1e3}, {"s", 1e6}}};
  double v = 0;
  std::string unit;
  if (!split_number(text, &v, &unit))
    return invalid_argument(quoted(text), " is not a duration: write a number and a unit, e.g. 20ms (us, ms or s)");
  if (unit.empty()) {
    if (v == 0) return uint32_t(0);
    return invalid_argument(quoted(text), " has no unit: write e.g. ", text, "ms or ", text, "us");
  }
  for (const auto& u : kUnits) {
    if (unit != u.name) continue;
    const double us = std::round(v * u.scale);
    if (us > double(kMaxDurationUs))
      return invalid_argument(quoted(text), " is longer than the longest duration, 3600s");
    return uint32_t(us);
  }
  return invalid_argument(quoted(text), " has an unknown unit ", quoted(unit), ": use us, ms or s");
}

Result<uint32_t> parse_size_bytes(const std::string& text) {
  static constexpr std::array<Unit, 6> kUnits{
      {{"", 1}, {"b", 1}, {"kb", 1e3}, {"kib", 1024}, {"mb", 1e6}, {"mib", 1048576}}};
  double v = 0;
  std::string unit;
  if (!split_number(text, &v, &unit))
    return invalid_argument(quoted(text),
                            " is not a size: write a number of bytes, optionally with b, kb, kib, mb or mib");
  for (const auto& u : kUnits) {
    if (unit != u.name) continue;
    const double bytes = std::round(v * u.scale);
    if (bytes > double(kMaxSizeBytes))
      return invalid_argument(quoted(text), " is larger than the largest size, 1024mib");
    return uint32_t(bytes);
  }
  return invalid_argument(quoted(text), " has an unknown unit ", quoted(unit), ": use b, kb, kib, mb or mib");
}

std::string format_rate(double bps) {
  if (bps <= 0) return "unlimited";
  if (bps >= 1e9) return fmt_number(bps / 1e9) + "gbit";
  if (bps >= 1e6) return fmt_number(bps / 1e6) + "mbit";
  if (bps >= 1e3) return fmt_number(bps / 1e3) + "kbit";
  return fmt_number(bps) + "bit";
}

std::string format_duration_us(uint32_t us) {
  if (us == 0) return "0";
  if (us % 1000000 == 0) return std::to_string(us / 1000000) + "s";
  if (us >= 1000) return fmt_number(us / 1e3) + "ms";
  return std::to_string(us) + "us";
}

namespace {
std::string format_size(uint32_t bytes) {
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes / 1024) + "kib";
  return std::to_string(bytes) + "b";
}
uint32_t bucket_bytes(const Shape& s) { return std::max(s.burst_bytes, kPacketBytes); }
}  // namespace

std::string format_shape(const Shape& s) {
  std::string out;
  if (!s.trace_ms.empty()) {
    const double period_s = s.trace_ms.back() / 1e3;
    out = "trace=" + std::to_string(s.trace_ms.size()) + "/" + std::to_string(s.trace_ms.back()) +
          "ms avg=" + format_rate(double(s.trace_ms.size()) * kPacketBytes * 8 / period_s);
  } else {
    out = "rate=" + format_rate(s.rate_bps);
    if (s.rate_bps > 0) out += " burst=" + format_size(bucket_bytes(s));
  }
  out += " delay=" + format_duration_us(s.delay_us) + " jitter=" + format_duration_us(s.jitter_us) +
         " queue=" + format_size(s.queue_bytes);
  return out;
}

Status validate_shape(const Shape& s) {
  if (!std::isfinite(s.rate_bps) || s.rate_bps < 0 || s.rate_bps > kMaxRateBps)
    return invalid_argument("rate_bps must be in [0, 1e12] bit/s, got ", s.rate_bps);
  if (s.queue_bytes < kPacketBytes)
    return invalid_argument("queue_bytes must be at least ", kPacketBytes, " (one packet), got ", s.queue_bytes);
  for (size_t i = 1; i < s.trace_ms.size(); ++i)
    if (s.trace_ms[i] < s.trace_ms[i - 1]) return invalid_argument("trace_ms must not decrease (entry ", i, ")");
  if (!s.trace_ms.empty() && s.trace_ms.back() == 0)
    return invalid_argument("trace_ms: the last timestamp (the period) must be above 0");
  return {};
}

Result<std::vector<uint32_t>> parse_mahimahi_trace(const std::string& text) {
  std::vector<uint32_t> out;
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;  // blank line
    line = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
    if (line.find_first_not_of("0123456789") != std::string::npos)
      return invalid_argument("trace line ", line_no, ": ", quoted(line),
                              " is not a timestamp (a whole number of milliseconds)");
    if (line.size() > 10 || std::stoull(line) > std::numeric_limits<uint32_t>::max())
      return invalid_argument("trace line ", line_no, ": timestamp ", quoted(line), " is too large");
    const auto ms = uint32_t(std::stoull(line));
    if (!out.empty() && ms < out.back())
      return invalid_argument("trace line ", line_no, ": timestamp ", ms, " is before the previous one (", out.back(),
                              "); timestamps must not decrease");
    out.push_back(ms);
  }
  if (out.empty())
    return invalid_argument("trace is empty (", line_no, " lines): it needs at least one timestamp, one per line");
  if (out.back() == 0)
    return invalid_argument("trace line ", line_no,
                            ": the last timestamp must be above 0 (it is the period of the trace)");
  return out;
}

Result<std::vector<uint32_t>> load_mahimahi_trace(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return detail::not_found("cannot open trace file ", quoted(path));
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) return detail::not_found("cannot read trace file ", quoted(path));
  auto trace = parse_mahimahi_trace(text);
  if (!trace.ok()) return Status(trace.status().code(), path + ": " + trace.status().message());
  return trace;
}

// ---------------------------------------------------------------------------------------------
// Control commands
// ---------------------------------------------------------------------------------------------
namespace {

constexpr const char* kHelp =
    "commands: set up|down|both KEY=VALUE... (keys: rate=10mbit|unlimited delay=20ms jitter=2ms burst=15kb "
    "queue=256kib trace=FILE|none), show [up|down|both], stats, help";

std::vector<std::string> split_words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

bool parse_direction(const std::string& word, Direction* d) {
  const auto w = lower(word);
  if (w == "up")
    *d = Direction::kUp;
  else if (w == "down")
    *d = Direction::kDown;
  else if (w == "both")
    *d = Direction::kBoth;
  else
    return false;
  return true;
}

Status prefixed(const std::string& token, const Status& st) { return Status(st.code(), token + ": " + st.message()); }

}  // namespace

Result<ControlCommand> parse_control_command(const std::string& line) {
  const auto words = split_words(line);
  ControlCommand cmd;
  if (words.empty()) return invalid_argument("empty command (try help)");
  const auto verb = lower(words[0]);
  if (verb == "help" || verb == "stats") {
    cmd.verb = verb == "help" ? ControlCommand::Verb::kHelp : ControlCommand::Verb::kStats;
    if (words.size() > 1) return invalid_argument("unexpected ", quoted(words[1]), " after ", verb);
    return cmd;
  }
  if (verb == "show") {
    cmd.verb = ControlCommand::Verb::kShow;
    if (words.size() > 1 && !parse_direction(words[1], &cmd.direction))
      return invalid_argument(quoted(words[1]), ": expected up, down or both after show");
    if (words.size() > 2) return invalid_argument("unexpected ", quoted(words[2]), " after show ", words[1]);
    return cmd;
  }
  if (verb != "set") return invalid_argument("unknown command ", quoted(words[0]), " (set, show, stats or help)");
  cmd.verb = ControlCommand::Verb::kSet;
  if (words.size() < 2 || !parse_direction(words[1], &cmd.direction))
    return invalid_argument(words.size() < 2 ? std::string("set") : quoted(words[1]),
                            ": expected up, down or both after set, e.g. set up rate=1mbit");
  if (words.size() < 3) return invalid_argument("set ", words[1], ": expected KEY=VALUE, e.g. rate=1mbit delay=5ms");
  for (size_t i = 2; i < words.size(); ++i) {
    const auto& tok = words[i];
    const auto eq = tok.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == tok.size())
      return invalid_argument(quoted(tok), ": expected KEY=VALUE, e.g. rate=1mbit");
    const auto key = lower(tok.substr(0, eq));
    const auto value = tok.substr(eq + 1);
    if (key == "rate") {
      auto r = parse_rate(value);
      if (!r.ok()) return prefixed(tok, r.status());
      cmd.values.rate_bps = *r;
      cmd.has_rate = true;
    } else if (key == "delay" || key == "jitter") {
      auto r = parse_duration_us(value);
      if (!r.ok()) return prefixed(tok, r.status());
      (key == "delay" ? cmd.values.delay_us : cmd.values.jitter_us) = *r;
      (key == "delay" ? cmd.has_delay : cmd.has_jitter) = true;
    } else if (key == "burst" || key == "queue") {
      auto r = parse_size_bytes(value);
      if (!r.ok()) return prefixed(tok, r.status());
      if (key == "queue" && *r < kPacketBytes)
        return invalid_argument(tok, ": the queue must hold at least one packet (", kPacketBytes, " bytes)");
      (key == "burst" ? cmd.values.burst_bytes : cmd.values.queue_bytes) = *r;
      (key == "burst" ? cmd.has_burst : cmd.has_queue) = true;
    } else if (key == "trace") {
      cmd.has_trace = true;
      if (lower(value) == "none" || lower(value) == "off") {
        cmd.values.trace_ms.clear();
        cmd.trace_source.clear();
      } else {
        auto t = load_mahimahi_trace(value);
        if (!t.ok()) return prefixed("trace", t.status());
        cmd.values.trace_ms = std::move(*t);
        cmd.trace_source = value;
      }
    } else {
      return invalid_argument(quoted(tok), ": unknown key ", quoted(key),
                              " (rate, delay, jitter, burst, queue or trace)");
    }
  }
  return cmd;
}

Shape apply_command(const Shape& base, const ControlCommand& c) {
  Shape s = base;
  if (c.verb != ControlCommand::Verb::kSet) return s;
  if (c.has_rate) s.rate_bps = c.values.rate_bps;
  if (c.has_burst) s.burst_bytes = c.values.burst_bytes;
  if (c.has_delay) s.delay_us = c.values.delay_us;
  if (c.has_jitter) s.jitter_us = c.values.jitter_us;
  if (c.has_queue) s.queue_bytes = c.values.queue_bytes;
  if (c.has_trace) s.trace_ms = c.values.trace_ms;
  // Setting a rate on a trace-driven direction means the rate should now apply.
  if (c.has_rate && !c.has_trace) s.trace_ms.clear();
  return s;
}

// ---------------------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------------------
namespace engine {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kReadBytes = 64 * 1024;
constexpr size_t kMaxWriteBytes = 256 * 1024;
constexpr size_t kMaxControlLine = 4096;

int index_of(Direction d) { return d == Direction::kDown ? 1 : 0; }
const char* name_of(int d) { return d == 0 ? "up" : "down"; }

Clock::duration seconds_to_duration(double s) {
  // Rounded up, so that the bucket holds enough tokens when the timer fires.
  const double ns = std::ceil(std::min(s, 1e7) * 1e9);
  return std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(int64_t(ns)));
}

double duration_to_seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A slice of a chunk read from a source socket.
struct Packet {
  std::shared_ptr<const std::vector<uint8_t>> data;
  uint32_t offset = 0;
  uint32_t size = 0;
  Clock::time_point arrival;  // joined the link queue
  Clock::time_point release;  // to be written to the destination (set on departure)
};

class Connection;
struct State;

// One direction's emulated link, shared by every connection: a FIFO of packets that depart
// according to the token bucket or the trace. Runs on the I/O thread only.
class Link {
 public:
  Link(asio::io_context& io, int dir, const Shape& shape, uint64_t seed)
      : dir_(dir), shape_(shape), timer_(io), rng_(seed) {
    const auto now = Clock::now();
    tokens_ = bucket_bytes(shape_);
    tokens_at_ = now;
    trace_base_ = now;
    last_departure_ = now;
  }

  const Shape& shape() const { return shape_; }

  void enqueue(std::shared_ptr<Connection> conn, Packet p) { fifo_.push_back({std::move(conn), std::move(p)}); }

  void reshape(const Shape& next) {
    const auto now = Clock::now();
    const bool was_rate = shape_.trace_ms.empty() && shape_.rate_bps > 0;
    const bool is_rate = next.trace_ms.empty() && next.rate_bps > 0;
    if (was_rate) {  // settle the tokens earned so far at the old rate
      tokens_ = tokens_at(now);
      tokens_at_ = std::max(tokens_at_, now);
    }
    if (is_rate) {
      tokens_ = was_rate ? std::min(tokens_, double(bucket_bytes(next))) : double(bucket_bytes(next));
      tokens_at_ = std::max(tokens_at_, now);
    }
    if (!next.trace_ms.empty() && next.trace_ms != shape_.trace_ms) {  // a new trace starts now
      trace_base_ = now;
      opp_index_ = -1;
      opp_credit_ = 0;
    }
    shape_ = next;
    disarm();
    pump();  // the head packet's departure is planned again with the new shape
  }

  void pump();

  void close() {
    closed_ = true;
    disarm();
    fifo_.clear();
  }

 private:
  struct Entry {
    std::shared_ptr<Connection> conn;
    Packet packet;
  };
  struct Plan {
    Clock::time_point departure;
    int64_t opp_index = -1;
    uint32_t opp_credit = 0;
  };

  double tokens_at(Clock::time_point t) const {
    if (t <= tokens_at_) return tokens_;
    return std::min(double(bucket_bytes(shape_)), tokens_ + duration_to_seconds(t - tokens_at_) * shape_.rate_bps / 8);
  }

  Clock::time_point opportunity_time(int64_t k) const {
    const auto& t = shape_.trace_ms;
    const int64_t n = int64_t(t.size());
    return trace_base_ + std::chrono::milliseconds(int64_t(k / n) * t.back() + t[size_t(k % n)]);
  }

  // The first delivery opportunity at or after `at`.
  int64_t first_opportunity(Clock::time_point at) const {
    if (at <= trace_base_) return 0;
    const auto& t = shape_.trace_ms;
    const int64_t rel = std::chrono::duration_cast<std::chrono::nanoseconds>(at - trace_base_).count();
    const int64_t period = int64_t(t.back()) * 1000000;
    const int64_t within = rel % period;
    // trace.back() * 1e6 == period > within, so this always finds an entry.
    const auto it = std::lower_bound(t.begin(), t.end(), within,
                                     [](uint32_t ms, int64_t ns) { return int64_t(ms) * 1000000 < ns; });
    return (rel / period) * int64_t(t.size()) + (it - t.begin());
  }

  Plan plan(uint32_t size, Clock::time_point ready) const {
    Plan p;
    p.departure = ready;
    if (!shape_.trace_ms.empty()) {
      int64_t k = opp_index_;
      uint32_t credit = opp_credit_;
      if (k < 0 || credit == 0 || opportunity_time(k) < ready) {  // the current opportunity is used up or gone
        k = std::max(k + 1, first_opportunity(ready));
        credit = kPacketBytes;
      }
      uint32_t need = size;
      while (credit < need) {  // a packet may span opportunities; it departs with its last byte
        need -= credit;
        ++k;
        credit = kPacketBytes;
      }
      p.departure = opportunity_time(k);
      p.opp_index = k;
      p.opp_credit = credit - need;
    } else if (shape_.rate_bps > 0) {
      ready = std::max(ready, tokens_at_);
      const double tokens = tokens_at(ready);
      p.departure = tokens >= size ? ready : ready + seconds_to_duration((size - tokens) * 8 / shape_.rate_bps);
    }
    return p;
  }

  void commit(uint32_t size, const Plan& p) {
    if (!shape_.trace_ms.empty()) {
      opp_index_ = p.opp_index;
      opp_credit_ = p.opp_credit;
    } else if (shape_.rate_bps > 0) {
      tokens_ = std::max(0.0, tokens_at(p.departure) - size);
      tokens_at_ = std::max(tokens_at_, p.departure);
    }
    last_departure_ = std::max(last_departure_, p.departure);
  }

  void arm(Clock::time_point at) {
    if (armed_ && armed_at_ == at) return;
    armed_ = true;
    armed_at_ = at;
    const uint64_t gen = ++timer_gen_;
    timer_.expires_at(at);
    timer_.async_wait([this, gen](std::error_code ec) {
      if (gen != timer_gen_) return;  // superseded
      armed_ = false;
      if (!ec) pump();
    });
  }

  void disarm() {
    ++timer_gen_;
    armed_ = false;
    timer_.cancel();
  }

  const int dir_;
  Shape shape_;
  asio::steady_timer timer_;
  std::mt19937_64 rng_;
  std::deque<Entry> fifo_;
  bool closed_ = false;
  bool armed_ = false;
  Clock::time_point armed_at_;
  uint64_t timer_gen_ = 0;
  // Token bucket (rate mode): tokens_ bytes at time tokens_at_.
  double tokens_ = 0;
  Clock::time_point tokens_at_;
  // Trace mode: opportunity opp_index_ (counted from trace_base_) has opp_credit_ bytes left.
  Clock::time_point trace_base_;
  int64_t opp_index_ = -1;
  uint32_t opp_credit_ = 0;
  Clock::time_point last_departure_;  // the link queue is FIFO across connections
};

class ControlSession;

// Everything the I/O thread owns, plus what other threads read (under mu or atomics).
struct State {
  Options opt;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  tcp::acceptor control_acceptor{io};
  asio::steady_timer accept_retry{io};
  tcp::resolver::results_type target_endpoints;
  std::unique_ptr<Link> links[2];
  std::set<std::shared_ptr<Connection>> connections;   // I/O thread only
  std::set<std::shared_ptr<ControlSession>> controls;  // I/O thread only
  std::thread thread;
  uint16_t port = 0, control_port = 0;

  mutable std::mutex mu;
  Shape shapes[2];  // the settings as last set (the links hold their own copies)
  bool stopped = false;

  std::atomic<uint64_t> accepted{0}, active{0};
  std::atomic<uint64_t> bytes[2] = {{0}, {0}};

  void accept();
  void accept_control();
  Result<std::string> command(const std::string& line);
  Status set_shape(Direction d, const Shape& s);
  Shape shape(Direction d) const {
    std::lock_guard<std::mutex> lock(mu);
    return shapes[index_of(d)];
  }
  void stop();
};

// One proxied connection: two pipes, up (client -> target) and down (target -> client).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(State& st, tcp::socket client)
      : st_(st),
        client_(std::move(client)),
        target_(st.io),
        up_(st.io, &client_, &target_),
        down_(st.io, &target_, &client_) {}

  void start() {
    std::error_code ignored;
    client_.set_option(tcp::no_delay(true), ignored);
    asio::async_connect(
        target_, st_.target_endpoints,
        [self = shared_from_this()](std::error_code ec, const tcp::endpoint&) { self->on_connect(ec); });
  }

  bool dead() const { return closed_; }

  // The link released a packet of direction d: it travels for its delay, then is written.
  void on_departed(int d, Packet p) {
    Pipe& pp = pipe(d);
    pp.queued -= p.size;
    if (closed_) return;
    p.release = std::max(p.release, pp.last_release);  // never reorder bytes
    pp.last_release = p.release;
    pp.in_flight += p.size;
    pp.flight.push_back(std::move(p));
    pump_writes(d);
    maybe_read(d);
  }

  void maybe_read(int d) {
    Pipe& p = pipe(d);
    if (closed_ || !connected_ || p.reading || p.eof) return;
    const uint32_t queue = st_.links[d]->shape().queue_bytes;
    if (p.queued >= queue || p.in_flight >= kMaxInFlightBytes) return;  // backpressure
    const size_t want = std::min<size_t>(kReadBytes, queue - p.queued);
    p.reading = true;
    p.src->async_read_some(asio::buffer(p.read_buf.data(), want),
                           [self = shared_from_this(), d](std::error_code ec, size_t n) { self->on_read(d, ec, n); });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    std::error_code ignored;
    client_.close(ignored);
    target_.close(ignored);
    for (Pipe* p : {&up_, &down_}) {
      p->timer.cancel();
      p->flight.clear();
      p->in_flight = 0;
    }
    --st_.active;
    auto self = shared_from_this();
    st_.connections.erase(self);
    // Packets of this connection still in a link queue are dropped there; plan the next ones.
    asio::post(st_.io, [&st = st_] {
      for (auto& l : st.links) l->pump();
    });
    detail::logger()->debug("linkemu: connection closed");
  }

 private:
  struct Pipe {
    Pipe(asio::io_context& io, tcp::socket* s, tcp::socket* d) : src(s), dst(d), read_buf(kReadBytes), timer(io) {}
    tcp::socket* src;
    tcp::socket* dst;
    std::vector<uint8_t> read_buf;
    asio::steady_timer timer;  // the head of `flight` is released
    bool timer_armed = false;
    bool reading = false, writing = false;
    bool eof = false;        // the source closed (or failed)
    bool done = false;       // every byte was delivered and the destination's sending side shut down
    uint64_t queued = 0;     // bytes in the link queue
    uint64_t in_flight = 0;  // departed, not yet written
    std::deque<Packet> flight;
    size_t write_count = 0;  // packets in the write under way
    Clock::time_point last_release;
  };

  Pipe& pipe(int d) { return d == 0 ? up_ : down_; }

  void on_connect(std::error_code ec) {
    if (closed_) return;
    if (ec) {
      detail::logger()->warn("linkemu: cannot connect to the target {}: {}", st_.opt.target, ec.message());
      close();
      return;
    }
    std::error_code ignored;
    target_.set_option(tcp::no_delay(true), ignored);
    connected_ = true;
    maybe_read(0);
    maybe_read(1);
  }

  void on_read(int d, std::error_code ec, size_t n) {
    Pipe& p = pipe(d);
    p.reading = false;
    if (closed_) return;
    if (n > 0) {
      auto chunk = std::make_shared<const std::vector<uint8_t>>(p.read_buf.begin(), p.read_buf.begin() + ptrdiff_t(n));
      const auto now = Clock::now();
      Link& link = *st_.links[d];
      for (size_t off = 0; off < n; off += kPacketBytes) {
        Packet pk;
        pk.data = chunk;
        pk.offset = uint32_t(off);
        pk.size = uint32_t(std::min<size_t>(kPacketBytes, n - off));
        pk.arrival = now;
        p.queued += pk.size;
        link.enqueue(shared_from_this(), std::move(pk));
      }
      link.pump();
      if (closed_) return;
    }
    if (ec) {
      if (ec != asio::error::eof) detail::logger()->debug("linkemu: {} source: {}", name_of(d), ec.message());
      p.eof = true;
      pump_writes(d);  // ends the pipe if nothing is left to deliver
      return;
    }
    maybe_read(d);
  }

  void pump_writes(int d) {
    Pipe& p = pipe(d);
    if (closed_ || p.writing || p.done) return;
    const auto now = Clock::now();
    std::vector<asio::const_buffer> bufs;
    size_t bytes = 0;
    for (const auto& pk : p.flight) {
      if (pk.release > now || bytes >= kMaxWriteBytes) break;
      bufs.emplace_back(pk.data->data() + pk.offset, pk.size);
      bytes += pk.size;
    }
    if (!bufs.empty()) {
      p.writing = true;
      p.write_count = bufs.size();
      asio::async_write(*p.dst, bufs,
                        [self = shared_from_this(), d](std::error_code ec, size_t n) { self->on_written(d, ec, n); });
      return;
    }
    if (!p.flight.empty()) {
      // Packets are appended with later release times, so the head stays the earliest.
      if (p.timer_armed) return;
      p.timer_armed = true;
      p.timer.expires_at(p.flight.front().release);
      p.timer.async_wait([self = shared_from_this(), d](std::error_code ec) {
        self->pipe(d).timer_armed = false;
        if (!ec) self->pump_writes(d);
      });
      return;
    }
    if (p.eof && p.queued == 0) finish(d);
  }

  void on_written(int d, std::error_code ec, size_t n) {
    Pipe& p = pipe(d);
    p.writing = false;
    if (closed_) return;
    if (ec) {
      detail::logger()->debug("linkemu: {} destination: {}", name_of(d), ec.message());
      close();
      return;
    }
    for (size_t i = 0; i < p.write_count; ++i) {
      p.in_flight -= p.flight.front().size;
      p.flight.pop_front();
    }
    p.write_count = 0;
    st_.bytes[d] += n;
    pump_writes(d);
    maybe_read(d);
  }

  // Every byte of direction d was delivered after its source closed: pass the end of stream on.
  void finish(int d) {
    Pipe& p = pipe(d);
    p.done = true;
    std::error_code ignored;
    p.dst->shutdown(tcp::socket::shutdown_send, ignored);
    if (up_.done && down_.done) close();
  }

  State& st_;
  tcp::socket client_, target_;
  Pipe up_, down_;
  bool connected_ = false;
  bool closed_ = false;
};

void Link::pump() {
  if (closed_) return;
  const auto now = Clock::now();
  while (!fifo_.empty()) {
    Entry& e = fifo_.front();
    if (e.conn->dead()) {
      fifo_.pop_front();
      continue;
    }
    const Plan p = plan(e.packet.size, std::max(e.packet.arrival, last_departure_));
    if (p.departure > now) {
      arm(p.departure);
      return;
    }
    commit(e.packet.size, p);
    Packet pk = std::move(e.packet);
    auto conn = std::move(e.conn);
    fifo_.pop_front();
    uint32_t extra_us = shape_.delay_us;
    if (shape_.jitter_us > 0) extra_us += std::uniform_int_distribution<uint32_t>(0, shape_.jitter_us)(rng_);
    pk.release = p.departure + std::chrono::microseconds(extra_us);
    conn->on_departed(dir_, std::move(pk));
  }
}

// A client of the control port: one command per line, one reply line per command.
class ControlSession : public std::enable_shared_from_this<ControlSession> {
 public:
  ControlSession(State& st, tcp::socket s) : st_(st), socket_(std::move(s)), buf_(kMaxControlLine) {}

  void start() { read(); }

  void close() {
    std::error_code ignored;
    socket_.close(ignored);
  }

 private:
  void read() {
    asio::async_read_until(socket_, buf_, '\n',
                           [self = shared_from_this()](std::error_code ec, size_t n) { self->on_line(ec, n); });
  }

  void on_line(std::error_code ec, size_t n) {
    if (ec == asio::error::not_found) {  // no newline within the limit
      reply("error: command line longer than " + std::to_string(kMaxControlLine) + " bytes", true);
      return;
    }
    std::string line;
    bool last = false;
    if (ec) {
      // A last command without a newline still gets its answer.
      if (ec != asio::error::eof || buf_.size() == 0) return end();
      line.assign(asio::buffers_begin(buf_.data()), asio::buffers_end(buf_.data()));
      buf_.consume(buf_.size());
      last = true;
    } else {
      line.assign(asio::buffers_begin(buf_.data()), asio::buffers_begin(buf_.data()) + ptrdiff_t(n - 1));
      buf_.consume(n);
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto r = st_.command(line);
    reply(r.ok() ? *r : "error: " + r.status().message(), last);
  }

  void reply(std::string text, bool then_close) {
    out_ = std::move(text) + "\n";
    asio::async_write(socket_, asio::buffer(out_), [self = shared_from_this(), then_close](std::error_code ec, size_t) {
      if (ec || then_close) return self->end();
      self->read();
    });
  }

  void end() {
    close();
    st_.controls.erase(shared_from_this());
  }

  State& st_;
  tcp::socket socket_;
  asio::streambuf buf_;
  std::string out_;
};

void State::accept() {
  acceptor.async_accept([this](std::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      // E.g. out of file descriptors: try again a little later rather than spinning.
      detail::logger()->warn("linkemu: accept: {}", ec.message());
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](std::error_code e) {
        if (!e) accept();
      });
      return;
    }
    ++accepted;
    ++active;
    auto c = std::make_shared<Connection>(*this, std::move(socket));
    connections.insert(c);
    detail::logger()->debug("linkemu: connection {} accepted", accepted.load());
    c->start();
    accept();
  });
}

void State::accept_control() {
  control_acceptor.async_accept([this](std::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !control_acceptor.is_open()) return;
      detail::logger()->warn("linkemu: control accept: {}", ec.message());
      return;  // the control port is a convenience; keep the proxy running without it
    }
    auto s = std::make_shared<ControlSession>(*this, std::move(socket));
    controls.insert(s);
    s->start();
    accept_control();
  });
}

Status State::set_shape(Direction d, const Shape& s) {
  LIBSPLIT_RETURN_IF_ERROR(validate_shape(s));
  std::vector<int> dirs = d == Direction::kBoth ? std::vector<int>{0, 1} : std::vector<int>{index_of(d)};
  {
    std::lock_guard<std::mutex> lock(mu);
    for (int i : dirs) shapes[i] = s;
  }
  asio::post(io, [this, dirs, s] {
    for (int i : dirs) {
      links[i]->reshape(s);
      const std::vector<std::shared_ptr<Connection>> conns(connections.begin(), connections.end());
      for (auto& c : conns) c->maybe_read(i);  // a larger queue lets paused sources go on
    }
  });
  return {};
}

Result<std::string> State::command(const std::string& line) {
  auto cmd = parse_control_command(line);
  if (!cmd.ok()) return cmd.status();
  const auto describe = [this](Direction d) {
    if (d != Direction::kBoth) return std::string(d == Direction::kUp ? "up: " : "down: ") + format_shape(shape(d));
    return "up: " + format_shape(shape(Direction::kUp)) + "; down: " + format_shape(shape(Direction::kDown));
  };
  switch (cmd->verb) {
    case ControlCommand::Verb::kHelp:
      return std::string("ok ") + kHelp;
    case ControlCommand::Verb::kStats:
      return detail::cat("ok connections=", accepted.load(), " active=", active.load(), " bytes_up=", bytes[0].load(),
                         " bytes_down=", bytes[1].load());
    case ControlCommand::Verb::kShow:
      return "ok " + describe(cmd->direction);
    case ControlCommand::Verb::kSet: {
      for (Direction d : {Direction::kUp, Direction::kDown}) {
        if (cmd->direction != Direction::kBoth && cmd->direction != d) continue;
        LIBSPLIT_RETURN_IF_ERROR(set_shape(d, apply_command(shape(d), *cmd)));
      }
      if (cmd->has_trace && !cmd->trace_source.empty())
        detail::logger()->info("linkemu: trace {} ({} opportunities)", cmd->trace_source, cmd->values.trace_ms.size());
      return "ok " + describe(cmd->direction);
    }
  }
  return detail::internal_error("unhandled command");
}

void State::stop() {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (stopped) return;
    stopped = true;
  }
  asio::post(io, [this] {
    std::error_code ignored;
    acceptor.close(ignored);
    control_acceptor.close(ignored);
    accept_retry.cancel();
    const std::vector<std::shared_ptr<Connection>> conns(connections.begin(), connections.end());
    for (auto& c : conns) c->close();
    const std::vector<std::shared_ptr<ControlSession>> ctls(controls.begin(), controls.end());
    for (auto& c : ctls) c->close();
    controls.clear();
    for (auto& l : links) l->close();
    io.stop();
  });
  if (thread.joinable()) thread.join();
}

}  // namespace engine

// ---------------------------------------------------------------------------------------------
// Proxy
// ---------------------------------------------------------------------------------------------
struct Proxy::Impl : engine::State {};

Proxy::Proxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Proxy::~Proxy() { stop(); }

namespace {
Status bind_acceptor(asio::ip::tcp::acceptor& acceptor, const std::string& what, const std::string& address,
                     uint16_t* port) {
  auto hp = net::parse_host_port(address);
  if (!hp.ok()) return prefixed(what, hp.status());
  std::error_code ec;
  const auto addr = asio::ip::make_address(hp->host, ec);
  if (ec) return invalid_argument(what, " address ", quoted(hp->host), " is not an IP address");
  const asio::ip::tcp::endpoint ep(addr, hp->port);
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return detail::unavailable("cannot listen (", what, ") on ", address, ": ", ec.message());
  *port = acceptor.local_endpoint(ec).port();
  return {};
}
}  // namespace

Result<std::unique_ptr<Proxy>> Proxy::start(const Options& o) {
  if (auto st = validate_shape(o.up); !st.ok()) return prefixed("up", st);
  if (auto st = validate_shape(o.down); !st.ok()) return prefixed("down", st);
  if (o.target.empty()) return invalid_argument("target is required: HOST:PORT of the server behind the proxy");
  auto target = net::parse_host_port(o.target);
  if (!target.ok()) return prefixed("target", target.status());
  auto impl = std::make_unique<Impl>();
  impl->opt = o;
  {
    std::error_code ec;
    asio::ip::tcp::resolver resolver(impl->io);
    impl->target_endpoints = resolver.resolve(target->host, std::to_string(target->port), ec);
    if (ec || impl->target_endpoints.empty())
      return detail::unavailable("cannot resolve the target ", o.target, ": ", ec ? ec.message() : "no address");
  }
  LIBSPLIT_RETURN_IF_ERROR(bind_acceptor(impl->acceptor, "listen", o.listen, &impl->port));
  if (!o.control.empty())
    LIBSPLIT_RETURN_IF_ERROR(bind_acceptor(impl->control_acceptor, "control", o.control, &impl->control_port));
  impl->shapes[0] = o.up;
  impl->shapes[1] = o.down;
  impl->links[0] = std::make_unique<engine::Link>(impl->io, 0, o.up, o.seed);
  impl->links[1] = std::make_unique<engine::Link>(impl->io, 1, o.down, o.seed ^ 0x9e3779b97f4a7c15ull);
  impl->accept();
  if (!o.control.empty()) impl->accept_control();
  auto* state = impl.get();
  impl->thread = std::thread([state] {
    try {
      state->io.run();
    } catch (const std::exception& e) {
      detail::logger()->error("linkemu: I/O thread stopped: {}", e.what());
    }
  });
  detail::logger()->debug("linkemu: listening on {} (port {}), target {}", o.listen, impl->port, o.target);
  if (!o.control.empty()) detail::logger()->debug("linkemu: control on {} (port {})", o.control, impl->control_port);
  return std::unique_ptr<Proxy>(new Proxy(std::move(impl)));
}

uint16_t Proxy::port() const { return impl_->port; }
uint16_t Proxy::control_port() const { return impl_->control_port; }
Status Proxy::set_shape(Direction d, const Shape& s) { return impl_->set_shape(d, s); }
Shape Proxy::shape(Direction d) const { return impl_->shape(d); }
Result<std::string> Proxy::command(const std::string& line) { return impl_->command(line); }
void Proxy::stop() { impl_->stop(); }

Stats Proxy::stats() const {
  Stats s;
  s.connections = impl_->accepted;
  s.active_connections = impl_->active;
  s.bytes_up = impl_->bytes[0];
  s.bytes_down = impl_->bytes[1];
  return s;
}

// ---------------------------------------------------------------------------------------------
// Control client
// ---------------------------------------------------------------------------------------------
Result<std::string> send_control_command(const std::string& address, const std::string& line,
                                         std::chrono::milliseconds timeout) {
  if (line.find('\n') != std::string::npos) return invalid_argument("a control command is one line");
  auto hp = net::parse_host_port(address);
  if (!hp.ok()) return hp.status();
  using asio::ip::tcp;
  asio::io_context io;
  tcp::resolver resolver(io);
  tcp::socket socket(io);
  asio::streambuf buf(engine::kMaxControlLine + 2);
  const std::string out = line + "\n";
  std::error_code failure;
  bool done = false;
  std::string reply;
  resolver.async_resolve(hp->host, std::to_string(hp->port), [&](std::error_code ec, tcp::resolver::results_type r) {
    if (ec) return void(failure = ec);
    asio::async_connect(socket, r, [&](std::error_code ec2, const tcp::endpoint&) {
      if (ec2) return void(failure = ec2);
      asio::async_write(socket, asio::buffer(out), [&](std::error_code ec3, size_t) {
        if (ec3) return void(failure = ec3);
        asio::async_read_until(socket, buf, '\n', [&](std::error_code ec4, size_t n) {
          if (ec4 && !(ec4 == asio::error::eof && buf.size() > 0)) return void(failure = ec4);
          reply.assign(asio::buffers_begin(buf.data()),
                       asio::buffers_begin(buf.data()) + ptrdiff_t(ec4 ? buf.size() : n));
          while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.pop_back();
          done = true;
        });
      });
    });
  });
  io.run_for(timeout);
  if (failure) return detail::unavailable("control port ", address, ": ", failure.message());
  if (!done)
    return detail::deadline_exceeded("no reply from the control port ", address, " within ", timeout.count(), " ms");
  return reply;
}

}  // namespace libsplit::linkemu
