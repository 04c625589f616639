#include "libsplit/dynamic.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <sstream>
#include <utility>

#include "client/selector.h"
#include "common/cpu_clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "libsplit/codec.h"
#include "libsplit/preprocess.h"
#include "protocol/frames.h"

namespace libsplit {

using Clock = std::chrono::steady_clock;
using detail::invalid_argument;

Result<Policy> parse_policy(const std::string& name) {
  if (name == "latency") return Policy::kMinLatency;
  if (name == "energy") return Policy::kMinEnergy;
  if (name == "bytes") return Policy::kMinBytes;
  return invalid_argument("unknown policy \"", name, "\": expected latency, energy or bytes");
}

std::string policy_name(Policy p) {
  switch (p) {
    case Policy::kMinLatency: return "latency";
    case Policy::kMinEnergy: return "energy";
    case Policy::kMinBytes: return "bytes";
  }
  return "?";
}

Result<PowerProfile> PowerProfile::parse(const std::string& text) {
  PowerProfile p;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) return invalid_argument("power profile item \"", item, "\" is not key=watts");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    char* end = nullptr;
    const double w = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !(w >= 0) || !std::isfinite(w))
      return invalid_argument("power profile: \"", value, "\" for ", key, " is not a number of watts >= 0");
    if (key == "compute") p.compute_w = w;
    else if (key == "transmit") p.transmit_w = w;
    else if (key == "idle") p.idle_w = w;
    else return invalid_argument("power profile: unknown key \"", key, "\" (compute, transmit, idle)");
  }
  return p;
}

namespace {

double us_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

// The whole request frame that carries `t`.
size_t request_bytes(const EncodedTensor& t) {
  protocol::Request r;
  r.tensor = t;
  return protocol::request_frame_size(r);
}

struct Candidate {
  std::string name;
  Strategy strategy;
  bool remote = false;
  // The device's part (head + encode; local: the whole model), profiled at creation (CPU time for
  // a local candidate, wall time for a remote one). `recent`: a remote candidate's last wall
  // times. A local candidate's estimate lives in DynamicState::local_models, at local_slot (every
  // local candidate has one).
  double profiled_us = 0;
  dynamic::RecentMedian recent;
  int local_slot = -1;
  double bytes = 0;      // request frame bytes
  double tail_us = 0;
  bool tail_known = false;
  double device_tail_us = 0;  // the tail's CPU time on this device (full - head), for unknown tails
  double link_factor = 1.0;   // observed / predicted link time of its frames
  std::chrono::steady_clock::time_point last_run{};
};

}  // namespace

// Estimates live here, shared with the ping callbacks that run on the client's I/O thread.
struct DynamicState {
  std::mutex mu;
  DynamicOptions opt;
  std::vector<Candidate> cands;
  dynamic::LinkEstimator link;
  dynamic::WallPerCpu wall_per_cpu;
  dynamic::LocalModels local_models;  // CPU-time estimates of the local candidates
  double queue_us = 0;
  double edge_ratio = 1.0;  // server tail time / this device's CPU time for the same layers
  bool ratio_known = false;
  int current = -1;
  uint64_t requests = 0, last_explore = 0;  // run() calls; the one that last explored
  uint64_t last_local_explore = 0;          // the one that last started a local model's trial
  // The candidate whose device work ran last (-1: none yet, or profiling). A local pass right
  // after another model's device work runs with that model in the caches, not its own.
  int last_device = -1;
  // A local candidate being explored runs twice in a row (this names it for the second request):
  // the first pass is cold and teaches nothing, the second is what the model costs when it is the
  // one in use.
  int follow_up = -1;
  Clock::time_point last_remote_answer{};
  Clock::time_point last_probe{};
  Clock::time_point last_rate_sample{};
  bool probing = false;
  Clock::time_point overload_until{};
  uint32_t overload_ms = 0;
  std::map<std::string, uint64_t> counts, fallbacks;

