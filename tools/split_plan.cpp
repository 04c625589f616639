// split-plan: where to prune, fine-tune and run a model across the device and the edge, from
// measured profiles (see include/libsplit/plan.h for the cost model).
#include <cmath>
#include <cstdio>
#include <fstream>

#include <CLI/CLI.hpp>

#include "libsplit/plan.h"

namespace {
int fail(const std::string& msg) {
  std::fprintf(stderr, "split-plan: %s\n", msg.c_str());
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  namespace plan = libsplit::plan;
  plan::Scenario s;
  std::string profiles_path, json_path;
  bool quiet = false;
  CLI::App app{"split-plan: chooses where to prune, fine-tune and infer (device, edge or split) from measured "
               "profiles; prints every placement's latency, device energy, bytes and cost, and recommends the "
               "cheapest one that meets the targets"};
  app.add_option("--profiles", profiles_path,
                 "Measured profiles (JSON, {\"models\": [...]}; benchmarks/plan_scenarios.sh writes one)")
      ->required()->check(CLI::ExistingFile);
  app.add_option("--link-mbps", s.link_mbps, "Link rate, Mbit/s")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--rtt-ms", s.rtt_ms, "Round trip of a small frame, ms")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--energy-per-bit-nj", s.energy_per_bit_nj, "Device radio energy per bit sent or received, nJ")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--edge-load", s.edge_load, "The edge's utilisation by other tenants, in [0, 1)")
      ->capture_default_str()->check(CLI::Range(0.0, 0.999999));
  app.add_option("--edge-workers", s.edge_workers, "Edge workers serving requests")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--request-rate", s.request_rate_hz, "This device's requests per second")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--inferences-per-round", s.inferences_per_round,
                 "Inferences between fine-tuning rounds (0: no fine-tuning)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--finetune-bytes", s.finetune_bytes, "Bytes of one round's fine-tuning data")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_flag("--private", s.private_data, "The fine-tuning data may not leave the device");
  app.add_option("--latency-bound-ms", s.latency_bound_ms, "Latency bound per inference (0: none)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--accuracy-floor", s.accuracy_floor, "Lowest acceptable top-1 % (negative: none)")
      ->capture_default_str()->check(CLI::Range(-1.0, 100.0));
  app.add_option("--device-compute-w", s.device_compute_w, "Device power while computing, W")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--device-idle-w", s.device_idle_w, "Device power while waiting for the edge, W")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--edge-w", s.edge_w, "Power of one busy edge worker, W")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--edge-price", s.edge_price, "Weight of an edge joule against a device joule")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--json", json_path, "Write the plan as JSON (split-client --plan reads it)");
  app.add_flag("--quiet", quiet, "Print only the recommendation");
  CLI11_PARSE(app, argc, argv);

  auto models = plan::load_profiles(profiles_path);
  if (!models.ok()) return fail(models.status().to_string());
  auto p = plan::make_plan(*models, s);
  if (!p.ok()) return fail(p.status().to_string());
  if (!quiet) {
    std::printf("%-48s %10s %12s %10s %6s %12s %7s  %s\n", "placement", "latency_ms", "device_mJ", "bytes", "edge_u",
                "cost_mJ", "top1", "feasible");
    for (const auto& e : p->options)
      std::printf("%-48s %10.2f %12.3f %10.1f %6.2f %12.3f %7.2f  %s\n", e.placement.name().c_str(), e.latency_ms,
                  e.device_energy_j * 1e3, e.bytes, e.edge_utilisation, e.cost * 1e3, e.accuracy,
                  e.feasible ? "yes" : ("no: " + e.why).c_str());
  }
  if (p->recommended < 0) {
    std::printf("recommended: none (no placement meets the targets)\n");
  } else {
    const auto& r = p->options[size_t(p->recommended)];
    std::printf("recommended: %s (cost %.3f mJ per inference, latency %.2f ms)\n", r.placement.name().c_str(),
                r.cost * 1e3, r.latency_ms);
  }
  if (!json_path.empty()) {
    std::ofstream f(json_path, std::ios::binary | std::ios::trunc);
    f << plan::plan_to_json(*p, s);
    if (!f) return fail(json_path + ": cannot write");
  }
  return p->recommended < 0 ? 2 : 0;
}
