#include "server/metrics.h"

#include <cstdio>

namespace libsplit::server {
namespace {

// Label values are model and split ids; escape what the format requires anyway.
std::string esc(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

}  // namespace

Metrics::Metrics()
    // Seconds: 50 us .. 10 s, roughly x2.5 apart (queue waits are short, tails ms to seconds).
    : bounds_{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10},
      batch_bounds_{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024} {
  for (const char* cause : {"queue_full", "in_flight", "deadline", "tls"}) rejected_[cause] = 0;
}

void Metrics::request(const std::string& model, const std::string& split, StatusCode code) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{model, split, status_code_name(code)}];
}

void Metrics::observe(const std::vector<double>& bounds, Histogram* h, double v) {
  if (h->buckets.empty()) h->buckets.assign(bounds.size(), 0);
  for (size_t i = 0; i < bounds.size(); ++i)
    if (v <= bounds[i]) {
      ++h->buckets[i];
      break;
    }
  ++h->count;
  h->sum += v;
}

void Metrics::timing(const std::string& model, double queue_wait_s, double tail_s) {
  std::lock_guard<std::mutex> lock(mu_);
  observe(bounds_, &queue_[model], queue_wait_s);
  observe(bounds_, &tail_[model], tail_s);
}

void Metrics::batch(const std::string& model, size_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  observe(batch_bounds_, &batch_[model], double(size));
}

void Metrics::render_histogram(std::string* out, const char* name, const char* help, const std::vector<double>& bounds,
                               const std::map<std::string, Histogram>& hs) const {
  std::string& o = *out;
  o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " histogram\n";
  for (const auto& [model, h] : hs) {
    uint64_t cum = 0;
    for (size_t i = 0; i < bounds.size(); ++i) {
      cum += h.buckets[i];
      o += std::string(name) + "_bucket{model=\"" + esc(model) + "\",le=\"" + num(bounds[i]) + "\"} " +
           std::to_string(cum) + "\n";
    }
    o += std::string(name) + "_bucket{model=\"" + esc(model) + "\",le=\"+Inf\"} " + std::to_string(h.count) + "\n";
    o += std::string(name) + "_sum{model=\"" + esc(model) + "\"} " + num(h.sum) + "\n";
    o += std::string(name) + "_count{model=\"" + esc(model) + "\"} " + std::to_string(h.count) + "\n";
  }
}

void Metrics::rejected(const std::string& cause) {
  std::lock_guard<std::mutex> lock(mu_);
  ++rejected_[cause];
}

std::string Metrics::render(const Gauges& g) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string o;
  o += "# HELP libsplit_requests_total Requests answered, by model, split and status.\n";
  o += "# TYPE libsplit_requests_total counter\n";
  for (const auto& [k, v] : requests_)
    o += "libsplit_requests_total{model=\"" + esc(std::get<0>(k)) + "\",split=\"" + esc(std::get<1>(k)) +
         "\",status=\"" + std::get<2>(k) + "\"} " + std::to_string(v) + "\n";
  render_histogram(&o, "libsplit_queue_wait_seconds", "Time from a whole request frame to a worker.", bounds_, queue_);
  render_histogram(&o, "libsplit_tail_seconds", "Tail (or full model) compute time, decode included.", bounds_, tail_);
  render_histogram(&o, "libsplit_batch_size", "Requests per tail (or full model) forward.", batch_bounds_, batch_);
  o += "# HELP libsplit_rejected_total Requests refused without running, by cause.\n";
  o += "# TYPE libsplit_rejected_total counter\n";
  for (const auto& [cause, v] : rejected_)
    o += "libsplit_rejected_total{cause=\"" + cause + "\"} " + std::to_string(v) + "\n";
  o += "# HELP libsplit_received_bytes_total Bytes read from device connections.\n";
  o += "# TYPE libsplit_received_bytes_total counter\n";
  o += "libsplit_received_bytes_total " + std::to_string(g.bytes_received) + "\n";
  o += "# HELP libsplit_sent_bytes_total Bytes written to device connections.\n";
  o += "# TYPE libsplit_sent_bytes_total counter\n";
  o += "libsplit_sent_bytes_total " + std::to_string(g.bytes_sent) + "\n";
  o += "# HELP libsplit_open_connections Device connections open now.\n";
  o += "# TYPE libsplit_open_connections gauge\n";
  o += "libsplit_open_connections " + std::to_string(g.open_connections) + "\n";
  o += "# HELP libsplit_ready 1 once every bundle is loaded and warmed up and the server accepts.\n";
  o += "# TYPE libsplit_ready gauge\n";
  o += std::string("libsplit_ready ") + (g.ready ? "1" : "0") + "\n";
  return o;
}

}  // namespace libsplit::server
