// The deployment planner against hand-computed costs, its constraints, and its JSON.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include "libsplit/plan.h"

namespace {

using namespace libsplit::plan;

// Round numbers: 8 Mbit/s moves one byte per microsecond; 100 nJ per bit = 0.8 uJ per byte.
Scenario base() {
  Scenario s;
  s.link_mbps = 8;
  s.rtt_ms = 10;
  s.energy_per_bit_nj = 100;
  s.edge_load = 0.5;
  s.edge_workers = 1;
  s.request_rate_hz = 10;
  s.inferences_per_round = 100;
  s.finetune_bytes = 1e6;
  s.device_compute_w = 5;
  s.device_idle_w = 1;
  s.edge_w = 10;
  s.edge_price = 1;
  return s;
}

std::vector<ModelProfile> models() {
  ModelProfile full;
  full.name = "full";
  full.kind = ModelProfile::Kind::kFull;
  full.accuracy = 93;
  full.device_ms = 20;
  full.edge_ms = 5;
  full.request_bytes = 1000;
  full.reply_bytes = 100;
  full.device_finetune_ms = 10000;
  full.edge_finetune_ms = 1000;
  full.weight_bytes = 1e6;
  ModelProfile pruned;
  pruned.name = "p";
  pruned.kind = ModelProfile::Kind::kPruned;
  pruned.accuracy = 91;
  pruned.device_ms = 10;
  pruned.device_finetune_ms = 5000;
  pruned.edge_finetune_ms = 500;
  pruned.device_prune_ms = 1000;
  pruned.edge_prune_ms = 100;
  pruned.weight_bytes = 5e5;
  ModelProfile split;
  split.name = "bf";
  split.kind = ModelProfile::Kind::kSplit;
  split.accuracy = 92;
  split.device_ms = 4;
  split.edge_ms = 3;
  split.request_bytes = 200;
  split.reply_bytes = 100;
  split.device_finetune_ms = 10000;
  split.edge_finetune_ms = 1000;
  split.head_bytes = 2e5;
  split.tail_bytes = 8e5;
  return {full, pruned, split};
}

const Estimate* find(const Plan& p, const std::string& name) {
  for (const auto& e : p.options)
    if (e.placement.name() == name) return &e;
  return nullptr;
}

TEST(Plan, EdgePipelineMatchesHandComputation) {
  auto p = make_plan(models(), base());
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  const Estimate* e = find(*p, "full finetune@edge infer@edge");
  ASSERT_NE(e, nullptr);
  // rho = 0.5 + 10 Hz * 5 ms = 0.55; response = 5 ms / 0.45.
  EXPECT_NEAR(e->edge_utilisation, 0.55, 1e-12);
  const double response_ms = 5 / 0.45;
  EXPECT_NEAR(e->latency_ms, 1.0 + 0.1 + 10 + response_ms, 1e-9);
  // Device: radio 1100 B * 0.8 uJ + idle 1 W * latency + the round's data upload 0.8 J / 100.
  const double device = 1100 * 0.8e-6 + e->latency_ms / 1000 + 0.8 / 100;
  EXPECT_NEAR(e->device_energy_j, device, 1e-12);
  // Edge: 10 W * 5 ms + fine-tuning 10 W * 1 s / 100.
  EXPECT_NEAR(e->edge_energy_j, 0.05 + 0.1, 1e-12);
  EXPECT_NEAR(e->cost, device + 0.15 / 0.45, 1e-12);
  EXPECT_NEAR(e->bytes, 1100 + 1e6 / 100, 1e-9);
  EXPECT_TRUE(e->feasible);
}

TEST(Plan, DevicePipelinesMatchHandComputation) {
  auto p = make_plan(models(), base());
  ASSERT_TRUE(p.ok());
  const Estimate* full = find(*p, "full finetune@device infer@device");
  ASSERT_NE(full, nullptr);
  EXPECT_DOUBLE_EQ(full->latency_ms, 20);
  EXPECT_NEAR(full->device_energy_j, 5 * 0.02 + 5 * 10.0 / 100, 1e-12);
  EXPECT_DOUBLE_EQ(full->edge_energy_j, 0);
  EXPECT_NEAR(full->cost, 0.6, 1e-12);
  EXPECT_DOUBLE_EQ(full->bytes, 0);
  EXPECT_NEAR(full->edge_utilisation, 0.5, 1e-12);  // its requests do not load the edge

  // Pruned on the edge (1 J of edge work, priced at 1 / (1 - 0.5)), weights down 5e5 B (0.4 J),
  // fine-tuned on the device (25 J), all over 100 inferences; each inference 5 W * 10 ms.
  const Estimate* pr = find(*p, "p prune@edge finetune@device infer@device");
  ASSERT_NE(pr, nullptr);
  EXPECT_NEAR(pr->device_energy_j, 0.05 + (0.4 + 25) / 100, 1e-12);
  EXPECT_NEAR(pr->edge_energy_j, 1.0 / 100, 1e-12);
  EXPECT_NEAR(pr->cost, 0.304 + 0.02, 1e-12);
  EXPECT_NEAR(pr->bytes, 5e5 / 100, 1e-9);
  const Estimate* local = find(*p, "p prune@device finetune@device infer@device");
  ASSERT_NE(local, nullptr);
  EXPECT_NEAR(local->cost, 0.05 + (5 + 25) / 100.0, 1e-12);
  EXPECT_DOUBLE_EQ(local->bytes, 0);
}

// With the device's CPU time measured (device_cpu_ms), compute power is charged for it alone and
// idle power for the rest of the latency (a CPU quota's waits cost no compute).
TEST(Plan, DeviceCpuTimeIsChargedAtComputePowerTheRestAtIdle) {
  auto ms = models();
  ms[1].device_cpu_ms = 4;  // the pruned model: 10 ms on the clock, 4 ms of it computing
  ms[2].device_cpu_ms = 1;  // the split's head: 4 ms on the clock, 1 ms computing
  auto p = make_plan(ms, base());
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  const Estimate* local = find(*p, "p prune@device finetune@device infer@device");
  ASSERT_NE(local, nullptr);
  EXPECT_DOUBLE_EQ(local->latency_ms, 10);  // latency is still the clock's
  // 5 W * 4 ms + 1 W * 6 ms, plus the round's (5 + 25) J / 100.
  EXPECT_NEAR(local->device_energy_j, 0.02 + 0.006 + 0.3, 1e-12);
  const Estimate* split = find(*p, "bf finetune@device infer@split");
  ASSERT_NE(split, nullptr);
  const double lat_s = (4 + 0.2 + 0.1 + 10 + 3 / 0.47) / 1000;
  EXPECT_NEAR(split->latency_ms, lat_s * 1000, 1e-9);
  // 5 W * 1 ms + radio 300 B * 0.8 uJ + 1 W * (latency - 1 ms) + the round's work.
  auto plain = make_plan(models(), base());
  ASSERT_TRUE(plain.ok());
  const Estimate* before = find(*plain, "bf finetune@device infer@split");
  ASSERT_NE(before, nullptr);
  // Against the same split without a CPU time (4 ms of compute): 3 ms moved from 5 W to 1 W.
  EXPECT_NEAR(before->device_energy_j - split->device_energy_j, 0.003 * (5 - 1), 1e-12);
  EXPECT_NEAR(split->device_energy_j - (0.005 + 300 * 0.8e-6 + (lat_s - 0.001)),
              before->device_energy_j - (0.02 + 300 * 0.8e-6 + (lat_s - 0.004)), 1e-12);
  // A CPU time above the clock's is taken as the clock's; a negative one is an error.
  ms[1].device_cpu_ms = 50;
  p = make_plan(ms, base());
  ASSERT_TRUE(p.ok());
  EXPECT_NEAR(find(*p, "p prune@device finetune@device infer@device")->device_energy_j, 0.05 + 0.3, 1e-12);
  ms[1].device_cpu_ms = -1;
  EXPECT_FALSE(make_plan(ms, base()).ok());
  auto parsed = parse_profiles(
      R"({"models": [{"name": "full", "kind": "full", "device_ms": 20, "device_cpu_ms": 7, "edge_ms": 5}]})", "p.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  EXPECT_DOUBLE_EQ(parsed->at(0).device_cpu_ms, 7);
  EXPECT_FALSE(parse_profiles(R"({"models": [{"name": "full", "kind": "full", "device_ms": 20, "device_cpu_ms": "x",
                                  "edge_ms": 5}]})", "p.json").ok());
}

