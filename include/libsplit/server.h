// The edge daemon's core: serves the tails (and full models) of a directory of bundles to many
// devices over TCP. Asio and LibTorch stay private.
//
// Thread safety: create() and the destructor from one thread; start(), stop(), wait(), port()
// and stats() from any thread. Network I/O runs on io_threads; tails run on a separate worker
// pool, never on an I/O thread.
#pragma once

#include "libsplit/export.h"

#include <cstdint>
#include <memory>
#include <string>

#include "libsplit/status.h"

LIBSPLIT_PUBLIC_BEGIN
namespace libsplit {

struct ServerOptions {
  std::string models_dir;                 // a bundle directory, or a directory of bundle directories
  std::string listen = "127.0.0.1:7070";  // HOST:PORT; port 0 picks a free port (see port())
  std::string device = "cpu";             // "cpu" or "cuda[:N]" (where LibTorch has CUDA)
  int io_threads = 1;                     // threads doing socket I/O, 1..64
  int workers = 2;                        // threads running tails, 1..256
  int torch_threads = 1;                  // LibTorch intra-op threads per forward, 1..256
  bool optimize = true;                   // tails optimized for inference at load (BundleOptions)
  uint32_t max_frame_bytes = 4u << 20;    // largest accepted frame body, bytes (>= 1024)
  uint32_t handshake_timeout_ms = 5000;   // a new connection must finish its hello within this
  uint32_t frame_timeout_ms = 10000;      // a started frame must arrive completely within this
  uint32_t idle_timeout_ms = 300000;      // a connection with no traffic and no work is closed
  uint32_t max_connections = 1024;        // more are accepted and closed at once
  uint32_t max_in_flight_per_connection = 64;  // more get "resource exhausted"
  uint32_t max_queue_per_model = 256;     // requests waiting for a worker, per bundle; more are
                                          // answered "resource exhausted" at once
  uint32_t default_deadline_ms = 10000;   // a request may ask for less, never more
  // Dynamic batching, per model and split: a worker runs up to max_batch queued requests in one
  // forward, waiting at most batch_delay_us (from the oldest request's arrival) for the batch
  // to fill. max_batch 1 (the default) runs each request on its own, at once.
  uint32_t max_batch = 1;                 // 1..1024
  uint32_t batch_delay_us = 0;            // 0..1000000
  // A request whose tail recently took at most this long (moving average, per model and split)
  // runs on the I/O thread that read it, one thread hand-off (and wake-up) less, when the
  // server serves a single device waiting for it: one open connection, no further request
  // already behind it on that connection, no worker busy. With several connections, or
  // pipelined requests, every request goes to the workers (an I/O thread running tails would
  // leave the others' requests unread while the workers idle). 0 = always hand off. Not with
  // batching.
  uint32_t inline_tail_max_us = 5000;     // 0..1000000
  // An I/O thread polls its sockets without sleeping for up to this long after each event
  // before it blocks again, so a request arriving within it is read without a thread wake-up
  // (tens to a hundred microseconds on a virtual machine whose idle cores sleep). Costs a core
  // kept busy for that long after each event; 0 (the default) never spins.
  uint32_t busy_poll_us = 0;              // 0..1000000
  uint32_t summary_interval_ms = 60000;   // period of the summary log line; 0 = none
  std::string auth_token;                 // non-empty: every client's hello must carry it
  // TLS (a build with LIBSPLIT_WITH_TLS): the certificate chain and private key, PEM. Set, every
  // connection is TLS. tls_client_ca_file set: clients must present a certificate chaining to it.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  std::string http_listen;                // HOST:PORT for /healthz, /readyz and /metrics
                                          // (Prometheus text); "" = no HTTP endpoint
};

struct ServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_open = 0;
  uint64_t connections_rejected = 0;  // over max_connections
  uint64_t requests_received = 0;  // request frames handled: admitted to a queue or refused
  uint64_t requests_ok = 0;
  uint64_t requests_failed = 0;       // answered with an error frame (all causes)
  uint64_t rejected_queue_full = 0;   // of those: the model's queue was full
  uint64_t rejected_deadline = 0;     // of those: the deadline passed before a worker took it
  uint64_t protocol_errors = 0;       // malformed frames (the connection is closed)
  uint64_t forwards = 0;              // tail or full-model runs (fewer than requests_ok when batching)
  uint64_t forward_requests = 0;      // requests those runs carried
  uint64_t inline_runs = 0;           // of the requests: run on an I/O thread (inline_tail_max_us)
  uint64_t tls_handshake_failures = 0;  // connections closed in the TLS handshake
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
};

class Server {
 public:
  // Loads and warms up every bundle, then binds the listening socket (not yet accepting).
  static Result<std::unique_ptr<Server>> create(const ServerOptions& options);
  ~Server();  // stops and joins
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const;  // the bound port
  uint16_t http_port() const;  // the bound HTTP port (0 without http_listen)
  Status start();         // starts accepting on background threads; returns at once
  void stop();            // stops accepting, closes connections, joins threads; idempotent
  // Graceful stop: stops accepting (and /readyz says so), sends every client a drain frame,
  // answers new requests "unavailable", lets accepted requests finish for up to grace_ms, then
  // stop(). kDeadlineExceeded if some were still running when the grace ended.
  Status drain(uint32_t grace_ms);
  void wait();            // blocks until stop() completes
  ServerStats stats() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace libsplit
LIBSPLIT_PUBLIC_END