  explicit DynamicState(const DynamicOptions& o) : opt(o), link(o.smoothing) {}
  // Candidate c as the cost model sees it now (mu held).
  dynamic::Cost cost(const Candidate& c, bool remote_available) const {
    return {c.remote, !c.remote || remote_available, device_us(c), c.bytes,
            c.tail_known ? c.tail_us : edge_ratio * c.device_tail_us, c.link_factor};
  }
  dynamic::Link link_now() const { return {link.rate_bps(), link.rtt_us(), queue_us}; }
  double ewma(double old, double v) const { return (1 - opt.smoothing) * old + opt.smoothing * v; }
  // The device's part of candidate c in wall time. A local model: its CPU time times the
  // device's recent wall per CPU; under a CPU quota a pass either fits in what is left of the
  // slice or waits for the next one, so wall times of single passes of one model differ
  // several-fold and would rank models of close typical times by chance; their CPU times do not.
  // A remote candidate (a head and an encoding, or only an encoding): the median of its recent
  // passes' wall times, the profiled one first; a pass of a large head spans several quota
  // periods and its waits average out, and a small one is far from deciding against a link.
  double device_us(const Candidate& c) const {
    if (c.remote) return c.recent.size() > 0 ? c.recent.value() : c.profiled_us;
    return local_models.estimate_us(size_t(c.local_slot)) * wall_per_cpu.value();
  }
  // A device pass of candidate `index` (mu held).
  void observe_device(size_t index, double wall_us, double cpu_us) {
    Candidate& c = cands[index];
    const bool warm = last_device == int(index);
    last_device = int(index);
    if (c.remote) {
      if (c.recent.size() == 0 && c.profiled_us > 0) c.recent.add(c.profiled_us);
      c.recent.add(wall_us);
      return;
    }
    // Only a warm pass (after one of the same model) ranks a local model: compared cold against
    // the warm passes of the model in use, a model explored now and then would look worse than
    // it is and never be chosen.
    if (!(cpu_us > 0) || !warm) return;
    // Only a whole local pass teaches the device's factors: a remote candidate's device part can
    // be a few microseconds of encoding, where fixed costs and a quota's wait earned by other
    // work would make the device look several times slower than it is.
    local_models.add_pass(size_t(c.local_slot), cpu_us, int(index) == current);
    wall_per_cpu.add(wall_us, cpu_us);
  }
};

struct DynamicSession::Impl {
  const Bundle* bundle = nullptr;
  Client* client = nullptr;
  std::shared_ptr<DynamicState> state;
  int local_index = -1;
  // The session that runs strategies; replaced once the client first connects (the server's
  // split numbering is known only then).
  std::mutex session_mu;
  std::shared_ptr<SplitSession> session;
  bool mapped = false;

  std::shared_ptr<SplitSession> current_session();
  void maybe_probe(bool request_measures_rate);
  void record_remote(size_t c, const Inference& inf);
};

std::shared_ptr<SplitSession> DynamicSession::Impl::current_session() {
  std::lock_guard<std::mutex> lock(session_mu);
  if (!mapped && client && client->connected() && !client->splits().empty()) {
    auto s = SplitSession::create(bundle, client);
    if (s.ok()) {
      session = std::move(*s);
      mapped = true;
    } else {
      detail::logger()->warn("dynamic: the server's model does not match the bundle: {}", s.status().message());
      mapped = true;  // remote candidates stay unusable; local keeps working
    }
  }
  return session;
}

// `request_measures_rate`: the request just answered was itself large enough to measure the
// link (a padded probe would add nothing but load on a slow link).
void DynamicSession::Impl::maybe_probe(bool request_measures_rate) {
  if (request_measures_rate || !client || !client->connected()) return;
  auto st = state;
  const auto now = Clock::now();
  uint32_t padding = 0;
  {
    std::lock_guard<std::mutex> lock(st->mu);
    const auto idle = std::chrono::milliseconds(st->opt.probe_idle_ms);
    // Probe when no remote answer came for a while (the link may have come back), or when only
    // frames too small to measure the rate went out for a second (it may have changed).
    const bool quiet = now - st->last_remote_answer >= idle;
    const bool stale = now - st->last_rate_sample >= std::chrono::seconds(1);
    if (st->probing || (!quiet && !stale) || now - st->last_probe < idle) return;
    st->probing = true;
    st->last_probe = now;
    // The padded ping should take about 20 ms at the believed rate: long enough to measure, and
    // well above a link's burst allowance.
    padding = uint32_t(std::clamp(st->link.rate_bps() * 0.020 / 8.0, 8192.0, 262144.0));
  }
  Client* c = client;
  // A small ping (the round trip), then a padded one (the rate), one after the other.
  c->ping_async(0, 2000, [st, c, padding](Result<Reply> r) {
    if (!r.ok()) {
      std::lock_guard<std::mutex> lock(st->mu);
      st->probing = false;
      return;
    }
    {
      std::lock_guard<std::mutex> lock(st->mu);
      st->link.add(double(r->request_bytes), double(r->round_trip_us));
    }
    c->ping_async(padding, 5000, [st](Result<Reply> r2) {
      std::lock_guard<std::mutex> lock(st->mu);
      st->probing = false;
      if (r2.ok() && st->link.add(double(r2->request_bytes), double(r2->round_trip_us)))
        st->last_rate_sample = Clock::now();
      else if (r2.status().code() == StatusCode::kDeadlineExceeded) st->link.add_lower_bound(2048, 5e6);
    });
  });
}

