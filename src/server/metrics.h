// The server's counters and histograms, rendered in the Prometheus text exposition format
// (version 0.0.4). Thread-safe; updates take a short lock.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "libsplit/status.h"

namespace libsplit::server {

class Metrics {
 public:
  Metrics();
  // One answered request (any status) of `model`'s `split` ("full" for the whole model).
  void request(const std::string& model, const std::string& split, StatusCode code);
  // The server-side times of one completed request, seconds.
  void timing(const std::string& model, double queue_wait_s, double tail_s);
  // One forward of the tail (or full model) over `size` requests.
  void batch(const std::string& model, size_t size);
  // A request refused without running: "queue_full", "in_flight", "deadline"; or a connection
  // refused in its TLS handshake: "tls".
  void rejected(const std::string& cause);

  struct Gauges {
    uint64_t open_connections = 0;
    uint64_t bytes_received = 0;
    uint64_t bytes_sent = 0;
    bool ready = false;
  };
  std::string render(const Gauges& g) const;

 private:
  struct Histogram {
    std::vector<uint64_t> buckets;  // cumulative is computed at render time
    uint64_t count = 0;
    double sum = 0;
  };
  static void observe(const std::vector<double>& bounds, Histogram* h, double v);
  void render_histogram(std::string* o, const char* name, const char* help, const std::vector<double>& bounds,
                        const std::map<std::string, Histogram>& hs) const;
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> requests_;
  std::map<std::string, Histogram> queue_, tail_, batch_;
  std::vector<double> batch_bounds_;
  std::map<std::string, uint64_t> rejected_;
};

}  // namespace libsplit::server
