// bench-throughput: how close split-server comes to the compute bound of a tail, with and without
// dynamic batching. In one process and one run, interleaved over rounds (the machine is shared):
//   tight     W threads run the tail in a tight loop (batch 1), nothing else: the compute bound
//   tight-bN  the same with N inputs stacked per forward (what batching could gain at most)
//   daemon-b1 split-server core on 127.0.0.1 with W workers, C closed-loop clients (each sends its
//             next request when the previous one is answered), batching off
//   daemon-bN the same with --max-batch N --batch-delay-us D
// Every forward uses the same LibTorch intra-op threads. With C clients and W workers, a batch of
// C / W lets every worker take a full batch (a larger one leaves workers idle in a closed loop). Inputs: one random image through the
// head, coded with the split's codec (random weights are fine: only time is measured).
// Prints per-round requests per second and latency percentiles, the medians over rounds and the
// daemon / tight ratio of each round; --json writes it all.
//   bench-throughput --bundle DIR [--split ID] [--clients C (8)] [--workers W (2)]
//                    [--torch-threads T (1)] [--batch N (4)] [--batch-delay-us D (5000)]
//                    [--seconds S (20)] [--warmup-s S (3)] [--rounds R (3)] [--modes LIST] [--json PATH]
// --modes: comma-separated subset of tight, tight-bN, daemon-b1, daemon-bN (default: all four).
// --no-optimize: models run as loaded (BundleOptions/ServerOptions::optimize false).
// --inline-tail-max-us: the daemons' ServerOptions::inline_tail_max_us (default: the server's).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "libsplit/libsplit.h"

namespace {

using Clock = std::chrono::steady_clock;

int usage() {
  std::fprintf(stderr,
               "usage: bench-throughput --bundle DIR [--split ID] [--clients C (8)] [--workers W (2)]\n"
               "                        [--torch-threads T (1)] [--batch N (4)] [--batch-delay-us D (5000)]\n"
               "                        [--seconds S (20)] [--warmup-s S (3)] [--rounds R (3)] [--modes LIST]\n"
               "                        [--inline-tail-max-us US] [--no-optimize] [--json PATH]\n"
               "--modes: comma-separated subset of tight, tight-bN, daemon-b1, daemon-bN (default: all)\n");
  return 2;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(std::ceil(q * double(v.size())) - 1))];
}

struct Phase {
  double rps = 0;
  double p50_ms = 0, p99_ms = 0;  // per request: forward time (tight) or client round trip (daemon)
  size_t samples = 0;
};

// Runs `threads` loops of `one` (which does some work and returns how many requests it served)
// for warmup + seconds; counts what completes inside the measured window (the last ones started
// finish after it, uncounted).
template <typename F>
Phase run_loops(int threads, double warmup_s, double seconds, F one) {
  const auto t0 = Clock::now();
  const auto from = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup_s));
  const auto until = from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::mutex mu;
  std::vector<double> lat;
  size_t served = 0;
  std::atomic<bool> failed{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      std::vector<double> mine;
      size_t n = 0;
      while (!failed) {
        const auto a = Clock::now();
        if (a >= until) break;
        const int k = one(t);
        if (k < 0) {
          failed = true;
          break;
        }
        const auto b = Clock::now();
        // Completions inside the window: unbiased for a closed loop even when one forward is long.
        if (b >= from && b <= until) {
          n += size_t(k);
          for (int i = 0; i < k; ++i) mine.push_back(std::chrono::duration<double, std::milli>(b - a).count());
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      served += n;
      lat.insert(lat.end(), mine.begin(), mine.end());
    });
  for (auto& t : ts) t.join();
  if (failed) std::exit(1);
  return {double(served) / seconds, quantile(lat, 0.5), quantile(lat, 0.99), lat.size()};
}

}  // namespace