void DynamicSession::Impl::record_remote(size_t c, const Inference& inf) {
  auto& s = *state;
  auto& cand = s.cands[c];
  s.observe_device(c, inf.head_us + inf.encode_us, inf.device_cpu_us);
  cand.bytes = double(inf.request_bytes);
  const double network = std::max(inf.network_us, 0.0);
  // How this candidate's frames fare against the link model, before the model learns from them.
  const double predicted = cand.bytes * 8.0 / s.link.rate_bps() * 1e6;
  if (predicted > 500) {
    const double f = std::clamp((network - s.link.rtt_us()) / predicted, 0.05, 20.0);
    cand.link_factor = s.ewma(cand.link_factor, f);
  }
  if (s.link.add(cand.bytes, network)) s.last_rate_sample = Clock::now();
  s.queue_us = s.ewma(s.queue_us, inf.server_queue_us);
  cand.tail_us = cand.tail_known ? s.ewma(cand.tail_us, inf.tail_us) : inf.tail_us;
  cand.tail_known = true;
  if (cand.device_tail_us > 0) {
    const double ratio = inf.tail_us / cand.device_tail_us;
    s.edge_ratio = s.ratio_known ? s.ewma(s.edge_ratio, ratio) : ratio;
    s.ratio_known = true;
  }
  s.last_remote_answer = Clock::now();
  s.overload_ms = 0;
}

DynamicSession::DynamicSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DynamicSession::~DynamicSession() = default;

