// Dynamic split computing on the device: per request, run the whole model here, one of the
// bundle's splits, or offload the input (raw or PNG), whichever the measured costs favour.
//
// What it measures, not configures: each candidate's on-device time (profiled at creation, then
// from the requests that ran it: a local model's CPU time priced at the device's recent wall time
// per CPU time, a remote candidate's head and encode wall time), its exact request bytes, the
// link's round trip and uplink rate (from the requests' own round trips and from small and padded
// pings when the link has been idle), and the server's queue wait and tail time from every reply.
// The latency estimate of a candidate is head + encode + bytes / rate + round trip + queue + tail
// (local models: their whole forward pass); the choice keeps the current candidate unless another is
// cheaper by the hysteresis fraction (a quarter of it from one local model to another). A local
// model not in use is tried for two requests in a row, the second one timed.
//
// Nothing is lost: when the chosen remote candidate fails (server unreachable or gone, draining,
// overloaded, or no answer before the remote share of the deadline), the same input runs on the
// local full model (or, without it, the first local model) and that answer is returned, once. The Client reconnects in the background.
//
// A DynamicSession borrows a Bundle opened with its full model and heads, and optionally a Client
// (ClientOptions::start_offline for a device that starts without its edge); both must outlive
// it. With the Client's own I/O thread (the default) link probes run in the background; with a
// caller-driven Client they run inside the run() that starts them. run() may be called from
// several threads.
#pragma once

#include "libsplit/export.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "libsplit/bundle.h"
#include "libsplit/client.h"
#include "libsplit/session.h"
#include "libsplit/status.h"
#include "libsplit/tensor.h"

LIBSPLIT_PUBLIC_BEGIN
namespace libsplit {

enum class Policy {
  kMinLatency,  // default: the lowest estimated end-to-end latency
  kMinEnergy,   // the lowest estimated device energy (see PowerProfile)
  kMinBytes,    // the fewest uplink bytes among candidates within latency_bound_ms (local sends none)
};
// "latency", "energy" or "bytes".
Result<Policy> parse_policy(const std::string& name);
std::string policy_name(Policy p);

// The device's power draw in each state, in watts: computing (head, encode, local model),
// transmitting on the radio, and waiting for the edge's answer.
struct PowerProfile {
  double compute_w = 5.0;
  double transmit_w = 2.0;
  double idle_w = 1.0;
  // "compute=W,transmit=W,idle=W" (any subset, in any order).
  static Result<PowerProfile> parse(const std::string& text);
};

struct DynamicOptions {
  Policy policy = Policy::kMinLatency;
  PowerProfile power;
  double latency_bound_ms = 0;   // kMinBytes: the bound (required > 0 for that policy)
  double hysteresis = 0.10;      // switch only to a candidate at least this fraction cheaper
                                 // (between two local models: a quarter of it)
  double smoothing = 0.3;        // weight of a new measurement in the moving averages (link,
                                 // queue, tails; device times are medians of the last 9 passes)
  uint32_t probe_idle_ms = 300;  // probe the link after this long without a remote answer
  // Exploration: a candidate not run for explore_ms whose estimate is within explore_margin of the
  // chosen one is run once instead, so that close competitors' estimates stay current. 0 = never.
  // At most one request in explore_every explores: with requests far apart, a period per
  // candidate alone would let several close competitors take a large share of them. A local
  // model's trial is two requests (the first pass, with another model in the caches, is not
  // timed) and starts at most one request in 4 x explore_every.
  uint32_t explore_ms = 2000;
  double explore_margin = 0.25;
  uint32_t explore_every = 20;
  int warmup_runs = 3;           // profiling passes per candidate at creation (the fastest counts)
  uint32_t default_deadline_ms = 5000;  // used when run() is given deadline_ms = 0
  bool allow_local = true;
  bool allow_offload = true;
  // A subset of candidate names to consider ("local", "offload", "offload-png", split ids, local
  // model ids); empty = all.
  std::vector<std::string> only;
  // Local models of the bundle (its manifest's "local" array, e.g. pruned ones) to consider
  // besides the full one. Empty = every local model the Bundle loaded; named (e.g. the pruned
  // model split-plan recommends) = those only, and they must be loaded; {"none"} = none.
  std::vector<std::string> local_models;
  // Leave out candidates whose top-1 recorded in the manifest (percent) is below this: local
  // models, splits at their codec, offload as the full model. -1 = keep every candidate.
  double min_accuracy = -1;
};

// A candidate's current estimate (for logs and tests).
struct CandidateEstimate {
  std::string name;
  bool available = false;  // remote candidates: connected, served, not in an overload back-off
  double device_us = 0;    // head + encode (local candidates: the whole model)
  double bytes = 0;        // request frame bytes (0 for local)
  double tail_us = 0;      // the server's tail estimate (0 for local)
  double latency_us = 0;   // estimated end to end
  double energy_j = 0;     // estimated device energy
};

struct LinkEstimate {
  double rate_bps = 0;  // uplink
  double rtt_us = 0;    // round trip of a small frame
  double queue_us = 0;  // the server's recent queue wait
  uint64_t samples = 0;
};

class DynamicSession {
 public:
  // `sample`: one typical input (pixels), used to profile every candidate at creation; null
  // profiles with a mid-grey image. `client` may be null (local only until one is given).
  static Result<std::unique_ptr<DynamicSession>> create(const Bundle* bundle, Client* client,
                                                        const DynamicOptions& options,
                                                        const Tensor* sample = nullptr);
  ~DynamicSession();
  DynamicSession(const DynamicSession&) = delete;
  DynamicSession& operator=(const DynamicSession&) = delete;

  // Chooses, runs, measures. Inference::strategy names what answered; when a remote candidate
  // failed and the local model answered instead, Inference::fallback holds why.
  Result<Inference> run(const Tensor& pixels, int top_k = 5, uint32_t deadline_ms = 0);

  std::vector<CandidateEstimate> estimates() const;
  LinkEstimate link() const;
  // Requests answered per strategy name, and local fallbacks per cause.
  std::map<std::string, uint64_t> counts() const;
  std::map<std::string, uint64_t> fallbacks() const;

  struct Impl;

 private:
  explicit DynamicSession(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace libsplit
LIBSPLIT_PUBLIC_END
