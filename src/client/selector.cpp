#include "client/selector.h"

#include <algorithm>
#include <cmath>

namespace libsplit::dynamic {

void RecentMedian::add(double v) {
  values_.push_back(v);
  if (values_.size() > window_) values_.pop_front();
}

double RecentMedian::value() const {
  if (values_.empty()) return 0;
  std::vector<double> v(values_.begin(), values_.end());
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + long(mid), v.end());
  if (v.size() % 2) return v[mid];
  const double upper = v[mid];
  return (*std::max_element(v.begin(), v.begin() + long(mid)) + upper) / 2;
}

size_t LocalModels::add_model(double profiled_cpu_us) {
  models_.push_back({profiled_cpu_us, RecentMedian(window_)});
  return models_.size() - 1;
}

double LocalModels::relative_factor(size_t model) const {
  RecentMedian own = models_.at(model).relative;
  if (own.size() < 3) own.add(1.0);
  return own.value();
}

double LocalModels::estimate_us(size_t model) const {
  return models_.at(model).profiled_us * relative_factor(model) * (speed_.size() ? speed_.value() : 1.0);
}

void LocalModels::add_pass(size_t model, double cpu_us, bool in_use) {
  auto& m = models_.at(model);
  if (!(cpu_us > 0) || !(m.profiled_us > 0)) return;
  const double q = cpu_us / m.profiled_us;
  // A pass of the model in use tells the device's speed (its factor held), a trial tells the
  // tried model's factor against that speed; were both learnt from one pass, a device slowing
  // down would be taken in part for the model growing slower, and counted twice.
  if (in_use || speed_.size() == 0)
    speed_.add(q / relative_factor(model));
  else
    m.relative.add(q / speed_.value());
}

void WallPerCpu::add(double wall_us, double cpu_us) {
  if (!(wall_us >= 0) || !(cpu_us > 0)) return;  // a pass the CPU clock did not see says nothing
  passes_.emplace_back(wall_us, cpu_us);
  if (passes_.size() > window_) passes_.pop_front();
}

void WallPerCpu::set_prior(double ratio) {
  if (ratio > 0) prior_ = std::clamp(ratio, 0.05, 100.0);
}

double WallPerCpu::value() const {
  double wall = 0, cpu = 0;
  for (const auto& [w, c] : passes_) {
    wall += w;
    cpu += c;
  }
  if (!(cpu > 0)) return prior_;
  // Until kSettled passes came, pseudo-passes at the prior make up the difference: one pass that
  // met a quota's wait would otherwise price every local candidate at several times its cost.
  const double missing = passes_.size() < kSettled ? double(kSettled - passes_.size()) : 0.0;
  const double pseudo_cpu = missing * cpu / double(passes_.size());
  return std::clamp((wall + pseudo_cpu * prior_) / (cpu + pseudo_cpu), 0.05, 100.0);
}

Evaluation evaluate(const Cost& c, const Link& link, const DynamicOptions& o) {
  Evaluation e;
  const auto& p = o.power;
  if (!c.remote) {
    e.latency_us = c.device_us;
    e.energy_j = c.device_us * 1e-6 * p.compute_w;
  } else {
    const double send_us = link.rate_bps > 0 ? c.bytes * 8.0 / link.rate_bps * 1e6 * c.link_factor : 0.0;
    const double wait_us = link.rtt_us + link.queue_us + c.tail_us;
    e.latency_us = c.device_us + send_us + wait_us;
    e.energy_j = (c.device_us * p.compute_w + send_us * p.transmit_w + wait_us * p.idle_w) * 1e-6;
  }
  switch (o.policy) {
    case Policy::kMinLatency: e.score = e.latency_us; break;
    case Policy::kMinEnergy: e.score = e.energy_j; break;
    case Policy::kMinBytes:
      // Within the bound: fewer bytes wins (latency breaks ties); outside it, every candidate ranks
      // after all those within, by latency.
      e.score = e.latency_us <= o.latency_bound_ms * 1000.0 ? (c.remote ? c.bytes : 0.0) + e.latency_us * 1e-9
                                                             : 1e12 + e.latency_us;
      break;
  }
  return e;
}

int choose(const std::vector<Cost>& costs, const Link& link, const DynamicOptions& o, int current,
           std::vector<Evaluation>* evaluations) {
  std::vector<Evaluation> ev(costs.size());
  int best = -1;
  for (size_t i = 0; i < costs.size(); ++i) {
    ev[i] = evaluate(costs[i], link, o);
    if (costs[i].available && (best < 0 || ev[i].score < ev[size_t(best)].score)) best = int(i);
  }
  int pick = best;
  if (best >= 0 && current >= 0 && size_t(current) < costs.size() && costs[size_t(current)].available &&
      current != best) {
    const double cur = ev[size_t(current)].score, b = ev[size_t(best)].score;
    // Bytes scores compare within a band; a jump across the bound always switches.
    const bool crosses = o.policy == Policy::kMinBytes && (cur >= 1e12) != (b >= 1e12);
    // Between two local models a quarter of the band: switching sets nothing up (no connection,
    // no server's first passes), it costs one pass with the other model in the caches, and two
    // pruned models can differ by less than the band while their wall times under a CPU quota
    // differ far more (one fits in a quota's slice, the other waits for the next).
    const bool both_local = !costs[size_t(current)].remote && !costs[size_t(best)].remote;
    const double band = both_local ? o.hysteresis / 4 : o.hysteresis;
    if (!crosses && b > cur * (1.0 - band)) pick = current;
  }
  if (evaluations) *evaluations = std::move(ev);
  return pick;
}

void LinkEstimator::add_rate(double bps) {
  bps = std::clamp(bps, 1e3, 1e11);
  if (!have_rate_) {
    rate_bps_ = bps;
    have_rate_ = true;
    return;
  }
  rate_bps_ = std::exp((1 - alpha_) * std::log(rate_bps_) + alpha_ * std::log(bps));
}

bool LinkEstimator::add(double bytes, double us) {
  if (!(us >= 0) || !(bytes >= 0)) return false;
  ++samples_;
  auto add_rtt = [&](double rtt) {
    rtt_us_ = have_rtt_ ? (1 - alpha_) * rtt_us_ + alpha_ * rtt : rtt;
    have_rtt_ = true;
  };
  if (bytes <= kSmallFrame) {
    // A small frame: the round trip itself (less its own time on the link, once the rate is known).
    add_rtt(std::max(us - (have_rate_ ? bytes * 8.0 / rate_bps_ * 1e6 : 0.0), 0.0));
    return false;
  }
  if (bytes < kRateFrame) return false;
  // What the frame took beyond the round trip is its time on the link; below a tenth of the
  // total it is noise, and says only that the link is at least that fast.
  const double floor_bps = bytes * 8.0 / (0.1 * us) * 1e6;
  if (us <= rtt_us_) {
    // Faster than the round trip we believed: both were overestimated.
    add_rtt(us);
    add_rate(have_rate_ ? std::max(rate_bps_, floor_bps) : floor_bps);
    return true;
  }
  add_rate(std::min(bytes * 8.0 / (us - rtt_us_) * 1e6, floor_bps));
  return true;
}

void LinkEstimator::add_lower_bound(double bytes, double us) {
  if (!(us > 0) || bytes <= kSmallFrame) return;
  ++samples_;
  const double bound = bytes * 8.0 / us * 1e6;
  if (bound < rate_bps_) add_rate(bound);
}

}  // namespace libsplit::dynamic
