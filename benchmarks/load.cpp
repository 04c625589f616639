// bench-load: open-loop Poisson load on split-server, as the edge's other tenants would make it.
// Sends each input of an IDX file (raw pixels, to the full model: the heaviest request a server
// takes) at exponentially distributed intervals (fixed seed) over one connection, for a duration
// or until SIGINT/SIGTERM, then prints a JSON summary: requests sent, answered, rejected, the
// achieved arrival rate (sent over the arrival window), and the server's queue wait and tail time (mean and p50, ms).
//   bench-load --server HOST:PORT --bundle DIR --input IDX --rate HZ [--duration-s S (10)]
//              [--seed N (1)] [--max-in-flight N (256)] [--json PATH]
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "libsplit/libsplit.h"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

int usage() {
  std::fprintf(stderr,
               "usage: bench-load --server HOST:PORT --bundle DIR --input IDX --rate HZ [--duration-s S (10)]\n"
               "                  [--seed N (1)] [--max-in-flight N (256)] [--json PATH]\n");
  return 2;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / double(v.size());
}
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + long(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string server, bundle_dir, input, json_path;
  double rate = 0, duration_s = 10;
  unsigned seed = 1;
  int max_in_flight = 256;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--server") server = next();
    else if (a == "--bundle") bundle_dir = next();
    else if (a == "--input") input = next();
    else if (a == "--rate") rate = std::atof(next().c_str());
    else if (a == "--duration-s") duration_s = std::atof(next().c_str());
    else if (a == "--seed") seed = unsigned(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--max-in-flight") max_in_flight = std::atoi(next().c_str());
    else if (a == "--json") json_path = next();
    else return usage();
  }
  if (server.empty() || bundle_dir.empty() || input.empty() || !(rate > 0) || !(duration_s > 0) || max_in_flight < 1)
    return usage();
  auto manifest = libsplit::load_manifest(bundle_dir);
  if (!manifest.ok()) return std::fprintf(stderr, "bench-load: %s\n", manifest.status().to_string().c_str()), 1;
  auto idx = libsplit::IdxFile::open(input);
  if (!idx.ok()) return std::fprintf(stderr, "bench-load: %s\n", idx.status().to_string().c_str()), 1;
  const auto& shape = manifest->input.shape;
  if (idx->record_size() != shape[1] * shape[2] * shape[3])
    return std::fprintf(stderr, "bench-load: %s: records of %lld bytes, the model takes %lld\n", input.c_str(),
                        (long long)idx->record_size(), (long long)(shape[1] * shape[2] * shape[3])), 1;
  std::vector<libsplit::EncodedTensor> inputs;
  for (int64_t i = 0; i < std::min<int64_t>(idx->count(), 1000); ++i) {
    auto px = libsplit::pixels_to_tensor(idx->record(i), int(shape[2]), int(shape[3]), int(shape[1]), manifest->input);
    if (!px.ok()) return std::fprintf(stderr, "bench-load: %s\n", px.status().to_string().c_str()), 1;
    libsplit::EncodedTensor enc;
    auto st = libsplit::encode(*px, {libsplit::CodecKind::kImageU8, 8}, &enc);
    if (!st.ok()) return std::fprintf(stderr, "bench-load: %s\n", st.to_string().c_str()), 1;
    inputs.push_back(std::move(enc));
  }
  // Declared before the client: its destructor fails requests still in flight, whose callbacks
  // touch this state.
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  uint64_t sent = 0, answered = 0, rejected = 0, skipped = 0;
  std::vector<double> queue_ms, tail_ms;
  if (inputs.empty()) return std::fprintf(stderr, "bench-load: %s: no records\n", input.c_str()), 1;
  libsplit::ClientOptions co;
  co.server = server;
  co.model = manifest->name;
  co.version = manifest->version;
  auto client = libsplit::Client::connect(co);
  if (!client.ok()) return std::fprintf(stderr, "bench-load: %s\n", client.status().to_string().c_str()), 1;
  ::signal(SIGINT, on_signal);
  ::signal(SIGTERM, on_signal);

  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate);
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration_s));
  auto next = t0;
  while (!g_stop && next < end) {
    std::this_thread::sleep_until(next);  // the arrival process itself, not synchronisation
    {
      std::lock_guard<std::mutex> lock(mu);
      if (in_flight >= max_in_flight) {
        ++skipped;  // the server is this far behind: an arrival that finds the window full is dropped
      } else {
        ++in_flight;
        ++sent;
        (*client)->infer_async(libsplit::Client::kFullModel, inputs[sent % inputs.size()], 1, 10000,
                               [&](libsplit::Result<libsplit::Reply> r) {
                                 std::lock_guard<std::mutex> l(mu);
                                 --in_flight;
                                 if (r.ok()) {
                                   ++answered;
                                   queue_ms.push_back(r->server_queue_us / 1000.0);
                                   tail_ms.push_back(r->server_tail_us / 1000.0);
                                 } else {
                                   ++rejected;
                                 }
                                 cv.notify_all();
                               });
      }
    }
    next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
  }
  // The arrival window: until the duration ended or the signal came.
  const double elapsed = std::chrono::duration<double>(std::min(Clock::now(), end) - t0).count();
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(15), [&] { return in_flight == 0; });
  }
  std::lock_guard<std::mutex> lock(mu);
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "{\"rate_hz\": %.3f, \"duration_s\": %.3f, \"sent\": %llu, \"answered\": %llu, \"rejected\": %llu, "
                "\"skipped\": %llu, \"achieved_hz\": %.3f, \"queue_ms\": {\"mean\": %.4f, \"p50\": %.4f}, "
                "\"tail_ms\": {\"mean\": %.4f, \"p50\": %.4f}}\n",
                rate, elapsed, (unsigned long long)sent, (unsigned long long)answered, (unsigned long long)rejected,
                (unsigned long long)skipped, double(sent) / elapsed, mean(queue_ms), median(queue_ms), mean(tail_ms),
                median(tail_ms));
  std::fputs(buf, stdout);
  if (!json_path.empty()) {
    std::ofstream f(json_path);
    f << buf;
    if (!f) return std::fprintf(stderr, "bench-load: %s: cannot write\n", json_path.c_str()), 1;
  }
  return 0;
}