TEST(Plan, SplitMovesTheHalfNotFineTunedWhereItRuns) {
  auto p = make_plan(models(), base());
  ASSERT_TRUE(p.ok());
  const Estimate* dev = find(*p, "bf finetune@device infer@split");
  const Estimate* edge = find(*p, "bf finetune@edge infer@split");
  ASSERT_TRUE(dev && edge);
  // rho = 0.5 + 10 * 3 ms = 0.53; latency = 4 + 0.2 + 0.1 + 10 + 3 / 0.47 ms.
  EXPECT_NEAR(dev->latency_ms, 4 + 0.2 + 0.1 + 10 + 3 / 0.47, 1e-9);
  EXPECT_NEAR(dev->bytes, 300 + 8e5 / 100, 1e-9);            // the tail goes up
  EXPECT_NEAR(edge->bytes, 300 + (1e6 + 2e5) / 100, 1e-9);    // data up, the head down
  const double wait_s = (dev->latency_ms - 4) / 1000;
  EXPECT_NEAR(dev->device_energy_j, 5 * 0.004 + 300 * 0.8e-6 + wait_s + (50 + 8e5 * 0.8e-6) / 100, 1e-12);
}

TEST(Plan, RecommendsTheCheapestFeasibleAndRanksInfeasibleLast) {
  auto p = make_plan(models(), base());
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->recommended, 0);
  // 2 (full: device, edge) x 2 fine-tune sites + pruned 2 x 2 + split 2.
  EXPECT_EQ(p->options.size(), 10u);
  for (size_t i = 1; i < p->options.size(); ++i) {
    if (p->options[i].feasible) {
      EXPECT_TRUE(p->options[i - 1].feasible);
      EXPECT_LE(p->options[i - 1].cost, p->options[i].cost);
    }
  }
}