int main(int argc, char** argv) {
  std::string bundle_dir, split, json_path, modes;
  int inline_us = -1;  // -1: the server's default
  bool optimize = true;  // --no-optimize: models run as loaded
  int clients = 8, workers = 2, torch_threads = 1, batch = 4, rounds = 3;
  uint32_t delay_us = 5000;
  double seconds = 20, warmup_s = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--bundle") bundle_dir = next();
    else if (a == "--split") split = next();
    else if (a == "--clients") clients = std::atoi(next().c_str());
    else if (a == "--workers") workers = std::atoi(next().c_str());
    else if (a == "--torch-threads") torch_threads = std::atoi(next().c_str());
    else if (a == "--batch") batch = std::atoi(next().c_str());
    else if (a == "--batch-delay-us") delay_us = uint32_t(std::atoi(next().c_str()));
    else if (a == "--seconds") seconds = std::atof(next().c_str());
    else if (a == "--warmup-s") warmup_s = std::atof(next().c_str());
    else if (a == "--rounds") rounds = std::atoi(next().c_str());
    else if (a == "--json") json_path = next();
    else if (a == "--modes") modes = next();
    else if (a == "--inline-tail-max-us") inline_us = int(std::atoi(next().c_str()));
    else if (a == "--no-optimize") optimize = false;
    else return usage();
  }
  if (bundle_dir.empty() || clients < 1 || workers < 1 || torch_threads < 1 || batch < 2 || seconds <= 0 ||
      warmup_s < 0 || rounds < 1)
    return usage();

  libsplit::BundleOptions bo;
  bo.load_full = false;
  bo.intra_op_threads = torch_threads;
  bo.optimize = optimize;
  auto bundle = libsplit::Bundle::open(bundle_dir, bo);
  if (!bundle.ok()) return std::fprintf(stderr, "bench-throughput: %s\n", bundle.status().to_string().c_str()), 1;
  const auto& m = (*bundle)->manifest();
  if (split.empty()) split = m.default_split.empty() ? m.splits.at(0).id : m.default_split;
  const int index = m.find_split(split);
  if (index < 0) return std::fprintf(stderr, "bench-throughput: %s has no split \"%s\"\n", m.name.c_str(), split.c_str()), 2;
  const auto& spec = m.splits[size_t(index)];

  // One input, as a device would send it, and its decoded bottleneck for the tight loops.
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  libsplit::Tensor x{m.input.shape, std::vector<float>(size_t(libsplit::Tensor::element_count(m.input.shape)))};
  for (auto& v : x.data) v = u(rng);
  auto z = (*bundle)->run_head(size_t(index), x);
  if (!z.ok()) return std::fprintf(stderr, "bench-throughput: %s\n", z.status().to_string().c_str()), 1;
  libsplit::EncodedTensor enc;
  const auto* tables = (*bundle)->tables(size_t(index));
  if (auto st = libsplit::encode(*z, spec.codec, &enc, tables); !st.ok())
    return std::fprintf(stderr, "bench-throughput: %s\n", st.to_string().c_str()), 1;
  libsplit::Tensor zq;
  if (auto st = libsplit::decode(enc, &zq, tables); !st.ok()) return 1;
  libsplit::Tensor zb = zq;  // `batch` copies stacked
  zb.shape[0] = batch;
  for (int i = 1; i < batch; ++i) zb.data.insert(zb.data.end(), zq.data.begin(), zq.data.end());

  // Two daemons, batching off and on, idle except in their own phase.
  std::map<std::string, std::unique_ptr<libsplit::Server>> servers;
  const std::string bname = "daemon-b" + std::to_string(batch), tname = "tight-b" + std::to_string(batch);
  for (const auto& [name, max_batch] : {std::pair<std::string, int>{"daemon-b1", 1}, {bname, batch}}) {
    libsplit::ServerOptions so;
    so.models_dir = bundle_dir;
    so.listen = "127.0.0.1:0";
    so.workers = workers;
    so.torch_threads = torch_threads;
    so.optimize = optimize;
    so.max_batch = uint32_t(max_batch);
    so.batch_delay_us = max_batch > 1 ? delay_us : 0;
    so.summary_interval_ms = 0;
    so.max_queue_per_model = uint32_t(clients) * 4;
    if (inline_us >= 0) so.inline_tail_max_us = uint32_t(inline_us);
    auto s = libsplit::Server::create(so);
    if (!s.ok() || !(*s)->start().ok())
      return std::fprintf(stderr, "bench-throughput: %s\n", s.ok() ? "start failed" : s.status().to_string().c_str()), 1;
    servers[name] = std::move(*s);
  }

  auto daemon_phase = [&](const std::string& name) {
    std::vector<std::unique_ptr<libsplit::Client>> cs;
    std::vector<uint16_t> idx;
    for (int c = 0; c < clients; ++c) {
      libsplit::ClientOptions co;
      co.server = "127.0.0.1:" + std::to_string(servers[name]->port());
      co.model = m.name;
      co.split = split;
      co.io_thread = false;
      co.default_deadline_ms = 120000;
      auto cl = libsplit::Client::connect(co);
      if (!cl.ok()) {
        std::fprintf(stderr, "bench-throughput: %s\n", cl.status().to_string().c_str());
        std::exit(1);
      }
      idx.push_back(uint16_t((*cl)->find_split(split)));
      cs.push_back(std::move(*cl));
    }
    return run_loops(clients, warmup_s, seconds, [&](int t) {
      auto r = cs[size_t(t)]->infer(idx[size_t(t)], enc, 1);
      if (!r.ok()) std::fprintf(stderr, "bench-throughput: %s: %s\n", name.c_str(), r.status().to_string().c_str());
      return r.ok() ? 1 : -1;
    });
  };
  auto tight_phase = [&](const libsplit::Tensor& in) {
    return run_loops(workers, warmup_s, seconds, [&](int) {
      auto y = (*bundle)->run_tail(size_t(index), in);
      return y.ok() ? int(in.shape[0]) : -1;
    });
  };

  std::vector<std::string> order = {"tight", tname, "daemon-b1", bname};
  if (!modes.empty()) {
    std::vector<std::string> chosen;
    for (size_t a = 0; a <= modes.size();) {
      size_t b = modes.find(',', a);
      if (b == std::string::npos) b = modes.size();
      const std::string mode = modes.substr(a, b - a);
      if (std::find(order.begin(), order.end(), mode) == order.end())
        return std::fprintf(stderr, "bench-throughput: --modes: unknown mode \"%s\" (tight, %s, daemon-b1, %s)\n",
                            mode.c_str(), tname.c_str(), bname.c_str()), 2;
      chosen.push_back(mode);
      a = b + 1;
    }
    order = chosen;
  }
  auto has = [&](const std::string& mode) { return std::find(order.begin(), order.end(), mode) != order.end(); };
  std::map<std::string, std::vector<Phase>> res;
  std::fprintf(stderr,
               "bench-throughput: %s split %s, %d clients, %d workers x %d LibTorch threads, batch %d (delay %u us), "
               "%d rounds of %.0f s (+%.0f s warm-up) per mode\n",
               m.name.c_str(), split.c_str(), clients, workers, torch_threads, batch, delay_us, rounds, seconds, warmup_s);
  for (int r = 0; r < rounds; ++r)
    for (const auto& mode : order) {
      Phase p = mode == "tight" ? tight_phase(zq) : mode == tname ? tight_phase(zb) : daemon_phase(mode);
      res[mode].push_back(p);
      std::fprintf(stderr, "round %d %-10s %8.2f req/s  p50 %8.1f ms  p99 %8.1f ms  (%zu requests)\n", r + 1,
                   mode.c_str(), p.rps, p.p50_ms, p.p99_ms, p.samples);
    }

  auto med = [](std::vector<double> v) { return quantile(std::move(v), 0.5); };
  std::printf("%-10s %10s %10s %10s %10s   (medians over %d rounds of %.0f s)\n", "mode", "req/s", "p50 ms", "p99 ms",
              "requests", rounds, seconds);
  std::string js = "{\n  \"bundle\": \"" + m.name + "\", \"split\": \"" + split + "\", \"clients\": " +
                   std::to_string(clients) + ", \"workers\": " + std::to_string(workers) + ", \"torch_threads\": " +
                   std::to_string(torch_threads) + ", \"batch\": " + std::to_string(batch) + ", \"batch_delay_us\": " +
                   std::to_string(delay_us) + ", \"rounds\": " + std::to_string(rounds) + ", \"seconds\": " +
                   std::to_string(seconds) + ",\n  \"modes\": {";
  for (size_t k = 0; k < order.size(); ++k) {
    const auto& v = res[order[k]];
    std::vector<double> rps, p50, p99;
    size_t n = 0;
    for (const auto& p : v) {
      rps.push_back(p.rps);
      p50.push_back(p.p50_ms);
      p99.push_back(p.p99_ms);
      n += p.samples;
    }
    std::printf("%-10s %10.2f %10.1f %10.1f %10zu\n", order[k].c_str(), med(rps), med(p50), med(p99), n);
    char b[400];
    std::snprintf(b, sizeof b, "%s\n    \"%s\": {\"rps\": [", k ? "," : "", order[k].c_str());
    js += b;
    for (size_t i = 0; i < rps.size(); ++i) js += (i ? ", " : "") + std::to_string(rps[i]);
    std::snprintf(b, sizeof b, "], \"rps_median\": %.3f, \"p50_ms_median\": %.2f, \"p99_ms_median\": %.2f, \"requests\": %zu}",
                  med(rps), med(p50), med(p99), n);
    js += b;
  }
  // Ratios within each round (same machine state), then their median.
  std::vector<double> daemon_vs_tight, batched_vs_b1;
  for (int r = 0; r < rounds; ++r) {
    if (has("daemon-b1") && has("tight"))
      daemon_vs_tight.push_back(res["daemon-b1"][size_t(r)].rps / res["tight"][size_t(r)].rps);
    if (has("daemon-b1") && has(bname))
      batched_vs_b1.push_back(res[bname][size_t(r)].rps / res["daemon-b1"][size_t(r)].rps);
  }
  js += "\n  }";
  char b[200];
  if (!daemon_vs_tight.empty()) {
    std::printf("daemon-b1 / tight: median %.3f over %d rounds (min %.3f)\n", med(daemon_vs_tight), rounds,
                *std::min_element(daemon_vs_tight.begin(), daemon_vs_tight.end()));
    std::snprintf(b, sizeof b, ",\n  \"daemon_b1_over_tight_median\": %.4f", med(daemon_vs_tight));
    js += b;
  }
  if (!batched_vs_b1.empty()) {
    std::printf("%s / daemon-b1: median %.3f over %d rounds (min %.3f)\n", bname.c_str(), med(batched_vs_b1), rounds,
                *std::min_element(batched_vs_b1.begin(), batched_vs_b1.end()));
    std::snprintf(b, sizeof b, ",\n  \"batched_over_b1_median\": %.4f", med(batched_vs_b1));
    js += b;
  }
  js += "\n}\n";
  if (!json_path.empty()) std::ofstream(json_path) << js;
  for (auto& [name, s] : servers)
    if (has(name) && s->stats().inline_runs > 0)
      std::fprintf(stderr, "bench-throughput: %s: %llu of %llu requests ran inline on the I/O thread\n", name.c_str(),
                   (unsigned long long)s->stats().inline_runs, (unsigned long long)s->stats().requests_ok);
  for (auto& [name, s] : servers) s->stop();
  return 0;
}
