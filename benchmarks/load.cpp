// bench-load: open-loop Poisson load on split-server, from one device or from many.
// Each of --clients connections sends requests at exponentially distributed intervals (fixed
// seeds) at --rate / clients per second, so that together they form one Poisson process at
// --rate: the MLPerf "server" scenario, and the edge's other tenants in the planner's scenarios.
// A request is the input offloaded raw to the full model (--split offload, the default: the
// heaviest request a server takes) or a split's bottleneck, computed once per input through the
// bundle's head and coded with the split's codec. Up to 64 inputs are taken from an IDX file or
// a directory of images and sent in turn.
// Latency is counted from a request's scheduled arrival to its answer, so a client that falls
// behind is charged for it; requests arriving during --warmup-s are sent but not counted. An
// arrival that finds --max-in-flight requests of its client outstanding is dropped ("skipped").
// Prints (and writes with --json) one JSON object: requests sent, answered, rejected by status,
// skipped, the achieved arrival rate, end-to-end latency percentiles and the server's queue wait
// and tail time.
//   bench-load --server HOST:PORT --bundle DIR --input IDX|DIR --rate HZ [--split ID|offload]
//              [--clients K (1)] [--duration-s S (10)] [--warmup-s S (0)] [--seed N (1)]
//              [--max-in-flight N (256)] [--deadline-ms MS (10000)] [--json PATH]
#include <dirent.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "libsplit/libsplit.h"

namespace {

using Clock = std::chrono::steady_clock;
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

int usage() {
  std::fprintf(stderr,
               "usage: bench-load --server HOST:PORT --bundle DIR --input IDX|DIR --rate HZ [--split ID|offload]\n"
               "                  [--clients K (1)] [--duration-s S (10)] [--warmup-s S (0)] [--seed N (1)]\n"
               "                  [--max-in-flight N (256)] [--deadline-ms MS (10000)] [--json PATH]\n");
  return 2;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "bench-load: %s\n", msg.c_str());
  return 1;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / double(v.size());
}
double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(std::ceil(q * double(v.size())) - 1))];
}

// Up to `max` pixel tensors: the records of an IDX file, or the images of a directory (sorted).
libsplit::Result<std::vector<libsplit::Tensor>> load_inputs(const std::string& input, const libsplit::Manifest& m,
                                                            size_t max) {
  std::vector<libsplit::Tensor> out;
  const auto& shape = m.input.shape;
  if (DIR* d = ::opendir(input.c_str())) {
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      auto dot = n.rfind('.');
      std::string ext = dot == std::string::npos ? "" : n.substr(dot);
      if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".ppm" || ext == ".pgm")
        names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (size_t i = 0; i < names.size() && out.size() < max; ++i) {
      auto t = libsplit::load_image_file(input + "/" + names[i], m.input);
      if (!t.ok()) return t.status();
      out.push_back(std::move(*t));
    }
  } else {
    auto idx = libsplit::IdxFile::open(input);
    if (!idx.ok()) return idx.status();
    if (idx->record_size() != shape[1] * shape[2] * shape[3])
      return libsplit::Status(libsplit::StatusCode::kInvalidArgument,
                              input + ": records of " + std::to_string(idx->record_size()) + " bytes, the model takes " +
                                  std::to_string(shape[1] * shape[2] * shape[3]));
    for (int64_t i = 0; i < idx->count() && out.size() < max; ++i) {
      auto px = libsplit::pixels_to_tensor(idx->record(i), int(shape[2]), int(shape[3]), int(shape[1]), m.input);
      if (!px.ok()) return px.status();
      out.push_back(std::move(*px));
    }
  }
  if (out.empty()) return libsplit::Status(libsplit::StatusCode::kInvalidArgument, input + ": no inputs");
  return out;
}

struct Totals {
  uint64_t sent = 0, measured = 0, answered = 0, skipped = 0;
  std::map<std::string, uint64_t> rejected;  // status code name -> count
  std::vector<double> latency_ms, queue_ms, tail_ms;
};

}  // namespace