Result<std::unique_ptr<DynamicSession>> DynamicSession::create(const Bundle* bundle, Client* client,
                                                               const DynamicOptions& o, const Tensor* sample) {
  if (!bundle) return invalid_argument("DynamicSession needs a bundle");
  if (o.policy == Policy::kMinBytes && !(o.latency_bound_ms > 0))
    return invalid_argument("policy bytes needs a latency bound > 0 ms");
  if (!(o.hysteresis >= 0 && o.hysteresis < 1)) return invalid_argument("hysteresis must be in [0, 1), got ", o.hysteresis);
  if (!(o.smoothing > 0 && o.smoothing <= 1)) return invalid_argument("smoothing must be in (0, 1], got ", o.smoothing);
  if (o.warmup_runs < 1 || o.warmup_runs > 100) return invalid_argument("warmup_runs must be in [1, 100], got ", o.warmup_runs);
  if (o.explore_every < 1) return invalid_argument("explore_every must be at least 1 (one request in N explores)");
  if (!(o.min_accuracy == -1 || (o.min_accuracy >= 0 && o.min_accuracy <= 100)))
    return invalid_argument("min_accuracy must be a top-1 percentage in [0, 100] (or -1: none), got ", o.min_accuracy);
  const auto& m = bundle->manifest();
  auto impl = std::make_unique<Impl>();
  impl->bundle = bundle;
  impl->client = client;
  impl->state = std::make_shared<DynamicState>(o);
  auto& st = *impl->state;

  Tensor pixels;
  if (sample) {
    pixels = *sample;
  } else {
    pixels.shape = m.input.shape;
    pixels.data.assign(size_t(Tensor::element_count(m.input.shape)), 128.f);
  }
  if (pixels.shape != m.input.shape)
    return invalid_argument("the profiling sample has shape ", shape_to_string(pixels.shape), ", the model takes ",
                            shape_to_string(m.input.shape));
  Tensor x = pixels;
  LIBSPLIT_RETURN_IF_ERROR(normalize_input(m.input, &x));
  // A profiled pass does what a request's device part does (SplitSession::run): the input's
  // normalization, then the model. Were it cheaper than a real pass, every candidate not yet run
  // would look better than the chosen one by that much, and the choice would wander.
  auto normalized = [&]() -> Tensor {
    Tensor t = pixels;
    (void)normalize_input(m.input, &t);  // succeeded on the same pixels above
    return t;
  };
  auto wanted_by_name = [&](const std::string& name) {
    return std::find(o.only.begin(), o.only.end(), name) != o.only.end();
  };
  auto wanted = [&](const std::string& name) { return o.only.empty() || wanted_by_name(name); };
  // A recorded top-1 (< 0: none recorded) below the floor leaves a candidate out.
  auto accurate_enough = [&](double top1) { return o.min_accuracy < 0 || top1 < 0 || top1 >= o.min_accuracy; };
  // Profiling: the cheapest pass's CPU time and the fastest pass's wall time. An estimate that is
  // too low is corrected by the candidate's first real runs (the chosen candidate learns from
  // every request), one that is too high may never be (a candidate that looks far worse than the
  // chosen one is not tried); a first pass pays for lazy set-up, and passes back to back on a
  // throttled device (a CPU quota, a hot board) can wait several times longer than one request.
  struct Profile {
    double cpu = 0, wall = 0;
  };
  auto time_runs = [&](auto&& fn) -> Result<Profile> {
    Profile best;
    for (int i = 0; i < o.warmup_runs; ++i) {
      const auto t0 = Clock::now();
      const double c0 = detail::process_cpu_us();
      LIBSPLIT_RETURN_IF_ERROR(fn());
      const double cpu = detail::process_cpu_us() - c0;
      const double wall = us_between(t0, Clock::now());
      if (i == 0 || cpu < best.cpu) best.cpu = cpu;
      if (i == 0 || wall < best.wall) best.wall = wall;
    }
    return best;
  };

  // The local model: the reference every tail estimate starts from.
  double full_us = 0;
  double local_wall = 0, local_cpu = 0;  // the local models' profiled passes
  {
    auto t = time_runs([&]() -> Status { return bundle->run_full(normalized()).status(); });
    if (!t.ok()) {
      if (o.allow_local && wanted("local"))
        return Status(t.status().code(), "dynamic: the local candidate needs the full model: " + t.status().message());
    } else {
      full_us = t->cpu;
      local_wall += t->wall;
      local_cpu += t->cpu;
      if (o.allow_local && wanted("local") && accurate_enough(m.accuracy_full)) {
        Candidate c;
        c.name = "local";
        c.profiled_us = full_us;
        c.local_slot = int(st.local_models.add_model(full_us));
        impl->local_index = int(st.cands.size());
        st.cands.push_back(c);
      }
    }
  }
  // Further local models (e.g. pruned): the named ones, else every one the bundle loaded.
  const bool none = o.local_models.size() == 1 && o.local_models[0] == "none";
  const bool named = !o.local_models.empty() && !none;
  std::vector<std::string> local_ids = none ? std::vector<std::string>{} : o.local_models;
  if (!named && !none)
    for (const auto& spec : m.local) local_ids.push_back(spec.id);
  for (const auto& name : o.only)
    if (m.find_local(name) >= 0 && std::find(local_ids.begin(), local_ids.end(), name) == local_ids.end())
      local_ids.push_back(name);
  for (const auto& id : local_ids) {
    const int l = m.find_local(id);
    if (l < 0) {
      std::string ids;
      for (const auto& spec : m.local) ids += (ids.empty() ? "" : ", ") + spec.id;
      return detail::not_found("dynamic: bundle ", m.name, " has no local model \"", id, "\" (it has: ",
                               ids.empty() ? "none" : ids, ")");
    }
    const bool explicit_name = named && std::find(o.local_models.begin(), o.local_models.end(), id) != o.local_models.end();
    // Named in local_models: a candidate even when `only` lists others (local_models is the
    // explicit request); otherwise only when `only` allows it.
    if (!o.allow_local || (!explicit_name && !wanted(id)) || !accurate_enough(m.local[size_t(l)].accuracy)) continue;
    auto t = time_runs([&]() -> Status { return bundle->run_local(size_t(l), normalized()).status(); });
    if (!t.ok()) {
      // Taken by default from the bundle but not loaded (BundleOptions::load_local): not a candidate.
      if (!explicit_name && !wanted_by_name(id) && t.status().code() == StatusCode::kFailedPrecondition) continue;
      return Status(t.status().code(), "dynamic: local model " + id + ": " + t.status().message());
    }
    Candidate c;
    c.name = id;
    c.strategy.local = l;
    c.profiled_us = t->cpu;
    c.local_slot = int(st.local_models.add_model(t->cpu));
    local_wall += t->wall;
    local_cpu += t->cpu;
    if (impl->local_index < 0) impl->local_index = int(st.cands.size());
    st.cands.push_back(c);
  }
  for (size_t i = 0; i < m.splits.size(); ++i) {
    if (!wanted(m.splits[i].id) || !accurate_enough(m.splits[i].accuracy_codec)) continue;
    Result<Tensor> z = Status();
    auto head = time_runs([&]() -> Status {
      z = bundle->run_head(i, normalized());
      return z.status();
    });
    if (!head.ok()) return Status(head.status().code(), "dynamic: split " + m.splits[i].id + ": " + head.status().message());
    EncodedTensor enc;
    auto encode_us = time_runs([&]() { return encode(*z, m.splits[i].codec, &enc, bundle->tables(i)); });
    if (!encode_us.ok()) return encode_us.status();
    Candidate c;
    c.name = m.splits[i].id;
    c.strategy.kind = Strategy::Kind::kSplit;
    c.strategy.split = i;
    c.remote = true;
    c.profiled_us = head->wall + encode_us->wall;
    c.bytes = double(request_bytes(enc));
    c.device_tail_us = std::max(full_us - head->cpu, 0.0);
    st.cands.push_back(c);
  }
  if (o.allow_offload && accurate_enough(m.accuracy_full)) {
    for (const char* codec : {"", "png"}) {
      Candidate c;
      c.strategy.kind = Strategy::Kind::kOffload;
      c.strategy.codec = codec;
      c.name = c.strategy.name(m);
      if (!wanted(c.name)) continue;
      EncodedTensor enc;
      const CodecSpec spec{*codec ? CodecKind::kImagePng : CodecKind::kImageU8, 8};
      auto encode_us = time_runs([&]() { return encode(pixels, spec, &enc); });
      if (!encode_us.ok()) continue;  // e.g. png of a 4-channel input
      c.remote = true;
      c.profiled_us = encode_us->wall;
      c.bytes = double(request_bytes(enc));
      c.device_tail_us = full_us;
      st.cands.push_back(c);
    }
  }
  if (st.cands.empty())
    return invalid_argument("dynamic: no candidate left (check the candidate subset, the accuracy floor and the bundle)");

  // The device's wall per CPU as profiling saw it, until real local passes tell: under a CPU
  // quota a long model's passes wait for most of each period (wall about 4 x CPU at a quarter of a
  // core); believed 1, the first requests would run such a model locally where a split answers
  // in a third of the time.
  if (local_cpu > 0) st.wall_per_cpu.set_prior(local_wall / local_cpu);
  for (auto& c : st.cands) c.last_run = Clock::now();
  auto session = SplitSession::create(bundle, nullptr);
  if (!session.ok()) return session.status();
  impl->session = std::move(*session);
  auto ds = std::unique_ptr<DynamicSession>(new DynamicSession(std::move(impl)));

  // With the server reachable: time the link and every remote candidate once.
  auto& im = *ds->impl_;
  auto live = im.current_session();
  if (client && client->connected() && im.mapped) {
    for (int i = 0; i < 3; ++i) {
      auto r = client->ping(0, 2000);
      if (r.ok()) st.link.add(double(r->request_bytes), double(r->round_trip_us));
    }
    auto r = client->ping(16384, 5000);
    if (r.ok() && st.link.add(double(r->request_bytes), double(r->round_trip_us))) st.last_rate_sample = Clock::now();
    for (size_t c = 0; c < st.cands.size(); ++c) {
      if (!st.cands[c].remote) continue;
      // Twice: a server's first passes through a model can be slow (TorchScript profiles them).
      for (int pass = 0; pass < 2; ++pass) {
        auto inf = live->run(pixels, st.cands[c].strategy, 1, o.default_deadline_ms);
        if (!inf.ok()) break;
        const auto seen = st.cands[c].recent;
        st.cands[c].tail_known = false;  // the last pass's tail, not an average with the first
        im.record_remote(c, *inf);
        st.cands[c].recent = seen;  // the profiled time, not these first requests'
      }
    }
    st.last_probe = Clock::now();
  }
  return ds;
}

