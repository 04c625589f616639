// Deployment planning: where to prune, fine-tune and run a model across the device and the edge.
//
// A deployment serves a stream of inference requests from one device and, every
// `inferences_per_round` requests, adapts the model to new data the device collected (a
// fine-tuning round). Every option (a Placement) is costed per inference, with the round's
// one-off work spread over the round's inferences:
//
//   model      the full model, a pruned one (a bundle's local model) or a split (head + tail)
//   prune      device or edge (pruned models only): structured pruning of the full model
//   fine-tune  device or edge: a round on the data of one round; on the edge the data is first
//              uploaded (not allowed when the data is private)
//   infer      device (whole model), edge (the input offloaded to the full model) or split
//
// Models move as their weights: from where they were pruned to where they are fine-tuned, and
// from there to where they run (a split's head to the device, its tail to the edge).
//
// Per inference:
//   latency  device:  device_ms
//            edge:    (request + reply bytes) / rate + rtt + edge response (edge_ms / (1 - rho))
//            split:   head_ms + (bottleneck request + reply bytes) / rate + rtt + edge response
//                     (tail_ms / (1 - rho))
//   rho      edge utilisation = edge_load + request_rate * edge_ms / edge_workers (M/M/1 per worker;
//            the device's own requests count only when they go to the edge); rho >= 1 makes the
//            options that infer on the edge infeasible (edge_load < 1 keeps round work possible)
//   device energy = compute_w * device compute + energy_per_bit * bits sent and received
//                   + idle_w * the rest of the inference's latency (waiting for the edge, or
//                   for the CPU when the device's compute is its CPU time: device_cpu_ms)
//   edge energy   = edge_w * edge busy time
//   cost          = device energy + edge_price * edge energy / (1 - rho)
// The edge's energy is priced by its congestion: at utilisation rho a unit of work delays the
// edge's other tenants by 1 / (1 - rho), which is what a loaded edge costs its operator. Round
// work on the edge (pruning, fine-tuning) is priced the same way.
// Costs are in joules (energy-equivalent); +infinity when the edge is saturated. A placement is
// feasible when no data leaves the device while private_data is set, the edge it infers on is
// not saturated, its latency is within latency_bound_ms (when set) and its model's accuracy is
// at least accuracy_floor (when set); Estimate::why names the first of these it breaks.
//
// The profiles are measurements: inference times from split-client runs (split-client --json)
// on the device and on the edge, fine-tuning and pruning times from tools/profile_finetune.py,
// weights from the bundle's files. See split-plan --help and benchmarks/plan_scenarios.sh.
#pragma once

#include "libsplit/export.h"

#include <string>
#include <vector>

#include "libsplit/status.h"

LIBSPLIT_PUBLIC_BEGIN
namespace libsplit {
namespace plan {

enum class Site { kNone, kDevice, kEdge, kSplit };
// "none", "device", "edge", "split"
const char* site_name(Site s);

// One model as measured. A whole model (full or pruned) runs on the device or, for the full
// model, on the edge; a split runs its head on the device and its tail on the edge.
struct ModelProfile {
  std::string name;        // "full", a local model id (e.g. "pruned50") or a split id
  enum class Kind { kFull, kPruned, kSplit } kind = Kind::kFull;
  double accuracy = -1;    // top-1 % (-1 = unknown: fails any accuracy floor)
  double device_ms = 0;    // whole: one inference on the device; split: head + encode
  // The CPU time of device_ms's work (the process's, as split-client --json reports it): what
  // the device's compute energy is charged for; the rest of device_ms is waiting (a CPU quota's
  // throttling, other tenants) and charged at idle power. 0 = all of device_ms is compute.
  double device_cpu_ms = 0;
  double edge_ms = 0;      // full: one inference on the edge; split: the tail (unused for pruned)
  double request_bytes = 0;  // full: the offloaded input's request; split: the bottleneck's
  double reply_bytes = 0;    // the answer's frame
  double device_finetune_ms = 0;  // one fine-tuning round on the device / on the edge
  double edge_finetune_ms = 0;
  double device_prune_ms = 0;     // pruned: pruning it from the full model, on each side
  double edge_prune_ms = 0;
  double weight_bytes = 0;        // whole models: all weights
  double head_bytes = 0;          // splits: the head's and the tail's weights
  double tail_bytes = 0;
};

struct Scenario {
  double link_mbps = 10;          // uplink and downlink rate
  double rtt_ms = 10;             // round trip of a small frame
  double energy_per_bit_nj = 100;  // device radio energy per bit sent or received
  double edge_load = 0;           // the edge's utilisation by its other tenants, [0, 1)
  int edge_workers = 1;           // edge workers serving the tail / full model
  double request_rate_hz = 1;     // this device's inference requests per second
  double inferences_per_round = 1000;  // inferences between fine-tuning rounds; 0 = no fine-tuning
  double finetune_bytes = 0;      // the data of one round (uploaded when fine-tuned on the edge)
  bool private_data = false;      // the fine-tuning data may not leave the device
  double latency_bound_ms = 0;    // 0 = none
  double accuracy_floor = -1;     // top-1 %; < 0 = none
  double device_compute_w = 5;    // device power computing / waiting
  double device_idle_w = 1;
  double edge_w = 15;             // power of one busy edge worker
  double edge_price = 1;          // weight of edge joules against device joules
};

struct Placement {
  std::string model;          // ModelProfile::name
  Site prune = Site::kNone;   // pruned models only
  Site finetune = Site::kNone;  // kNone when inferences_per_round = 0
  Site infer = Site::kDevice;
  // e.g. "pruned50 prune@edge finetune@device infer@device"
  std::string name() const;
};

struct Estimate {
  Placement placement;
  double latency_ms = 0;        // one inference
  double device_energy_j = 0;   // per inference, round work included
  double edge_energy_j = 0;     // per inference, round work included (before pricing)
  double bytes = 0;             // per inference over the link, both directions, transfers included
  double edge_utilisation = 0;  // rho with this placement's own requests
  double cost = 0;              // per inference
  double accuracy = -1;
  bool feasible = true;
  std::string why;              // the first constraint broken, when infeasible
};

struct Plan {
  std::vector<Estimate> options;  // every placement, cheapest feasible first, infeasible last
  int recommended = -1;           // index into options, -1 = nothing feasible
};

// Checks a scenario's and the profiles' values (names the field and the value when wrong).
Status validate(const std::vector<ModelProfile>& models, const Scenario& s);
// Every placement the models allow, estimated and ranked.
Result<Plan> make_plan(const std::vector<ModelProfile>& models, const Scenario& s);
// One placement's estimate (the formulas above).
Estimate estimate(const ModelProfile& m, const Placement& p, const Scenario& s);

// Profiles from JSON: {"models": [{"name": ..., "kind": "full"|"pruned"|"split", ...the
// ModelProfile fields by the same names...}]}. `origin` names the text in errors.
Result<std::vector<ModelProfile>> parse_profiles(const std::string& json_text, const std::string& origin);
Result<std::vector<ModelProfile>> load_profiles(const std::string& path);
// A plan as JSON (the options table and "recommended"), as split-plan --json writes it.
std::string plan_to_json(const Plan& plan, const Scenario& s);
// The local model a split-plan --json file recommends running on the device: a pruned model's
// name, or "" when the recommendation is the full model, the edge or a split.
Result<std::string> read_recommended_local_model(const std::string& path);

}  // namespace plan
}  // namespace libsplit
LIBSPLIT_PUBLIC_END
