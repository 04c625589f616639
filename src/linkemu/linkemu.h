// Link emulator: a TCP proxy that shapes each direction of the traffic it relays (rate or a
// Mahimahi delivery trace, one-way delay, jitter, a bounded link queue). It needs no privileges:
// point a client at the proxy instead of the server to see how it behaves on a slow or distant
// link. Used by split-linkemu and by tests; not part of the shipped library.
//
// Model, per direction (up = client -> target, down = target -> client):
//  - One emulated link per direction, shared by every connection through the proxy. Bytes read
//    from a source socket are cut into packets of at most kPacketBytes and join the link's FIFO
//    queue; the link's capacity (rate or trace) is thus divided among the connections.
//  - Departure: with a rate, a token bucket of `rate_bps` with depth `burst_bytes` (starts full);
//    a packet departs as soon as the bucket holds its size. With a trace, each timestamp is one
//    delivery opportunity of kPacketBytes bytes at that instant (unused bytes of an opportunity
//    are lost); the trace starts when it is set and repeats with its last timestamp as period.
//  - Release: departure + delay + a uniform draw in [0, jitter], never earlier than the previous
//    release on the same connection, so bytes are never reordered. Released bytes are written to
//    the destination socket.
//  - Backpressure, per connection and direction: while `queue_bytes` or more wait in the link
//    queue (not yet departed) the proxy does not read from the source, so TCP flow control pushes
//    back on the sender. Departed bytes not yet written (on the emulated wire, or waiting for a
//    slow reader) are capped separately at kMaxInFlightBytes.
//  - A shape change applies at once to every packet that has not departed yet (including one
//    waiting for tokens); packets that already departed keep their release times.
//  - End of stream: when a source closes (or fails), its queued bytes are still delivered, then
//    the destination's sending side is shut down. A connection ends when both directions have
//    ended, or at once when writing to either socket fails.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "libsplit/status.h"

namespace libsplit::linkemu {

// Largest packet the link carries, and the bytes of one trace delivery opportunity.
constexpr uint32_t kPacketBytes = 1500;
// Departed-but-unwritten bytes per connection and direction before the proxy stops reading.
constexpr uint32_t kMaxInFlightBytes = 16u << 20;

struct Shape {
  double rate_bps = 0;                // token-bucket rate in bit/s; 0 = unlimited
  uint32_t burst_bytes = 0;           // bucket depth; 0 = kPacketBytes (never less than one packet)
  uint32_t delay_us = 0;              // one-way propagation delay
  uint32_t jitter_us = 0;             // extra delay, uniform in [0, jitter]; never reorders bytes
  std::vector<uint32_t> trace_ms;     // non-empty: Mahimahi delivery trace; overrides rate_bps
  uint32_t queue_bytes = 256 * 1024;  // link-queue bytes per connection before reading pauses
};

enum class Direction { kUp, kDown, kBoth };  // up = client -> target, down = target -> client

struct Options {
  std::string listen = "127.0.0.1:0";  // HOST:PORT (an IP address); port 0 = any free port
  std::string target;                  // HOST:PORT of the server behind the proxy (resolved once, at start)
  Shape up, down;
  std::string control;  // "" = no control port, else HOST:PORT for the text control port
  uint64_t seed = 1;    // jitter draws
};

struct Stats {
  uint64_t connections = 0;         // accepted since start
  uint64_t active_connections = 0;  // open now
  uint64_t bytes_up = 0;            // written to the target
  uint64_t bytes_down = 0;          // written to the client
};

class Proxy {
 public:
  // Validates the options, resolves the target, binds (and the control port if asked) and runs
  // its own I/O thread.
  static Result<std::unique_ptr<Proxy>> start(const Options& options);
  ~Proxy();  // stops
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  uint16_t port() const;          // the bound proxy port
  uint16_t control_port() const;  // the bound control port, 0 without one

  // Thread-safe; applies to live connections at once (see the model above). kBoth sets both.
  Status set_shape(Direction direction, const Shape& shape);
  Shape shape(Direction direction) const;  // kBoth reads as kUp
  Stats stats() const;

  // Runs one control command (see parse_control_command) and returns its reply line without the
  // newline: "ok ..." on success. Thread-safe. The control port answers each line with this,
  // or with "error: <message>" when it fails.
  Result<std::string> command(const std::string& line);

  void stop();  // idempotent: closes every connection, joins the I/O thread

 private:
  struct Impl;
  explicit Proxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Checks a shape's values (burst, queue, rate, trace); the error names the field.
Status validate_shape(const Shape& shape);

// Mahimahi trace: one millisecond timestamp per line, non-decreasing, each line one delivery
// opportunity of kPacketBytes; blank lines are skipped. Errors name the line and the problem.
Result<std::vector<uint32_t>> parse_mahimahi_trace(const std::string& text);
Result<std::vector<uint32_t>> load_mahimahi_trace(const std::string& path);

// Values as written on the command line and in control commands.
// Rate: a number with unit bit, kbit, mbit or gbit (per second, decimal), e.g. "2.5mbit"; "0" or
// "unlimited" = no limit. Duration: a number with unit us, ms or s, e.g. "20ms"; a bare "0" is
// allowed. Size: bytes, optionally with b, kb, kib, mb or mib, e.g. "64kib".
Result<double> parse_rate(const std::string& text);
Result<uint32_t> parse_duration_us(const std::string& text);
Result<uint32_t> parse_size_bytes(const std::string& text);
// "unlimited", "12mbit", "1.5kbit"; "20ms", "1.5ms", "250us"; a shape on one line.
std::string format_rate(double bps);
std::string format_duration_us(uint32_t us);
std::string format_shape(const Shape& shape);

// One control command:
//   set up|down|both KEY=VALUE...   keys: rate, delay, jitter, burst, queue, trace
//                                   (trace=FILE loads a Mahimahi trace, trace=none drops it)
//   show [up|down|both]             the current shapes
//   stats                           connections and bytes
//   help
// Keys not named keep their values. Errors name the bad token.
struct ControlCommand {
  enum class Verb { kSet, kShow, kStats, kHelp };
  Verb verb = Verb::kHelp;
  Direction direction = Direction::kBoth;
  // For kSet, which fields the command sets (the others keep their current values).
  bool has_rate = false, has_burst = false, has_delay = false, has_jitter = false, has_trace = false, has_queue = false;
  Shape values;
  std::string trace_source;  // the file the trace came from, "" for trace=none
};
Result<ControlCommand> parse_control_command(const std::string& line);
// `base` with the fields a kSet command names replaced.
Shape apply_command(const Shape& base, const ControlCommand& command);

// Client side of the control port: sends one command line to HOST:PORT and returns the reply
// line (which may itself be "error: ..."). Fails if the port cannot be reached in time.
Result<std::string> send_control_command(const std::string& address, const std::string& line,
                                         std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

}  // namespace libsplit::linkemu
