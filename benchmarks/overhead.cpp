// bench-overhead: libsplit's own cost per request on loopback, beyond head and tail compute.
// Starts split-server's core in this process on 127.0.0.1 (its own threads), connects a client,
// and runs single-stream requests (the next when the previous answered).
//   overhead = total - head - tail   (tail as timed by the server)
// Stages: head and encode on the device; network = round trip - server queue - tail; queue = the
// server's wait from a whole request frame to a worker; client = what is left of total (input
// normalisation, handing the request to the client's I/O thread and the reply back).
// Prints p50/p90/p99/max per stage and writes JSON with --json.
#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include "libsplit/libsplit.h"

namespace {

struct Pct {
  double p50, p90, p99, max;
};
Pct pct(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, size_t(std::ceil(q * double(v.size())) - 1))]; };
  return {at(0.5), at(0.9), at(0.99), v.back()};
}

int usage() {
  std::fprintf(stderr,
               "usage: bench-overhead --bundle DIR [--split ID] [--requests N (1000)] [--warmup N (50)]\n"
               "                      [--threads T (1)] [--io-thread] [--inline-tail-max-us US]\n"
               "                      [--busy-poll-us US] [--no-optimize] [--json PATH]\n"
               "--io-thread: the client gets its own I/O thread (default: caller-driven, as split-client)\n"
               "--inline-tail-max-us: the server's ServerOptions::inline_tail_max_us (default: the server's default)\n"
               "--busy-poll-us: ServerOptions::busy_poll_us and ClientOptions::busy_poll_us (default 0: no spinning)\n"
               "--no-optimize: head and tail run as loaded (BundleOptions::optimize and ServerOptions::optimize false)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string bundle_dir, split, json_path;
  int requests = 1000, warmup = 50, threads = 1, inline_us = -1, busy_us = 0;
  bool io_thread = false, optimize = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--bundle") bundle_dir = next();
    else if (a == "--split") split = next();
    else if (a == "--requests") requests = std::atoi(next().c_str());
    else if (a == "--warmup") warmup = std::atoi(next().c_str());
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--json") json_path = next();
    else if (a == "--io-thread") io_thread = true;
    else if (a == "--inline-tail-max-us") inline_us = std::atoi(next().c_str());
    else if (a == "--busy-poll-us") busy_us = std::atoi(next().c_str());
    else if (a == "--no-optimize") optimize = false;
    else return usage();
  }
  if (bundle_dir.empty() || requests < 1 || warmup < 0 || threads < 1 || busy_us < 0) return usage();

  libsplit::BundleOptions bo;
  bo.load_tails = false;
  bo.load_full = false;
  bo.intra_op_threads = threads;
  bo.optimize = optimize;
  auto bundle = libsplit::Bundle::open(bundle_dir, bo);
  if (!bundle.ok()) return std::fprintf(stderr, "bench-overhead: %s\n", bundle.status().to_string().c_str()), 1;
  const auto& m = (*bundle)->manifest();
  if (split.empty()) split = m.default_split.empty() ? m.splits.at(0).id : m.default_split;
  auto strategy = libsplit::Strategy::parse(split, m);
  if (!strategy.ok() || strategy->kind != libsplit::Strategy::Kind::kSplit)
    return std::fprintf(stderr, "bench-overhead: --split must name a split of %s\n", m.name.c_str()), 2;

  libsplit::ServerOptions so;
  so.models_dir = bundle_dir;
  so.listen = "127.0.0.1:0";
  so.workers = 1;
  so.torch_threads = threads;
  so.optimize = optimize;
  so.summary_interval_ms = 0;
  if (inline_us >= 0) so.inline_tail_max_us = uint32_t(inline_us);
  so.busy_poll_us = uint32_t(busy_us);
  auto server = libsplit::Server::create(so);
  if (!server.ok()) return std::fprintf(stderr, "bench-overhead: %s\n", server.status().to_string().c_str()), 1;
  (*server)->start();
  libsplit::ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string((*server)->port());
  co.model = m.name;
  co.default_deadline_ms = 60000;
  co.io_thread = io_thread;
  co.busy_poll_us = uint32_t(busy_us);
  auto client = libsplit::Client::connect(co);
  if (!client.ok()) return std::fprintf(stderr, "bench-overhead: %s\n", client.status().to_string().c_str()), 1;
  auto session = libsplit::SplitSession::create(bundle->get(), client->get());
  if (!session.ok()) return 1;

  std::mt19937 rng(42);
  std::uniform_int_distribution<int> px(0, 255);
  libsplit::Tensor pixels{m.input.shape, std::vector<float>(size_t(libsplit::Tensor::element_count(m.input.shape)))};
  std::vector<double> head, encode, network, queue, tail, rest, total, overhead;
  size_t wire = 0, payload = 0;
  for (int i = 0; i < warmup + requests; ++i) {
    for (auto& v : pixels.data) v = float(px(rng));
    auto r = (*session)->run(pixels, *strategy, 5, 60000);
    if (!r.ok()) return std::fprintf(stderr, "bench-overhead: request %d: %s\n", i, r.status().to_string().c_str()), 1;
    if (i < warmup) continue;
    head.push_back(r->head_us);
    encode.push_back(r->encode_us);
    network.push_back(r->network_us);
    queue.push_back(r->server_queue_us);
    tail.push_back(r->tail_us);
    rest.push_back(r->total_us - r->head_us - r->encode_us - r->network_us - r->server_queue_us - r->tail_us);
    total.push_back(r->total_us);
    overhead.push_back(r->total_us - r->head_us - r->tail_us);
    wire = r->request_bytes;
    payload = r->payload_bytes;
    if ((i - warmup + 1) % std::max(1, requests / 10) == 0)
      std::fprintf(stderr, "\rbench-overhead: %d/%d requests", i - warmup + 1, requests);
  }
  std::fprintf(stderr, "\n");
  std::vector<double> share(overhead.size());
  for (size_t i = 0; i < share.size(); ++i) share[i] = 100.0 * overhead[i] / total[i];
  utsname u{};
  uname(&u);
  const auto stats = (*server)->stats();
  std::printf("bundle %s split %s: %d requests after %d warm-up, %d LibTorch thread(s), client %s, request frame %zu B (payload %zu B), "
              "server inline_tail_max_us %u (%llu requests ran inline)\n",
              m.name.c_str(), split.c_str(), requests, warmup, threads, io_thread ? "with an I/O thread" : "caller-driven", wire, payload,
              so.inline_tail_max_us, (unsigned long long)stats.inline_runs);
  std::printf("%-10s %10s %10s %10s %10s   (microseconds)\n", "stage", "p50", "p90", "p99", "max");
  const std::pair<const char*, std::vector<double>*> rows[] = {{"head", &head},       {"encode", &encode},
                                                               {"network", &network}, {"queue", &queue},
                                                               {"tail", &tail},       {"client", &rest},
                                                               {"total", &total},     {"overhead", &overhead}};
  std::string js = "{\n  \"bundle\": \"" + m.name + "\", \"split\": \"" + split + "\", \"requests\": " +
                   std::to_string(requests) + ", \"warmup\": " + std::to_string(warmup) + ", \"threads\": " +
                   std::to_string(threads) + ", \"client_io_thread\": " + (io_thread ? "true" : "false") + ",\n  \"request_bytes\": " + std::to_string(wire) +
                   ", \"payload_bytes\": " + std::to_string(payload) + ", \"machine\": \"" + u.machine + " " +
                   u.release + "\",\n  \"us\": {";
  bool first = true;
  for (const auto& [name, v] : rows) {
    auto p = pct(*v);
    std::printf("%-10s %10.1f %10.1f %10.1f %10.1f\n", name, p.p50, p.p90, p.p99, p.max);
    char b[256];
    std::snprintf(b, sizeof b, "%s\n    \"%s\": {\"p50\": %.2f, \"p90\": %.2f, \"p99\": %.2f, \"max\": %.2f}",
                  first ? "" : ",", name, p.p50, p.p90, p.p99, p.max);
    js += b;
    first = false;
  }
  auto ps = pct(share);
  std::printf("overhead share of total: p50 %.2f%%, p90 %.2f%%, p99 %.2f%%\n", ps.p50, ps.p90, ps.p99);
  char b[200];
  std::snprintf(b, sizeof b, "\n  },\n  \"overhead_share_pct\": {\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f}\n}\n", ps.p50,
                ps.p90, ps.p99);
  js += b;
  if (!json_path.empty()) std::ofstream(json_path) << js;
  client->reset();  // before the server stops
  (*server)->stop();
  return 0;
}
