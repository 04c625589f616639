// split-server: the edge daemon. Parses flags, sets up logging, runs libsplit::Server until
// SIGINT/SIGTERM.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

#include <CLI/CLI.hpp>

#include "stop_signals.h"

#include "libsplit/log.h"
#include "libsplit/server.h"


int main(int argc, char** argv) {
  libsplit::tools::block_stop_signals();  // in every thread; main waits for them below

  libsplit::ServerOptions o;
  uint32_t drain_grace_ms = 30000;
  std::string log_level = "info";
  bool print_config = false;
  CLI::App app{"split-server: serves the tails of split models to devices (libsplit edge daemon)"};
  app.set_config("--config", "",
                 "Read options from this file: TOML, one 'key = value' per line, keys are the long flag names "
                 "without the leading dashes (an example is installed as split-server.toml); flags given on the "
                 "command line win over the file");
  app.allow_config_extras(CLI::config_extras_mode::error);  // a mistyped key is an error, not ignored
  app.add_flag("--print-config", print_config,
               "Print the effective configuration (file and flags merged, in the config file's format) and exit")
      ->configurable(false);
  app.add_option("--models", o.models_dir, "Directory of bundles (or one bundle directory)")->required();
  app.add_option("--listen", o.listen, "Address to listen on, HOST:PORT (port 0 = any free port)")->capture_default_str();
  app.add_option("--threads", o.workers, "Worker threads running tails")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--io-threads", o.io_threads, "Network I/O threads")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--torch-threads", o.torch_threads, "LibTorch intra-op threads per forward pass")
      ->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--device", o.device, "cpu, or cuda[:N] where LibTorch has CUDA")->capture_default_str();
  bool no_optimize = false;
  app.add_flag("--no-optimize", no_optimize,
               "Run the tails as loaded instead of optimized for inference (frozen, batch norm folded into the "
               "convolutions, oneDNN convolutions where LibTorch has them)");
  app.add_option("--max-frame-bytes", o.max_frame_bytes, "Largest accepted frame body in bytes")->capture_default_str();
  app.add_option("--max-connections", o.max_connections, "Connections beyond this are closed at once")->capture_default_str();
  app.add_option("--max-in-flight", o.max_in_flight_per_connection, "Requests in flight per connection")->capture_default_str();
  app.add_option("--drain-grace-ms", drain_grace_ms,
                 "On SIGTERM/SIGINT: time for accepted requests to finish before the server stops")
      ->capture_default_str();
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "File holding a pre-shared token every client must present in its hello (not on the command line, "
                 "where other users could read it); empty = no token");
  app.add_option("--tls-cert", o.tls_cert_file, "PEM certificate chain: with --tls-key, every connection is TLS");
  app.add_option("--tls-key", o.tls_key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", o.tls_client_ca_file,
                 "PEM CA: every client must present a certificate that chains to it (mutual TLS)");
  app.add_option("--http", o.http_listen,
                 "HOST:PORT for /healthz, /readyz and /metrics (Prometheus text); default: none");
  app.add_option("--max-queue", o.max_queue_per_model,
                 "Requests waiting for a worker per model; more are answered 'resource exhausted' at once")
      ->capture_default_str();
  app.add_option("--max-batch", o.max_batch,
                 "Dynamic batching: run up to this many queued requests of one model and split in one forward "
                 "(1 = off, each request on its own)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--batch-delay-us", o.batch_delay_us,
                 "Dynamic batching: longest a request waits, from its arrival, for its batch to fill")
      ->capture_default_str()->check(CLI::Range(0, 1000000));
  app.add_option("--inline-tail-max-us", o.inline_tail_max_us,
                 "Serving a single device (one connection, no request queued behind this one, no worker busy), "
                 "run a request on the I/O thread that read it if its split's tail recently took at most this "
                 "long: one thread hand-off less; 0 = always hand off to a worker")
      ->capture_default_str()->check(CLI::Range(0, 1000000));
  app.add_option("--busy-poll-us", o.busy_poll_us,
                 "After each event an I/O thread polls its sockets without sleeping for up to this long (while no "
                 "tail runs) before it blocks: a request arriving within it is read without a wake-up, at the "
                 "price of a busy core; 0 = never spin")
      ->capture_default_str()->check(CLI::Range(0, 1000000));
  app.add_option("--idle-timeout-ms", o.idle_timeout_ms, "Close connections idle this long")->capture_default_str();
  app.add_option("--frame-timeout-ms", o.frame_timeout_ms, "A started frame must arrive completely within this")
      ->capture_default_str();
  app.add_option("--handshake-timeout-ms", o.handshake_timeout_ms, "Hello must arrive within this")->capture_default_str();
  app.add_option("--default-deadline-ms", o.default_deadline_ms, "Longest a request may take")->capture_default_str();
  app.add_option("--summary-interval-ms", o.summary_interval_ms, "Period of the summary log line (0 = off)")->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  o.optimize = !no_optimize;
  if (print_config) {
    // Every option with its value, defaults included; the switch itself is left out.
    std::string text = app.config_to_str(/*default_also=*/true, /*write_description=*/false);
    std::printf("%s", text.c_str());
    return 0;
  }
  if (!token_file.empty()) {
    std::ifstream f(token_file);
    if (!f) {
      std::fprintf(stderr, "split-server: --token-file %s cannot be read\n", token_file.c_str());
      return 2;
    }
    std::getline(f, o.auth_token);
    if (o.auth_token.empty() || o.auth_token.size() > 255) {
      std::fprintf(stderr, "split-server: %s: the token must be one line of 1 to 255 bytes\n", token_file.c_str());
      return 2;
    }
  }

  libsplit::LogLevel level;
  if (!libsplit::parse_log_level(log_level, &level)) {
    std::fprintf(stderr, "split-server: --log-level \"%s\" is not one of trace, debug, info, warn, error, off\n", log_level.c_str());
    return 2;
  }
  libsplit::set_log_level(level);
  auto server = libsplit::Server::create(o);
  if (!server.ok()) {
    std::fprintf(stderr, "split-server: %s\n", server.status().to_string().c_str());
    return 1;
  }
  if (auto st = (*server)->start(); !st.ok()) {
    std::fprintf(stderr, "split-server: %s\n", st.to_string().c_str());
    return 1;
  }
  std::printf("split-server: listening on port %u\n", unsigned((*server)->port()));
  if ((*server)->http_port() != 0) std::printf("split-server: http on port %u\n", unsigned((*server)->http_port()));
  std::fflush(stdout);
  const int sig = libsplit::tools::wait_for_stop_signal();
  std::fprintf(stderr, "split-server: signal %d, draining (grace %u ms)\n", sig, drain_grace_ms);
  const auto drained = (*server)->drain(drain_grace_ms);
  if (!drained.ok()) std::fprintf(stderr, "split-server: %s\n", drained.to_string().c_str());
  const auto s = (*server)->stats();
  std::fprintf(stderr, "split-server: served %llu requests (%llu failed) on %llu connections\n",
               (unsigned long long)s.requests_ok, (unsigned long long)s.requests_failed,
               (unsigned long long)s.connections_accepted);
  return 0;
}
