// The dynamic split selector on synthetic costs: the cost formula, the choice and its
// hysteresis, the three policies, and the link estimator tracking a link that changes; and
// which of the committed bundle's candidates a DynamicSession weighs (local models, accuracy floor).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "client/selector.h"
#include "libsplit/dynamic.h"

namespace {

using libsplit::DynamicOptions;
using libsplit::Policy;
using libsplit::dynamic::choose;
using libsplit::dynamic::Cost;
using libsplit::dynamic::evaluate;
using libsplit::dynamic::Link;
using libsplit::dynamic::LinkEstimator;

Cost local(double us) { return Cost{false, true, us, 0, 0}; }
Cost remote(double device_us, double bytes, double tail_us, bool available = true) {
  return Cost{true, available, device_us, bytes, tail_us};
}

TEST(Selector, LatencyIsHeadPlusBytesOverRatePlusRoundTripQueueAndTail) {
  DynamicOptions o;
  const Link link{8e6, 10000, 2000};  // 8 Mbit/s = 1 byte per microsecond
  EXPECT_DOUBLE_EQ(evaluate(local(30000), link, o).latency_us, 30000);
  // 5 ms head + 10,000 B at 1 B/us + 10 ms round trip + 2 ms queue + 4 ms tail.
  EXPECT_DOUBLE_EQ(evaluate(remote(5000, 10000, 4000), link, o).latency_us, 5000 + 10000 + 10000 + 2000 + 4000);
}

TEST(Selector, EnergyWeighsEachStateByItsPower) {
  DynamicOptions o;
  o.power = {4.0, 2.0, 0.5};
  const Link link{8e6, 10000, 0};
  EXPECT_NEAR(evaluate(local(30000), link, o).energy_j, 0.030 * 4.0, 1e-12);
  // compute 5 ms at 4 W, send 10 ms at 2 W, wait 10 + 4 ms at 0.5 W.
  EXPECT_NEAR(evaluate(remote(5000, 10000, 4000), link, o).energy_j, 0.005 * 4 + 0.010 * 2 + 0.014 * 0.5, 1e-12);
}

TEST(Selector, PicksTheCheapestAndFollowsTheLinkRate) {
  DynamicOptions o;
  o.hysteresis = 0;
  // local 60 ms; a split (5 ms head, 10 kB); offload (0 ms, 150 kB).
  const std::vector<Cost> c = {local(60000), remote(5000, 10000, 20000), remote(0, 150000, 20000)};
  EXPECT_EQ(choose(c, Link{1e9, 1000, 0}, o, -1), 2);   // a very fast link: offload
  EXPECT_EQ(choose(c, Link{20e6, 1000, 0}, o, -1), 1);  // 20 Mbit/s: the split (offload would be 81 ms)
  EXPECT_EQ(choose(c, Link{1e6, 1000, 0}, o, -1), 0);   // 1 Mbit/s: local (the split 106 ms)
  // A loaded server moves the choice to the device.
  EXPECT_EQ(choose(c, Link{20e6, 1000, 40000}, o, -1), 0);
}

TEST(Selector, HysteresisKeepsTheCurrentChoiceUnlessClearlyBeaten) {
  DynamicOptions o;
  o.hysteresis = 0.10;
  const Link link{8e6, 0, 0};
  // Candidate 1 is 5% cheaper than the current 0: kept; 20% cheaper: switch.
  EXPECT_EQ(choose({local(10000), remote(9500, 0, 0)}, link, o, 0), 0);
  EXPECT_EQ(choose({local(10000), remote(8000, 0, 0)}, link, o, 0), 1);
  EXPECT_EQ(choose({remote(10000, 0, 0), local(9500)}, link, o, 0), 0);
  EXPECT_EQ(choose({remote(10000, 0, 0), remote(8000, 0, 0)}, link, o, 0), 1);
  // Without a current choice, the cheapest.
  EXPECT_EQ(choose({local(10000), remote(9500, 0, 0)}, link, o, -1), 1);
  // From one local model to another (nothing to set up, only a pass with the other model in the
  // caches), a quarter of the band: 5% cheaper switches, 2% does not.
  EXPECT_EQ(choose({local(10000), local(9500)}, link, o, 0), 1);
  EXPECT_EQ(choose({local(10000), local(9800)}, link, o, 0), 0);
  // A current choice that became unavailable is left at once.
  EXPECT_EQ(choose({local(10000), remote(0, 10, 100, false)}, link, o, 1), 0);
}

TEST(Selector, UnavailableCandidatesAreNeverChosen) {
  DynamicOptions o;
  const Link link{8e6, 0, 0};
  EXPECT_EQ(choose({local(50000), remote(0, 10, 10, false)}, link, o, -1), 0);
  EXPECT_EQ(choose({remote(0, 10, 10, false)}, link, o, -1), -1);
}

TEST(Selector, BytesPolicyTakesTheFewestBytesWithinTheBound) {
  DynamicOptions o;
  o.policy = Policy::kMinBytes;
  o.latency_bound_ms = 50;
  o.hysteresis = 0;
  const Link link{8e6, 5000, 0};
  // 20 kB split: 5 + 20 + 5 + 5 = 35 ms; 2 kB split: 30 + 2 + 5 + 5 = 42 ms; local 80 ms (0 B, too slow).
  const std::vector<Cost> c = {local(80000), remote(5000, 20000, 5000), remote(30000, 2000, 5000)};
  EXPECT_EQ(choose(c, link, o, -1), 2);
  o.latency_bound_ms = 40;  // only the 20 kB split meets it
  EXPECT_EQ(choose(c, link, o, -1), 1);
  o.latency_bound_ms = 10;  // nothing does: the fastest
  EXPECT_EQ(choose(c, link, o, -1), 1);
  o.latency_bound_ms = 100;  // local meets it and sends nothing
  EXPECT_EQ(choose(c, link, o, -1), 0);
}

TEST(Selector, EnergyPolicyCanDisagreeWithLatency) {
  DynamicOptions o;
  o.hysteresis = 0;
  o.power = {5.0, 2.0, 0.1};
  const Link link{8e6, 20000, 0};
  // local: 30 ms at 5 W = 150 mJ. Remote: 1 ms head + 1 ms send + 20 ms round trip + 20 ms tail:
  // 42 ms (slower) but 5 + 2 + 4 = 11 mJ.
  const std::vector<Cost> c = {local(30000), remote(1000, 1000, 20000)};
  EXPECT_EQ(choose(c, link, o, -1), 0);
  o.policy = Policy::kMinEnergy;
  EXPECT_EQ(choose(c, link, o, -1), 1);
}

// A synthetic link: round trip `rtt` plus bytes / rate, with +-5% noise.
double timed(std::mt19937* rng, double bytes, double rate_bps, double rtt_us) {
  std::uniform_real_distribution<double> noise(0.95, 1.05);
  return (rtt_us + bytes * 8.0 / rate_bps * 1e6) * noise(*rng);
}

TEST(LinkEstimator, LearnsRoundTripAndRateAndFollowsAChange) {
  std::mt19937 rng(1);
  LinkEstimator est(0.3);
  // 50 Mbit/s, 10 ms: pings of 20 B and 8 kB requests.
  for (int i = 0; i < 20; ++i) {
    est.add(20, timed(&rng, 20, 50e6, 10000));
    est.add(8000, timed(&rng, 8000, 50e6, 10000));
  }
  EXPECT_NEAR(est.rtt_us(), 10000, 1000);
  // 8 kB at 50 Mbit/s is 1.3 ms beside a 10 ms round trip with 5% noise: within a factor of 2.
  EXPECT_GT(est.rate_bps(), 25e6);
  EXPECT_LT(est.rate_bps(), 100e6);
  // The link drops to 1 Mbit/s: within 5 requests the estimate is within a factor of 2.
  int n = 0;
  while (est.rate_bps() > 2e6 && n < 100) {
    est.add(8000, timed(&rng, 8000, 1e6, 10000));
    ++n;
  }
  EXPECT_LE(n, 5);
  for (int i = 0; i < 20; ++i) est.add(8000, timed(&rng, 8000, 1e6, 10000));
  EXPECT_NEAR(est.rate_bps(), 1e6, 0.15e6);
  // And back up, measured by larger probes.
  n = 0;
  while (est.rate_bps() < 25e6 && n < 100) {
    est.add(20, timed(&rng, 20, 50e6, 10000));
    est.add(65536, timed(&rng, 65536, 50e6, 10000));
    ++n;
  }
  EXPECT_LE(n, 8);
}

TEST(LinkEstimator, AMissedDeadlineBoundsTheRate) {
  LinkEstimator est(0.3);
  est.add(20, 1000);
  est.add(100000, 1000 + 8000);  // 100 kB in 8 ms: 100 Mbit/s
  const double before = est.rate_bps();
  est.add_lower_bound(100000, 800000);  // no answer after 0.8 s: at most 1 Mbit/s
  EXPECT_LT(est.rate_bps(), before / 2);
  est.add_lower_bound(10, 1e6);  // a tiny frame says nothing about the rate
  EXPECT_GT(est.rate_bps(), 0);
}

TEST(RecentMedian, KeepsTheTypicalTimeOfABimodalDeviceAndFollowsALastingChange) {
  libsplit::dynamic::RecentMedian m(9);
  EXPECT_EQ(m.value(), 0);
  m.add(1000);
  EXPECT_EQ(m.value(), 1000);
  m.add(3000);
  EXPECT_EQ(m.value(), 2000);  // an even count: the middle two's mean
  // Passes that fit in a quota slice (1 ms) two times in three, the others wait for the next
  // slice (4 ms): the estimate stays at the typical 1 ms (an average would sit at 2 ms).
  for (int i = 0; i < 200; ++i) {
    m.add(i % 3 == 2 ? 4000 : 1000);
    if (i >= 20) {
      EXPECT_EQ(m.value(), 1000) << i;
    }
  }
  // One stall moves nothing; a lasting change comes through within half a window.
  libsplit::dynamic::RecentMedian n(9);
  for (int i = 0; i < 9; ++i) n.add(1000);
  n.add(50000);
  EXPECT_EQ(n.value(), 1000);
  int took = 0;
  while (n.value() != 2000 && took < 20) {
    n.add(2000);
    ++took;
  }
  EXPECT_EQ(n.value(), 2000);
  EXPECT_LE(took, 4);  // with the stall: 5 of the 9 are 2 ms or more after 4
  EXPECT_EQ(n.size(), 9u);
}

// The device's wall time per CPU time: a ratio of sums over the recent passes, 1 (or a prior)
// to begin with; one early pass that met a quota's wait does not set it alone (pseudo-passes at
// the prior until four passes came), and the window forgets what it held.
TEST(WallPerCpu, RatioOfRecentSumsWithACautiousStart) {
  libsplit::dynamic::WallPerCpu w(8);
  EXPECT_EQ(w.value(), 1.0);
  w.add(5000, 0);  // the CPU clock saw nothing: ignored
  EXPECT_EQ(w.size(), 0u);
  w.add(10000, 1000);  // one pass that waited 9 ms
  EXPECT_DOUBLE_EQ(w.value(), (10000.0 + 3000) / (1000 + 3000));
  w.add(1000, 1000);
  w.add(1000, 1000);
  w.add(4000, 2000);
  EXPECT_DOUBLE_EQ(w.value(), 16000.0 / 5000);  // settled: the passes alone
  for (int i = 0; i < 8; ++i) w.add(3000, 1000);
  EXPECT_DOUBLE_EQ(w.value(), 3.0);  // the first four left the window
  EXPECT_EQ(w.size(), 8u);
  // A prior (the profiling passes' ratio) stands in for the missing passes instead of 1.
  libsplit::dynamic::WallPerCpu slow(8);
  slow.set_prior(4.0);
  EXPECT_DOUBLE_EQ(slow.value(), 4.0);
  slow.add(1000, 1000);
  EXPECT_DOUBLE_EQ(slow.value(), (1000.0 + 3 * 4000) / (1000 + 3000));
  for (int i = 0; i < 3; ++i) slow.add(1000, 1000);
  EXPECT_DOUBLE_EQ(slow.value(), 1.0);  // settled: the passes alone
  libsplit::dynamic::WallPerCpu fast(4);
  for (int i = 0; i < 4; ++i) fast.add(500, 2000);  // 4 threads' CPU within one wall interval
  EXPECT_DOUBLE_EQ(fast.value(), 0.25);
  fast.add(1, 1e9);
  EXPECT_DOUBLE_EQ(fast.value(), 0.05);  // clamped
}

// Two local models whose profiles say they cost the same, where B really takes 15% more CPU than
// A: the estimates learn the 15% from B's trials while A is in use, keep it when B becomes the
// model in use and A the one tried now and then, and keep it when the device slows down while
// B's own passes are old.
TEST(LocalModels, RankedInOneFrameAcrossSwitchesAndADeviceSlowingDown) {
  libsplit::dynamic::LocalModels m;
  const size_t a = m.add_model(1000), b = m.add_model(1000);
  EXPECT_DOUBLE_EQ(m.estimate_us(a), 1000.0);  // the profile until passes come
  double speed = 1.1;                           // real passes cost 10% more than profiled ones
  size_t in_use = a;
  auto pass = [&](size_t which) { m.add_pass(which, 1000 * speed * (which == b ? 1.15 : 1.0), which == in_use); };
  auto ratio = [&] { return m.estimate_us(b) / m.estimate_us(a); };
  for (int i = 0; i < 60; ++i) pass(i % 5 == 4 ? b : a);  // A in use, B tried one in 5
  EXPECT_NEAR(ratio(), 1.15, 0.01);
  EXPECT_NEAR(m.estimate_us(a), 1100.0, 1.0);
  in_use = b;
  for (int i = 0; i < 60; ++i) pass(i % 5 == 4 ? a : b);  // B in use, A tried
  EXPECT_NEAR(ratio(), 1.15, 0.01) << "a switch leaves the models' relation as it was";
  EXPECT_NEAR(m.estimate_us(b), 1265.0, 1.0);
  in_use = a;
  for (int i = 0; i < 60; ++i) pass(i % 5 == 4 ? b : a);  // back to A
  speed = 1.6;  // the device slows down; only A runs
  for (int i = 0; i < 9; ++i) pass(a);
  EXPECT_NEAR(m.estimate_us(a), 1600.0, 1.0);
  EXPECT_NEAR(ratio(), 1.15, 0.01) << "B's older passes do not make it look cheaper than A";
  m.add_pass(a, 0, true);  // a pass the CPU clock did not see: ignored
  EXPECT_NEAR(m.estimate_us(a), 1600.0, 1.0);
}

TEST(DynamicOptions, PolicyAndPowerProfileParse) {
  EXPECT_EQ(*libsplit::parse_policy("energy"), Policy::kMinEnergy);
  EXPECT_FALSE(libsplit::parse_policy("fastest").ok());
  auto p = libsplit::PowerProfile::parse("compute=7.5,idle=0.4");
  ASSERT_TRUE(p.ok());
  EXPECT_DOUBLE_EQ(p->compute_w, 7.5);
  EXPECT_DOUBLE_EQ(p->transmit_w, 2.0);
  EXPECT_DOUBLE_EQ(p->idle_w, 0.4);
  for (const char* bad : {"compute", "compute=x", "radio=1", "idle=-1"}) {
    auto r = libsplit::PowerProfile::parse(bad);
    EXPECT_EQ(r.status().code(), libsplit::StatusCode::kInvalidArgument) << bad;
  }
}

// The candidates a DynamicSession weighs for the committed Fashion-MNIST bundle, offline.
std::set<std::string> candidates(const libsplit::Bundle& b, const DynamicOptions& o, libsplit::Status* error = nullptr) {
  auto d = libsplit::DynamicSession::create(&b, nullptr, o);
  if (!d.ok()) {
    if (error) *error = d.status();
    return {};
  }
  std::set<std::string> names;
  for (const auto& e : (*d)->estimates()) names.insert(e.name);
  return names;
}

TEST(DynamicCandidates, LocalModelsByDefaultByNameOrNoneAndAnAccuracyFloor) {
  auto bundle = libsplit::Bundle::open(std::string(LIBSPLIT_MODELS_DIR) + "/fmnist-resnet");
  ASSERT_TRUE(bundle.ok()) << bundle.status().to_string();
  const auto& m = (*bundle)->manifest();
  ASSERT_FALSE(m.local.empty()) << "the committed bundle has pruned local models";
  DynamicOptions o;
  o.warmup_runs = 1;
  // Default: the full model, every local model, every split, both offloads.
  auto all = candidates(**bundle, o);
  EXPECT_TRUE(all.count("local") && all.count("offload") && all.count("offload-png"));
  for (const auto& l : m.local) EXPECT_TRUE(all.count(l.id)) << l.id;
  for (const auto& s : m.splits) EXPECT_TRUE(all.count(s.id)) << s.id;
  // Named: those local models only. "none": none.
  o.local_models = {m.local[0].id};
  auto named = candidates(**bundle, o);
  for (const auto& l : m.local) EXPECT_EQ(named.count(l.id), l.id == m.local[0].id ? 1u : 0u) << l.id;
  o.local_models = {"none"};
  auto none = candidates(**bundle, o);
  for (const auto& l : m.local) EXPECT_EQ(none.count(l.id), 0u) << l.id;
  EXPECT_EQ(none.size(), all.size() - m.local.size());
  o.local_models = {"pruned-nonexistent"};
  libsplit::Status st;
  EXPECT_TRUE(candidates(**bundle, o, &st).empty());
  EXPECT_EQ(st.code(), libsplit::StatusCode::kNotFound);
  EXPECT_NE(st.message().find("pruned-nonexistent"), std::string::npos) << st.message();
  // An accuracy floor halfway between the worst and the best recorded top-1 leaves out exactly
  // the candidates recorded below it (offload counts as the full model).
  o.local_models.clear();
  std::vector<std::pair<std::string, double>> recorded = {{"local", m.accuracy_full}, {"offload", m.accuracy_full}};
  for (const auto& l : m.local) recorded.push_back({l.id, l.accuracy});
  for (const auto& s : m.splits) recorded.push_back({s.id, s.accuracy_codec});
  double lo = 100, hi = 0;
  for (const auto& [name, acc] : recorded) lo = std::min(lo, acc), hi = std::max(hi, acc);
  ASSERT_LT(lo, hi);
  o.min_accuracy = (lo + hi) / 2;
  auto floored = candidates(**bundle, o);
  for (const auto& [name, acc] : recorded)
    EXPECT_EQ(floored.count(name), acc >= o.min_accuracy ? 1u : 0u) << name << " top-1 " << acc << " floor " << o.min_accuracy;
  o.min_accuracy = 100;
  EXPECT_TRUE(candidates(**bundle, o, &st).empty());
  EXPECT_EQ(st.code(), libsplit::StatusCode::kInvalidArgument);
  o.min_accuracy = 101;
  EXPECT_TRUE(candidates(**bundle, o, &st).empty());
  EXPECT_NE(st.message().find("min_accuracy"), std::string::npos) << st.message();
}

TEST(DynamicCandidates, UnloadedLocalModelsAreLeftOutUnlessNamed) {
  libsplit::BundleOptions bo;
  bo.load_local = false;
  bo.load_tails = false;
  auto bundle = libsplit::Bundle::open(std::string(LIBSPLIT_MODELS_DIR) + "/fmnist-resnet", bo);
  ASSERT_TRUE(bundle.ok()) << bundle.status().to_string();
  const auto& m = (*bundle)->manifest();
  ASSERT_FALSE(m.local.empty());
  DynamicOptions o;
  o.warmup_runs = 1;
  auto names = candidates(**bundle, o);
  EXPECT_TRUE(names.count("local"));
  for (const auto& l : m.local) EXPECT_EQ(names.count(l.id), 0u) << l.id;
  o.local_models = {m.local[0].id};  // named: it must be there
  libsplit::Status st;
  EXPECT_TRUE(candidates(**bundle, o, &st).empty());
  EXPECT_EQ(st.code(), libsplit::StatusCode::kFailedPrecondition) << st.to_string();
}

// Exploration trials are capped per request, not only per period: with every candidate stale at
// every request, a trial of a local model starts at most one request in 4 x explore_every and
// is two requests in a row (the first pass is cold, the second is what the model costs in use).
// The trials are read from Inference::exploration, not guessed from the strategies: a trial may
// show a model to be cheaper, and the choice then moves to it (the profiles of one pass each can
// rank the models wrongly on a busy host).
TEST(DynamicCandidates, ExplorationTakesAtMostOneRequestInExploreEvery) {
  auto bundle = libsplit::Bundle::open(std::string(LIBSPLIT_MODELS_DIR) + "/fmnist-resnet");
  ASSERT_TRUE(bundle.ok()) << bundle.status().to_string();
  const auto& m = (*bundle)->manifest();
  ASSERT_GE(m.local.size(), 2u);
  libsplit::Tensor pixels{m.input.shape, std::vector<float>(size_t(libsplit::Tensor::element_count(m.input.shape)), 90.f)};
  struct Request {
    std::string strategy;
    bool exploration;
  };
  // Each of 40 requests: its strategy and whether it was a trial.
  auto run = [&](uint32_t every) {
    std::vector<Request> seq;
    DynamicOptions o;
    o.warmup_runs = 1;
    o.only = {"local"};
    for (const auto& l : m.local) o.only.push_back(l.id);
    o.explore_ms = 1;        // every competitor is stale at every request
    o.explore_margin = 100;  // and close enough
    o.explore_every = every;
    auto d = libsplit::DynamicSession::create(bundle->get(), nullptr, o);
    EXPECT_TRUE(d.ok()) << d.status().to_string();
    if (!d.ok()) return seq;
    for (int i = 0; i < 40; ++i) {
      auto r = (*d)->run(pixels, 1);
      EXPECT_TRUE(r.ok()) << r.status().to_string();
      seq.push_back(r.ok() ? Request{r->strategy, r->exploration} : Request{"failed", false});
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a period of explore_ms passes
    }
    return seq;
  };
  auto show = [](const std::vector<Request>& seq) {
    std::string s;
    for (const auto& r : seq) s += (r.exploration ? "*" : "") + r.strategy + " ";
    return s;
  };
  // The trials' first requests; false when a trial is not two requests of one model (but for one
  // cut short by the end).
  auto trials = [](const std::vector<Request>& seq, std::vector<size_t>* starts) {
    starts->clear();
    for (size_t i = 0; i < seq.size();) {
      if (!seq[i].exploration) {
        ++i;
        continue;
      }
      starts->push_back(i);
      if (i + 1 == seq.size()) return true;
      if (!seq[i + 1].exploration || seq[i + 1].strategy != seq[i].strategy) return false;
      i += 2;
    }
    return true;
  };
  std::vector<size_t> starts;
  // explore_every 10: one trial in 40 requests, on the first or second.
  const auto every10 = run(10);
  EXPECT_TRUE(trials(every10, &starts)) << show(every10);
  ASSERT_EQ(starts.size(), 1u) << show(every10);
  EXPECT_LE(starts[0], 1u) << show(every10);
  // explore_every 1: one in 4, so nearly half the requests are trials; never two starts closer
  // than 4 requests.
  const auto every1 = run(1);
  EXPECT_TRUE(trials(every1, &starts)) << show(every1);
  EXPECT_GE(starts.size(), 9u) << show(every1);
  EXPECT_LE(starts.size(), 10u) << show(every1);
  for (size_t k = 1; k < starts.size(); ++k) EXPECT_GE(starts[k] - starts[k - 1], 4u) << show(every1);
}

}  // namespace
