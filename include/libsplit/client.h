// The device's connection to split-server: sends encoded bottlenecks (or inputs) and receives
// the tail's answer. Asio stays private.
//
// Two ways to drive the connection (ClientOptions::io_thread):
//  - with an I/O thread (the default): every method may be called from any thread and many
//    requests may be in flight at once on the one connection. Callbacks of infer_async run on
//    the client's I/O thread: keep them short and do not call the blocking infer() from inside
//    one. A dropped connection is re-established in the background, with backoff.
//  - caller-driven (io_thread = false): no thread of its own; the thread inside a call does the
//    socket work itself, which saves two thread hand-offs per request (the lowest latency for
//    one request at a time, as a device loop makes them). Calls from several threads are safe
//    but take turns; infer_async calls `done` before it returns; a dropped connection is noticed
//    and re-established (with the same backoff) by the next call.
// Either way the destructor fails requests still in flight with kUnavailable before it returns.
#pragma once

#include "libsplit/export.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "libsplit/codec.h"
#include "libsplit/status.h"
#include "libsplit/tensor.h"

LIBSPLIT_PUBLIC_BEGIN
namespace libsplit {

struct ClientOptions {
  // HOST:PORT of split-server, or several separated by commas: the client connects to the first
  // that answers and, when its connection drops, moves on to the next (round robin). A request
  // lost with a dropped connection is sent once more on the next connection (to the same server
  // or another); inference requests are idempotent.
  std::string server = "127.0.0.1:7070";
  std::string model;                      // bundle name (manifest "name")
  std::string version;                    // "" = the newest version the server has
  std::string split;                      // "" = every split of the model
  uint32_t connect_timeout_ms = 3000;     // connect + handshake budget
  uint32_t default_deadline_ms = 5000;    // used when a call passes deadline_ms = 0
  uint32_t max_frame_bytes = 4u << 20;    // largest response body accepted, bytes (>= 1024)
  uint32_t reconnect_initial_ms = 50;     // first reconnect delay after the connection drops
  uint32_t reconnect_max_ms = 5000;       // backoff doubles up to this
  bool io_thread = true;                  // false: caller-driven (see above)
  // Caller-driven only: a call polls the socket without sleeping for up to this long before it
  // blocks, so a reply that comes within it is read without a thread wake-up (tens to a hundred
  // microseconds on a virtual machine whose idle cores sleep). The cost is a core kept busy
  // while waiting: 0 (the default) never spins; set it near the expected round trip.
  uint32_t busy_poll_us = 0;              // 0..1000000
  std::string auth_token;                 // the server's pre-shared token, if it requires one
  // TLS (a build with LIBSPLIT_WITH_TLS). The server's certificate must chain to tls_ca_file
  // (PEM; "" = the system's trust store) and name tls_server_name ("" = the endpoint's host, a
  // name or an IP address). A client certificate (both files, PEM) for servers that ask for one.
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_server_name;
  std::string tls_cert_file;
  std::string tls_key_file;
  // false: connect() fails when the server cannot be reached. true: connect() returns a client
  // that keeps trying in the background (splits() stays empty until the first handshake), for a
  // device that must start, and run locally, while the edge is away.
  bool start_offline = false;
};

// A split as the server agreed to it in the handshake.
struct RemoteSplit {
  uint16_t index = 0;
  std::string id;
  CodecSpec codec;
  std::vector<int64_t> bottleneck_shape;
};

struct Reply {
  std::vector<ClassScore> top;  // when top_k > 0
  Tensor output;                // when top_k == 0: the whole output tensor
  uint32_t server_queue_us = 0;
  uint32_t server_tail_us = 0;
  uint64_t round_trip_us = 0;   // from handing the frame to the socket to reading the reply
  size_t request_bytes = 0;     // whole request frame, header included
  size_t response_bytes = 0;    // whole response frame
};

using ReplyCallback = std::function<void(Result<Reply>)>;

class Client {
 public:
  // Connects and performs the handshake; fails with kUnavailable (unreachable), kNotFound
  // (unknown model/version/split) or kFailedPrecondition (protocol version mismatch).
  static Result<std::unique_ptr<Client>> connect(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  std::vector<RemoteSplit> splits() const;  // from the first handshake (empty before it)
  std::vector<int64_t> input_shape() const;
  // Index for a split id, or -1.
  int find_split(const std::string& id) const;
  bool connected() const;

  // Sends `tensor` to split `split_index` (kFullModel for the full model) and waits for the
  // reply or the deadline. top_k in [0, 255]; 0 returns the output tensor.
  static constexpr uint16_t kFullModel = 0xFFFF;
  Result<Reply> infer(uint16_t split_index, const EncodedTensor& tensor, int top_k = 5, uint32_t deadline_ms = 0);
  // Same, asynchronous: `done` is called exactly once.
  void infer_async(uint16_t split_index, const EncodedTensor& tensor, int top_k, uint32_t deadline_ms,
                   ReplyCallback done);

  // A link probe: a ping frame with `padding_bytes` (at most 1 MiB) after its nonce, answered by a
  // pong. The Reply has round_trip_us and request_bytes only. Timing a small and a padded ping
  // gives the round trip and the uplink rate. A server older than protocol 1.2 gets no padding
  // (request_bytes says what was sent).
  Result<Reply> ping(uint32_t padding_bytes = 0, uint32_t deadline_ms = 0);
  void ping_async(uint32_t padding_bytes, uint32_t deadline_ms, ReplyCallback done);

 private:
  struct Impl;
  explicit Client(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace libsplit
LIBSPLIT_PUBLIC_END
