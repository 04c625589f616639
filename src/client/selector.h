// The cost model and the choice behind DynamicSession, free of models and sockets so that it can
// be tested on synthetic costs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "libsplit/dynamic.h"

namespace libsplit::dynamic {

// What one candidate costs, as currently estimated.
struct Cost {
  bool remote = false;
  bool available = true;
  double device_us = 0;  // on-device compute: head + encode, or the whole model
  double bytes = 0;      // uplink bytes (0 for local)
  double tail_us = 0;    // the server's compute (remote)
  // Observed / predicted time on the link for this candidate's frames (a link's burst lets small
  // frames through faster than its rate; 1 until measured).
  double link_factor = 1.0;
};

struct Link {
  double rate_bps = 10e6;
  double rtt_us = 1000;
  double queue_us = 0;
};

struct Evaluation {
  double latency_us = 0;
  double energy_j = 0;
  double score = 0;  // what the policy minimises
};

Evaluation evaluate(const Cost& c, const Link& link, const DynamicOptions& o);

// The candidate to run: the lowest score among the available ones, but `current` (or -1) is kept
// unless the best is cheaper by the hysteresis fraction (a quarter of it between two local
// models). -1 when none is available.
int choose(const std::vector<Cost>& costs, const Link& link, const DynamicOptions& o, int current,
           std::vector<Evaluation>* evaluations = nullptr);

// The median of the last `window` values added (of all of them until there are that many): a
// candidate's device time. A device whose passes take one of two times (one that fits in what is
// left of a CPU quota's slice, or one that waits for the next) keeps its typical time instead of
// swinging between them; one stall moves nothing; a lasting change comes through once it fills
// half the window.
class RecentMedian {
 public:
  explicit RecentMedian(size_t window = 9) : window_(window < 1 ? 1 : window) {}
  void add(double v);
  double value() const;  // 0 before any value
  size_t size() const { return values_.size(); }

 private:
  size_t window_;
  std::deque<double> values_;
};

// CPU-time estimates of the device's local models (the full one, pruned ones): a model's
// profiled time x its relative factor x the device's speed. The relative factor says how the
// model's passes compare with the profiles of the others (the median of its last trials; 1
// until it has three); the speed is the median of cpu / (profiled x relative factor) over the
// last passes of the model in use, whichever it was. A model not in use runs only as a trial now and then, so its own times
// are older than the current model's: were they compared as they are, a device that slowed down
// since (a busy core, a hotter board) would make every model not in use look cheaper than the
// one that is. Through the device's current speed, models keep their rank whatever their age.
// The factors stay in one frame: the model in use keeps its own (the speed follows it), a
// trial's is measured against it, and a switch of the model in use changes neither. Before any
// trial a model's factor is 1: its profile is taken as it is.
class LocalModels {
 public:
  explicit LocalModels(size_t window = 9) : window_(window), speed_(window) {}
  size_t add_model(double profiled_cpu_us);  // returns the model's index
  // A pass of `model`: of the model in use (`in_use`), or a trial of another one.
  void add_pass(size_t model, double cpu_us, bool in_use);
  double estimate_us(size_t model) const;

 private:
  double relative_factor(size_t model) const;
  struct Model {
    double profiled_us;
    RecentMedian relative;
  };
  size_t window_;
  RecentMedian speed_;
  std::vector<Model> models_;
};

// Wall time per CPU time over the device's recent local passes: sums over a window, so the
// factor is a ratio of means. A device's passes are ranked by their CPU time, which
// a CPU quota or a busy core does not change, and priced in wall time through this factor; a
// pass's own wall time under a quota is one of two values (it fits in what is left of the slice,
// or it waits for the next one) and ranks close candidates by chance.
class WallPerCpu {
 public:
  explicit WallPerCpu(size_t window = 32) : window_(window < 1 ? 1 : window) {}
  void add(double wall_us, double cpu_us);
  // What to believe before kSettled passes came (1 unless set): DynamicSession sets the ratio
  // its profiling passes showed. Believed slower than it is, a device's local models might not be
  // tried again to learn otherwise; believed faster (1 under a quota), a request or two run
  // locally where a split would have answered several times sooner.
  void set_prior(double ratio);
  double value() const;  // the prior before any pass; clamped to [0.05, 100]
  size_t size() const { return passes_.size(); }
  static constexpr size_t kSettled = 4;  // passes before the factor is theirs alone

 private:
  double prior_ = 1.0;
  size_t window_;
  std::deque<std::pair<double, double>> passes_;  // wall, CPU
};

// Round trip and uplink rate from timed frames: small frames (pings) give the round trip; frames
// of kRateFrame bytes or more give the rate from what they took beyond it (in between, a link's
// burst allowance would make the rate look higher than it is: they teach nothing here). Moving
// averages, the rate's in the log domain so that a link 50 times slower is believed within a few
// samples.
class LinkEstimator {
 public:
  explicit LinkEstimator(double smoothing = 0.3) : alpha_(smoothing) {}
  // A frame of `bytes` whose network time (round trip minus the server's time) was `us`. Returns
  // true when it updated the rate.
  bool add(double bytes, double us);
  // A frame of `bytes` that had no answer after `us`: the link is at most this fast.
  void add_lower_bound(double bytes, double us);
  double rtt_us() const { return rtt_us_; }
  double rate_bps() const { return rate_bps_; }
  uint64_t samples() const { return samples_; }

  static constexpr double kSmallFrame = 256;  // bytes: a frame this small measures the round trip
  static constexpr double kRateFrame = 4096;  // bytes: a frame this large measures the rate

 private:
  void add_rate(double bps);
  double alpha_;
  double rtt_us_ = 1000;
  double rate_bps_ = 10e6;
  bool have_rtt_ = false, have_rate_ = false;
  uint64_t samples_ = 0;
};

}  // namespace libsplit::dynamic