Result<Inference> DynamicSession::run(const Tensor& pixels, int top_k, uint32_t deadline_ms) {
  auto& im = *impl_;
  auto& st = *im.state;
  const auto t0 = Clock::now();
  const uint32_t budget_ms = deadline_ms ? deadline_ms : st.opt.default_deadline_ms;
  auto session = im.current_session();
  const bool connected = im.client && im.client->connected() && im.mapped;
  int pick;
  double local_us = 0, remote_estimate_us = 0;
  bool measures_rate = false;
  std::string risk;
  bool exploring = false;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    const bool overloaded = Clock::now() < st.overload_until;
    std::vector<dynamic::Cost> costs;
    for (const auto& c : st.cands) costs.push_back(st.cost(c, connected && !overloaded));
    const dynamic::Link link = st.link_now();
    std::vector<dynamic::Evaluation> ev;
    pick = dynamic::choose(costs, link, st.opt, st.current, &ev);
    if (pick < 0) return detail::unavailable("dynamic: no candidate is available (server unreachable and no local model)");
    if (im.local_index >= 0) local_us = st.device_us(st.cands[size_t(im.local_index)]);
    // A deadline at risk: a remote estimate beyond the budget runs locally from the start.
    if (st.cands[size_t(pick)].remote && im.local_index >= 0 && ev[size_t(pick)].latency_us > budget_ms * 1000.0 &&
        local_us < ev[size_t(pick)].latency_us) {
      pick = im.local_index;
      risk = "deadline at risk";
    }
    st.current = pick;
    // Explore the stalest close competitor now and then (not when the deadline is at risk).
    ++st.requests;
    const bool may_explore = st.last_explore == 0 || st.requests - st.last_explore >= st.opt.explore_every;
    const int follow_up = std::exchange(st.follow_up, -1);
    if (risk.empty() && follow_up >= 0) {
      pick = follow_up;  // the explored local model's warm pass
      exploring = true;
    } else if (risk.empty() && st.opt.explore_ms > 0 && may_explore) {
      const auto now = Clock::now();
      const auto stale = std::chrono::milliseconds(st.opt.explore_ms);
      int explore = -1;
      for (size_t i = 0; i < st.cands.size(); ++i) {
        if (int(i) == pick || !costs[i].available || now - st.cands[i].last_run < stale) continue;
        // A local model's trial (two requests) while another local model is in use, a quarter
        // as often: its rank against that one follows the device's speed without a trial
        // (dynamic::LocalModels).
        if (!costs[i].remote && !costs[size_t(pick)].remote && st.last_local_explore != 0 &&
            st.requests - st.last_local_explore < 4ull * st.opt.explore_every)
          continue;
        if (ev[i].latency_us > (1 + st.opt.explore_margin) * ev[size_t(pick)].latency_us) continue;
        if (explore < 0 || st.cands[i].last_run < st.cands[size_t(explore)].last_run) explore = int(i);
      }
      if (explore >= 0) {
        pick = explore;
        exploring = true;
        st.last_explore = st.requests;
        st.cands[size_t(pick)].last_run = now;  // one exploration per candidate and period
        if (!st.cands[size_t(pick)].remote) {
          st.follow_up = pick;
          st.last_local_explore = st.requests;
        }
      }
    }
    st.cands[size_t(pick)].last_run = Clock::now();
    remote_estimate_us = ev[size_t(pick)].latency_us;
    measures_rate = st.cands[size_t(pick)].remote && st.cands[size_t(pick)].bytes >= dynamic::LinkEstimator::kRateFrame;
    if (detail::logger()->should_log(spdlog::level::debug)) {
      std::string line;
      for (size_t i = 0; i < ev.size(); ++i)
        line += fmt::format(" {}={:.1f}ms{}", st.cands[i].name, ev[i].latency_us / 1000, costs[i].available ? "" : "(na)");
      detail::logger()->debug("dynamic: link {:.2f} Mbit/s rtt {:.2f} ms queue {:.2f} ms;{} -> {}{}",
                              link.rate_bps / 1e6, link.rtt_us / 1000, link.queue_us / 1000, line,
                              st.cands[size_t(pick)].name, risk.empty() ? "" : " (" + risk + ")");
    }
  }
  // A probe goes out once this request is answered, not ahead of it: its frames and their replies
  // would compete with the request for the link and, on a device short of CPU, for the processor
  // (under a CPU quota a local pass paid for the probe's I/O in throttled periods).
  struct ProbeAfter {
    Impl& im;
    bool measures_rate;
    ~ProbeAfter() { im.maybe_probe(measures_rate); }
  } probe_after{im, measures_rate};
  const auto& cand = st.cands[size_t(pick)];  // the vector never changes size after create()
  if (!cand.remote) {
    auto inf = session->run(pixels, cand.strategy, top_k);
    if (!inf.ok()) return inf.status();
    std::lock_guard<std::mutex> lock(st.mu);
    st.observe_device(size_t(pick), inf->head_us, inf->device_cpu_us);
    inf->fallback = risk;
    inf->exploration = exploring;
    ++st.counts[inf->strategy];
    if (!risk.empty()) ++st.fallbacks[risk];
    return inf;
  }
  // Leave the local model time to answer if the remote one does not, but give the remote at
  // least three times its estimate (or the whole budget): a local model slower than the
  // deadline cannot rescue it, and a remote that takes three times its estimate is in trouble.
  uint32_t remote_ms = budget_ms;
  if (im.local_index >= 0) {
    const double reserve_ms = 1.5 * local_us / 1000.0 + 1.0;
    const double floor_ms = std::min<double>(budget_ms, 3.0 * remote_estimate_us / 1000.0 + 1.0);
    remote_ms = uint32_t(std::max(floor_ms, budget_ms - reserve_ms));
  }
  auto inf = session->run(pixels, cand.strategy, top_k, remote_ms);
  if (inf.ok()) {
    std::lock_guard<std::mutex> lock(st.mu);
    im.record_remote(size_t(pick), *inf);
    inf->exploration = exploring;
    ++st.counts[inf->strategy];
    return inf;
  }
  const Status why = inf.status();
  {
    std::lock_guard<std::mutex> lock(st.mu);
    switch (why.code()) {
      case StatusCode::kResourceExhausted:
        // Overloaded: stay away for a while, doubling while it lasts.
        st.overload_ms = st.overload_ms ? std::min(st.overload_ms * 2, 5000u) : 100u;
        st.overload_until = Clock::now() + std::chrono::milliseconds(st.overload_ms);
        break;
      case StatusCode::kDeadlineExceeded:
        st.link.add_lower_bound(st.cands[size_t(pick)].bytes, us_between(t0, Clock::now()));
        break;
      default:
        break;
    }
  }
  if (im.local_index < 0) return why;
  const std::string reason = std::string(status_code_name(why.code()));
  detail::logger()->info("dynamic: {} failed ({}); answering locally", cand.name, why.message());
  auto local = session->run(pixels, st.cands[size_t(im.local_index)].strategy, top_k);
  if (!local.ok()) return local.status();
  local->total_us = us_between(t0, Clock::now());
  local->fallback = reason;
  local->exploration = exploring;  // the trial was this request's, whatever answered
  std::lock_guard<std::mutex> lock(st.mu);
  st.current = im.local_index;
  ++st.counts[local->strategy];
  ++st.fallbacks[reason];
  return local;
}