TEST(Plan, PrivateDataNeverLeavesTheDevice) {
  Scenario s = base();
  s.private_data = true;
  auto p = make_plan(models(), s);
  ASSERT_TRUE(p.ok());
  ASSERT_GE(p->recommended, 0);
  EXPECT_EQ(p->options[size_t(p->recommended)].placement.name(), "p prune@edge finetune@device infer@device");
  for (const auto& e : p->options)
    if (e.placement.finetune == Site::kEdge) {
      EXPECT_FALSE(e.feasible) << e.placement.name();
      EXPECT_NE(e.why.find("private"), std::string::npos);
    }
  // And over many random scenarios: no recommended placement fine-tunes on the edge.
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  int recommended = 0;
  for (int i = 0; i < 500; ++i) {
    Scenario r = base();
    r.private_data = true;
    r.edge_load = 0.95 * u(rng);
    r.link_mbps = 0.5 + 100 * u(rng);
    r.inferences_per_round = 1 + 1e5 * u(rng);
    r.finetune_bytes = 1e8 * u(rng);
    r.edge_price = 0.01 + 2 * u(rng);
    r.request_rate_hz = 20 * u(rng);
    auto rp = make_plan(models(), r);
    ASSERT_TRUE(rp.ok());
    if (rp->recommended < 0) continue;
    ++recommended;
    EXPECT_NE(rp->options[size_t(rp->recommended)].placement.finetune, Site::kEdge);
  }
  EXPECT_GT(recommended, 400);
}

TEST(Plan, LatencyBoundAccuracyFloorAndSaturation) {
  Scenario s = base();
  s.latency_bound_ms = 15;
  auto p = make_plan(models(), s);
  ASSERT_TRUE(p.ok());
  const Estimate* full = find(*p, "full finetune@device infer@device");
  EXPECT_FALSE(full->feasible);
  EXPECT_NE(full->why.find("latency 20.00 ms > bound 15.00 ms"), std::string::npos) << full->why;
  EXPECT_TRUE(find(*p, "p prune@device finetune@device infer@device")->feasible);

  s = base();
  s.accuracy_floor = 92;
  p = make_plan(models(), s);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(find(*p, "p prune@device finetune@device infer@device")->feasible);
  EXPECT_TRUE(find(*p, "bf finetune@device infer@split")->feasible);

  s = base();
  s.edge_load = 0.99;  // + 10 Hz * 5 ms = 1.04
  p = make_plan(models(), s);
  ASSERT_TRUE(p.ok());
  const Estimate* edge = find(*p, "full finetune@device infer@edge");
  EXPECT_FALSE(edge->feasible);
  EXPECT_NE(edge->why.find("edge saturated"), std::string::npos) << edge->why;
  EXPECT_TRUE(find(*p, "full finetune@device infer@device")->feasible);
  // A free edge (price 0) that is saturated: the cost stays a number, the option infeasible.
  s.edge_price = 0;
  p = make_plan(models(), s);
  ASSERT_TRUE(p.ok());
  for (const auto& e : p->options) EXPECT_FALSE(std::isnan(e.cost)) << e.placement.name();
  EXPECT_FALSE(find(*p, "full finetune@device infer@edge")->feasible);
}

