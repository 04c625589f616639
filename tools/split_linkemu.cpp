// split-linkemu: a link emulator anyone can run without root. A TCP proxy between split-client
// and split-server (or any TCP client and server) that shapes each direction: rate or a Mahimahi
// delivery trace, one-way delay, jitter, a bounded link queue. Runs until SIGINT/SIGTERM; a
// control port changes the shape while it runs, and --send talks to that port.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "stop_signals.h"

#include "libsplit/log.h"
#include "linkemu/linkemu.h"

namespace le = libsplit::linkemu;

namespace {


// Parses `value` of `flag` (when given) into *out; prints the error and returns false if bad.
template <typename T, typename Parse>
bool parse_flag(const char* flag, const std::string& value, Parse parse, T* out) {
  if (value.empty()) return true;
  auto r = parse(value);
  if (!r.ok()) {
    std::fprintf(stderr, "split-linkemu: %s: %s\n", flag, r.status().message().c_str());
    return false;
  }
  *out = *r;
  return true;
}

struct DirectionFlags {
  std::string rate, delay, jitter, burst, trace;
};

bool apply_flags(const char* dir, const DirectionFlags& f, le::Shape* s) {
  const std::string p = std::string("--") + dir + "-";
  bool ok = parse_flag((p + "rate").c_str(), f.rate, le::parse_rate, &s->rate_bps) &&
            parse_flag((p + "delay").c_str(), f.delay, le::parse_duration_us, &s->delay_us) &&
            parse_flag((p + "jitter").c_str(), f.jitter, le::parse_duration_us, &s->jitter_us) &&
            parse_flag((p + "burst").c_str(), f.burst, le::parse_size_bytes, &s->burst_bytes) &&
            parse_flag((p + "trace").c_str(), f.trace, le::load_mahimahi_trace, &s->trace_ms);
  if (ok && !f.rate.empty() && f.trace.empty()) s->trace_ms.clear();
  return ok;
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  libsplit::tools::block_stop_signals();  // in every thread; main waits for them below

  le::Options o;
  o.listen = "127.0.0.1:7071";
  o.target = "127.0.0.1:7070";
  DirectionFlags both, up, down;
  std::string queue, send, log_level = "info";
  std::vector<std::string> words;
  bool stdin_commands = false;

  CLI::App app{
      "split-linkemu: a TCP proxy that emulates a slow or distant link in each direction (up = client to target, "
      "down = target to client). Rates: bit, kbit, mbit, gbit per second (0 = unlimited); durations: us, ms, s; "
      "sizes: bytes or b, kb, kib, mb, mib."};
  app.add_option("--listen", o.listen, "Address clients connect to, HOST:PORT (port 0 = any free port)")
      ->capture_default_str();
  app.add_option("--target", o.target, "The server behind the proxy, HOST:PORT")->capture_default_str();
  app.add_option("--rate", both.rate, "Rate of both directions, e.g. 10mbit (token bucket; default unlimited)");
  app.add_option("--delay", both.delay, "One-way delay of both directions, e.g. 20ms");
  app.add_option("--jitter", both.jitter,
                 "Extra delay of both directions, uniform in [0, JITTER]; never reorders bytes");
  app.add_option("--burst", both.burst,
                 "Token-bucket depth of both directions (default and minimum: one 1500-byte packet)");
  for (auto* d : {&up, &down}) {
    const std::string n = d == &up ? "up" : "down";
    app.add_option("--" + n + "-rate", d->rate, "Rate of the " + n + " direction (overrides --rate)");
    app.add_option("--" + n + "-delay", d->delay, "One-way delay of the " + n + " direction (overrides --delay)");
    app.add_option("--" + n + "-jitter", d->jitter, "Jitter of the " + n + " direction (overrides --jitter)");
    app.add_option("--" + n + "-burst", d->burst, "Token-bucket depth of the " + n + " direction (overrides --burst)");
    app.add_option("--" + n + "-trace", d->trace,
                   "Mahimahi trace for the " + n +
                       " direction (one ms timestamp per line, each a 1500-byte delivery "
                       "opportunity; repeats); overrides the rate");
  }
  app.add_option("--queue-bytes", queue,
                 "Bytes waiting in each direction's link queue, per connection, before the proxy stops reading "
                 "(default 256kib, at least 1500)");
  app.add_option("--control", o.control,
                 "HOST:PORT of a text control port (one command per line, e.g. \"set up rate=1mbit delay=5ms\", "
                 "\"show\", \"help\"); default: none");
  app.add_option("--seed", o.seed, "Seed of the jitter draws")->capture_default_str();
  app.add_flag("--stdin", stdin_commands, "Also read control commands from standard input, replies on standard output");
  app.add_option(
      "--send", send,
      "Client mode: send COMMAND to the control port at HOST:PORT, print the reply, exit 1 if it is an error");
  app.add_option("command", words, "The control command of --send, e.g. set up rate=1mbit delay=5ms");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (!send.empty()) {
    const std::string cmd = join(words);
    if (cmd.empty()) {
      std::fprintf(stderr, "split-linkemu: --send %s needs a command, e.g. \"show\"\n", send.c_str());
      return 2;
    }
    auto reply = le::send_control_command(send, cmd);
    if (!reply.ok()) {
      std::fprintf(stderr, "split-linkemu: --send %s: %s\n", send.c_str(), reply.status().message().c_str());
      return 1;
    }
    std::printf("%s\n", reply->c_str());
    return reply->rfind("ok", 0) == 0 ? 0 : 1;
  }
  if (!words.empty()) {
    std::fprintf(stderr, "split-linkemu: \"%s\": a command is only taken with --send ADDR:PORT\n", join(words).c_str());
    return 2;
  }

  libsplit::LogLevel level;
  if (!libsplit::parse_log_level(log_level, &level)) {
    std::fprintf(stderr, "split-linkemu: --log-level \"%s\" is not one of trace, debug, info, warn, error, off\n",
                 log_level.c_str());
    return 2;
  }
  libsplit::set_log_level(level);

  le::Shape shape;
  // Flags for both directions first; the per-direction ones override them.
  const bool ok_both = parse_flag("--rate", both.rate, le::parse_rate, &shape.rate_bps) &&
                       parse_flag("--delay", both.delay, le::parse_duration_us, &shape.delay_us) &&
                       parse_flag("--jitter", both.jitter, le::parse_duration_us, &shape.jitter_us) &&
                       parse_flag("--burst", both.burst, le::parse_size_bytes, &shape.burst_bytes) &&
                       parse_flag("--queue-bytes", queue, le::parse_size_bytes, &shape.queue_bytes);
  if (!ok_both) return 2;
  if (shape.queue_bytes < le::kPacketBytes) {
    std::fprintf(stderr, "split-linkemu: --queue-bytes: \"%s\" is below one packet (%u bytes)\n", queue.c_str(),
                 le::kPacketBytes);
    return 2;
  }
  o.up = shape;
  o.down = shape;
  if (!apply_flags("up", up, &o.up) || !apply_flags("down", down, &o.down)) return 2;

  auto started = le::Proxy::start(o);
  if (!started.ok()) {
    std::fprintf(stderr, "split-linkemu: %s\n", started.status().message().c_str());
    return 1;
  }
  std::shared_ptr<le::Proxy> proxy = std::move(*started);
  std::printf("split-linkemu: listening on %s (port %u) -> %s\n", o.listen.c_str(), unsigned(proxy->port()),
              o.target.c_str());
  std::printf("split-linkemu: up:   %s\n", le::format_shape(o.up).c_str());
  std::printf("split-linkemu: down: %s\n", le::format_shape(o.down).c_str());
  if (!o.control.empty())
    std::printf("split-linkemu: control on %s (port %u)\n", o.control.c_str(), unsigned(proxy->control_port()));
  std::fflush(stdout);

  if (stdin_commands) {
    // Detached: it may stay blocked reading stdin until the process exits.
    std::thread([proxy] {
      for (std::string line; std::getline(std::cin, line);) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        auto r = proxy->command(line);
        std::printf("%s\n", r.ok() ? r->c_str() : ("error: " + r.status().message()).c_str());
        std::fflush(stdout);
      }
    }).detach();
  }

  const int sig = libsplit::tools::wait_for_stop_signal();
  proxy->stop();
  const auto s = proxy->stats();
  std::fprintf(stderr, "split-linkemu: signal %d, stopped after %llu connections (%llu bytes up, %llu bytes down)\n",
               sig, (unsigned long long)s.connections, (unsigned long long)s.bytes_up,
               (unsigned long long)s.bytes_down);
  return 0;
}