int main(int argc, char** argv) {
  std::string server, bundle_dir, input, json_path, split = "offload";
  double rate = 0, duration_s = 10, warmup_s = 0;
  unsigned seed = 1;
  int max_in_flight = 256, clients = 1;
  uint32_t deadline_ms = 10000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--server") server = next();
    else if (a == "--bundle") bundle_dir = next();
    else if (a == "--input") input = next();
    else if (a == "--split") split = next();
    else if (a == "--rate") rate = std::atof(next().c_str());
    else if (a == "--clients") clients = std::atoi(next().c_str());
    else if (a == "--duration-s") duration_s = std::atof(next().c_str());
    else if (a == "--warmup-s") warmup_s = std::atof(next().c_str());
    else if (a == "--seed") seed = unsigned(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--max-in-flight") max_in_flight = std::atoi(next().c_str());
    else if (a == "--deadline-ms") deadline_ms = uint32_t(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--json") json_path = next();
    else return usage();
  }
  if (server.empty() || bundle_dir.empty() || input.empty() || !(rate > 0) || !(duration_s > 0) || warmup_s < 0 ||
      max_in_flight < 1 || clients < 1 || clients > 256 || deadline_ms == 0)
    return usage();
  auto manifest = libsplit::load_manifest(bundle_dir);
  if (!manifest.ok()) return fail(manifest.status().to_string());
  const auto& m = *manifest;
  auto pixels = load_inputs(input, m, 64);
  if (!pixels.ok()) return fail(pixels.status().to_string());

  // The requests as a device would send them.
  std::vector<libsplit::EncodedTensor> inputs;
  uint16_t index = libsplit::Client::kFullModel;
  const bool offload = split == "offload";
  if (offload) {
    for (const auto& px : *pixels) {
      libsplit::EncodedTensor enc;
      if (auto st = libsplit::encode(px, {libsplit::CodecKind::kImageU8, 8}, &enc); !st.ok()) return fail(st.to_string());
      inputs.push_back(std::move(enc));
    }
  } else {
    const int s = m.find_split(split);
    if (s < 0) return fail(m.name + " has no split \"" + split + "\" (nor is it 'offload')");
    libsplit::BundleOptions bo;
    bo.load_full = false;
    auto bundle = libsplit::Bundle::open(bundle_dir, bo);
    if (!bundle.ok()) return fail(bundle.status().to_string());
    for (const auto& px : *pixels) {
      auto z = (*bundle)->run_head(size_t(s), px);
      if (!z.ok()) return fail(z.status().to_string());
      libsplit::EncodedTensor enc;
      if (auto st = libsplit::encode(*z, m.splits[size_t(s)].codec, &enc, (*bundle)->tables(size_t(s))); !st.ok())
        return fail(st.to_string());
      inputs.push_back(std::move(enc));
    }
  }

  // Declared before the clients: their destructors fail requests still in flight, whose callbacks
  // touch this state.
  std::mutex mu;
  std::condition_variable cv;
  int in_flight_total = 0;
  std::vector<int> in_flight(size_t(clients), 0);
  Totals totals;
  std::vector<std::unique_ptr<libsplit::Client>> conns;
  std::vector<uint16_t> indices;
  for (int c = 0; c < clients; ++c) {
    libsplit::ClientOptions co;
    co.server = server;
    co.model = m.name;
    co.version = m.version;
    if (!offload) co.split = split;
    co.default_deadline_ms = deadline_ms;
    auto client = libsplit::Client::connect(co);
    if (!client.ok()) return fail(client.status().to_string());
    if (!offload) {
      const int k = (*client)->find_split(split);
      if (k < 0) return fail("the server does not serve split \"" + split + "\" of " + m.name);
      index = uint16_t(k);
    }
    indices.push_back(index);
    conns.push_back(std::move(*client));
  }
  ::signal(SIGINT, on_signal);
  ::signal(SIGTERM, on_signal);

  const auto t0 = Clock::now();
  const auto from = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup_s));
  const auto end = from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration_s));
  std::vector<std::thread> arrivals;
  for (int c = 0; c < clients; ++c)
    arrivals.emplace_back([&, c] {
      std::mt19937_64 rng(uint64_t(seed) * 1000003u + uint64_t(c));
      std::exponential_distribution<double> gap(rate / clients);
      auto next = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
      uint64_t k = uint64_t(c);
      while (!g_stop && next < end) {
        std::this_thread::sleep_until(next);  // the arrival process itself, not synchronisation
        const bool measured = next >= from;
        std::lock_guard<std::mutex> lock(mu);
        if (in_flight[size_t(c)] >= max_in_flight) {
          if (measured) ++totals.skipped;  // this client is that far behind: the arrival is dropped
        } else {
          ++in_flight[size_t(c)];
          ++in_flight_total;
          ++totals.sent;
          totals.measured += measured;
          const auto scheduled = next;
          conns[size_t(c)]->infer_async(indices[size_t(c)], inputs[k++ % inputs.size()], 1, deadline_ms,
                                        [&, c, scheduled, measured](libsplit::Result<libsplit::Reply> r) {
                                          const auto done = Clock::now();
                                          std::lock_guard<std::mutex> l(mu);
                                          --in_flight[size_t(c)];
                                          --in_flight_total;
                                          if (measured) {
                                            if (r.ok()) {
                                              ++totals.answered;
                                              totals.latency_ms.push_back(
                                                  std::chrono::duration<double, std::milli>(done - scheduled).count());
                                              totals.queue_ms.push_back(r->server_queue_us / 1000.0);
                                              totals.tail_ms.push_back(r->server_tail_us / 1000.0);
                                            } else {
                                              ++totals.rejected[libsplit::status_code_name(r.status().code())];
                                            }
                                          }
                                          cv.notify_all();
                                        });
        }
        next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
      }
    });
  for (auto& t : arrivals) t.join();
  // The measured arrival window: from the end of the warm-up until the duration ended or the signal came.
  const double elapsed = std::max(1e-9, std::chrono::duration<double>(std::min(Clock::now(), end) - from).count());
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::milliseconds(deadline_ms) + std::chrono::seconds(5),
                [&] { return in_flight_total == 0; });
  }
  std::lock_guard<std::mutex> lock(mu);
  uint64_t rejected = 0;
  std::string by_code = "{";
  for (const auto& [code, n] : totals.rejected) {
    rejected += n;
    by_code += (by_code.size() > 1 ? ", \"" : "\"") + code + "\": " + std::to_string(n);
  }
  by_code += "}";
  const auto& lat = totals.latency_ms;
  char buf[2048];
  std::snprintf(buf, sizeof buf,
                "{\"split\": \"%s\", \"clients\": %d, \"rate_hz\": %.3f, \"warmup_s\": %.3f, \"duration_s\": %.3f, "
                "\"sent\": %llu, \"measured\": %llu, \"answered\": %llu, \"rejected\": %llu, \"rejected_by\": %s, "
                "\"skipped\": %llu, \"unanswered\": %llu, \"achieved_hz\": %.3f, "
                "\"latency_ms\": {\"p50\": %.4f, \"p90\": %.4f, \"p99\": %.4f, \"max\": %.4f}, "
                "\"queue_ms\": {\"mean\": %.4f, \"p50\": %.4f, \"p99\": %.4f}, "
                "\"tail_ms\": {\"mean\": %.4f, \"p50\": %.4f}}\n",
                split.c_str(), clients, rate, warmup_s, elapsed, (unsigned long long)totals.sent,
                (unsigned long long)totals.measured, (unsigned long long)totals.answered, (unsigned long long)rejected,
                by_code.c_str(), (unsigned long long)totals.skipped,
                (unsigned long long)(totals.measured - totals.answered - rejected),
                double(totals.measured + totals.skipped) / elapsed, quantile(lat, 0.5), quantile(lat, 0.9),
                quantile(lat, 0.99), lat.empty() ? 0.0 : *std::max_element(lat.begin(), lat.end()),
                mean(totals.queue_ms), quantile(totals.queue_ms, 0.5), quantile(totals.queue_ms, 0.99),
                mean(totals.tail_ms), quantile(totals.tail_ms, 0.5));
  std::fputs(buf, stdout);
  if (!json_path.empty()) {
    std::ofstream f(json_path);
    f << buf;
    if (!f) return fail(json_path + ": cannot write");
  }
  return 0;
}