TEST(Plan, HigherEdgeLoadAndMoreRequestsFavourThePrunedDevicePipeline) {
  Scenario s = base();
  s.edge_load = 0;
  s.inferences_per_round = 10;
  auto light = make_plan(models(), s);
  ASSERT_TRUE(light.ok());
  // Frequent rounds on an idle edge: the edge does the fine-tuning.
  EXPECT_EQ(light->options[0].placement.finetune, Site::kEdge) << light->options[0].placement.name();
  s.edge_load = 0.9;
  s.inferences_per_round = 10000;
  auto heavy = make_plan(models(), s);
  ASSERT_TRUE(heavy.ok());
  EXPECT_EQ(heavy->options[0].placement.name(), "p prune@device finetune@device infer@device");
}

TEST(Plan, NoFineTuningRoundsMeansNoRoundWork) {
  Scenario s = base();
  s.inferences_per_round = 0;
  auto p = make_plan(models(), s);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->options.size(), 5u);  // full x 2, pruned x 2 prune sites, split
  const Estimate* local = find(*p, "p prune@device infer@device");
  ASSERT_NE(local, nullptr);
  EXPECT_NEAR(local->cost, 0.05, 1e-12);
}

TEST(Plan, ValidationNamesTheField) {
  Scenario s = base();
  s.edge_load = 1.0;
  auto p = make_plan(models(), s);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("edge_load"), std::string::npos);
  auto m = models();
  m[1].name = "full";
  p = make_plan(m, base());
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("name used twice"), std::string::npos);
  m = models();
  m[0].edge_ms = 0;
  p = make_plan(m, base());
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("edge_ms"), std::string::npos);
}

TEST(Plan, ProfilesJsonAndRecommendationRoundTrip) {
  auto bad = parse_profiles(R"({"models": [{"name": "x", "kind": "tiny", "device_ms": 1}]})", "p.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("p.json: models[0].kind"), std::string::npos) << bad.status().message();
  bad = parse_profiles(R"({"models": [{"name": "x", "kind": "full", "device_ms": "fast"}]})", "p.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("device_ms"), std::string::npos);
  EXPECT_FALSE(parse_profiles("[1, 2", "p.json").ok());
  bad = parse_profiles(R"({"models": [{"name": "x", "kind": null, "device_ms": 1}]})", "p.json");
  ASSERT_FALSE(bad.ok());  // an error, not an exception
  EXPECT_NE(bad.status().message().find("kind"), std::string::npos);
  bad = parse_profiles(R"({"models": [{"name": "x", "kind": "full", "device_ms": 1, "edge_ms": 1, "accuracy": 150}]})",
                       "p.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("accuracy"), std::string::npos);

  auto ok = parse_profiles(R"({"models": [
      {"name": "full", "kind": "full", "accuracy": 93, "device_ms": 20, "edge_ms": 5, "request_bytes": 1000},
      {"name": "p", "kind": "pruned", "accuracy": 91, "device_ms": 10, "device_prune_ms": 1000}]})",
                           "p.json");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[1].kind, ModelProfile::Kind::kPruned);
  EXPECT_DOUBLE_EQ((*ok)[1].device_prune_ms, 1000);

  Scenario s = base();
  s.edge_load = 0.9;
  s.inferences_per_round = 10000;
  auto p = make_plan(models(), s);
  ASSERT_TRUE(p.ok());
  const std::string path = std::string(LIBSPLIT_TEST_TMP) + "/plan_roundtrip.json";
  {
    std::ofstream f(path);
    f << plan_to_json(*p, s);
  }
  auto model = read_recommended_local_model(path);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ(*model, "p");
  s.edge_load = 0;
  s.inferences_per_round = 10;
  s.accuracy_floor = 92;  // the pruned model falls short
  p = make_plan(models(), s);
  {
    std::ofstream f(path);
    f << plan_to_json(*p, s);
  }
  model = read_recommended_local_model(path);
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(*model, "") << p->options[0].placement.name();  // no pruned model to add
  std::remove(path.c_str());
  EXPECT_FALSE(read_recommended_local_model(path).ok());
}

}  // namespace