std::vector<CandidateEstimate> DynamicSession::estimates() const {
  auto& im = *impl_;
  auto& st = *im.state;
  const bool connected = im.client && im.client->connected() && im.mapped;
  std::lock_guard<std::mutex> lock(st.mu);
  const dynamic::Link link = st.link_now();
  std::vector<CandidateEstimate> out;
  for (const auto& c : st.cands) {
    const dynamic::Cost k = st.cost(c, connected);
    const auto e = dynamic::evaluate(k, link, st.opt);
    out.push_back({c.name, k.available, k.device_us, c.remote ? k.bytes : 0.0, c.remote ? k.tail_us : 0.0,
                   e.latency_us, e.energy_j});
  }
  return out;
}

LinkEstimate DynamicSession::link() const {
  auto& st = *impl_->state;
  std::lock_guard<std::mutex> lock(st.mu);
  return {st.link.rate_bps(), st.link.rtt_us(), st.queue_us, st.link.samples()};
}

std::map<std::string, uint64_t> DynamicSession::counts() const {
  std::lock_guard<std::mutex> lock(impl_->state->mu);
  return impl_->state->counts;
}

std::map<std::string, uint64_t> DynamicSession::fallbacks() const {
  std::lock_guard<std::mutex> lock(impl_->state->mu);
  return impl_->state->fallbacks;
}

}  // namespace libsplit
