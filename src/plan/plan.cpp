#include "libsplit/plan.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/errors.h"

namespace libsplit {
namespace plan {

using detail::invalid_argument;
using json = nlohmann::json;

const char* site_name(Site s) {
  switch (s) {
    case Site::kNone: return "none";
    case Site::kDevice: return "device";
    case Site::kEdge: return "edge";
    case Site::kSplit: return "split";
  }
  return "?";
}

std::string Placement::name() const {
  std::string n = model;
  if (prune != Site::kNone) n += std::string(" prune@") + site_name(prune);
  if (finetune != Site::kNone) n += std::string(" finetune@") + site_name(finetune);
  n += std::string(" infer@") + site_name(infer);
  return n;
}

namespace {

bool finite_nonneg(double v) { return std::isfinite(v) && v >= 0; }

const char* kind_name(ModelProfile::Kind k) {
  switch (k) {
    case ModelProfile::Kind::kFull: return "full";
    case ModelProfile::Kind::kPruned: return "pruned";
    case ModelProfile::Kind::kSplit: return "split";
  }
  return "?";
}

// Seconds to move `bytes` over the link (one direction, no round trip).
double transfer_s(double bytes, const Scenario& s) { return bytes * 8.0 / (s.link_mbps * 1e6); }
double radio_j(double bytes, const Scenario& s) { return bytes * 8.0 * s.energy_per_bit_nj * 1e-9; }

}  // namespace

Status validate(const std::vector<ModelProfile>& models, const Scenario& s) {
  if (!(s.link_mbps > 0) || !std::isfinite(s.link_mbps)) return invalid_argument("scenario: link_mbps must be > 0, got ", s.link_mbps);
  if (!finite_nonneg(s.rtt_ms)) return invalid_argument("scenario: rtt_ms must be >= 0, got ", s.rtt_ms);
  if (!finite_nonneg(s.energy_per_bit_nj)) return invalid_argument("scenario: energy_per_bit_nj must be >= 0, got ", s.energy_per_bit_nj);
  if (!(s.edge_load >= 0 && s.edge_load < 1)) return invalid_argument("scenario: edge_load must be in [0, 1), got ", s.edge_load);
  if (s.edge_workers < 1) return invalid_argument("scenario: edge_workers must be >= 1, got ", s.edge_workers);
  if (!finite_nonneg(s.request_rate_hz)) return invalid_argument("scenario: request_rate_hz must be >= 0, got ", s.request_rate_hz);
  if (!finite_nonneg(s.inferences_per_round))
    return invalid_argument("scenario: inferences_per_round must be >= 0, got ", s.inferences_per_round);
  if (!finite_nonneg(s.finetune_bytes)) return invalid_argument("scenario: finetune_bytes must be >= 0, got ", s.finetune_bytes);
  if (!finite_nonneg(s.latency_bound_ms)) return invalid_argument("scenario: latency_bound_ms must be >= 0, got ", s.latency_bound_ms);
  if (!std::isfinite(s.accuracy_floor) || s.accuracy_floor > 100)
    return invalid_argument("scenario: accuracy_floor must be <= 100, got ", s.accuracy_floor);
  for (double w : {s.device_compute_w, s.device_idle_w, s.edge_w, s.edge_price})
    if (!finite_nonneg(w)) return invalid_argument("scenario: powers and edge_price must be >= 0, got ", w);
  if (models.empty()) return invalid_argument("profiles: no model");
  int full = 0;
  for (size_t i = 0; i < models.size(); ++i) {
    const auto& m = models[i];
    const std::string where = detail::cat("profiles: models[", i, "] (", m.name, ")");
    if (m.name.empty()) return invalid_argument(where, ": name is empty");
    for (size_t j = 0; j < i; ++j)
      if (models[j].name == m.name) return invalid_argument(where, ": name used twice");
    if (m.kind == ModelProfile::Kind::kFull) ++full;
    if (!std::isfinite(m.accuracy) || m.accuracy > 100)
      return invalid_argument(where, ": accuracy must be a top-1 % (<= 100; negative = unknown), got ", m.accuracy);
    const double fields[] = {m.device_ms, m.device_cpu_ms, m.edge_ms, m.request_bytes, m.reply_bytes, m.device_finetune_ms,
                             m.edge_finetune_ms, m.device_prune_ms, m.edge_prune_ms, m.weight_bytes, m.head_bytes,
                             m.tail_bytes};
    for (double v : fields)
      if (!finite_nonneg(v)) return invalid_argument(where, ": times and bytes must be >= 0, got ", v);
    if (!(m.device_ms > 0)) return invalid_argument(where, ": device_ms must be > 0 (measured), got ", m.device_ms);
    if (m.kind != ModelProfile::Kind::kPruned && !(m.edge_ms > 0))
      return invalid_argument(where, ": edge_ms must be > 0 (measured) for a ", kind_name(m.kind), " model, got ", m.edge_ms);
  }
  if (full > 1) return invalid_argument("profiles: more than one model of kind full");
  return Status();
}

Estimate estimate(const ModelProfile& m, const Placement& p, const Scenario& s) {
  Estimate e;
  e.placement = p;
  e.accuracy = m.accuracy;
  const bool remote = p.infer == Site::kEdge || p.infer == Site::kSplit;
  // The edge's utilisation with this device's own requests on it.
  const double own = remote ? s.request_rate_hz * m.edge_ms / 1000.0 / s.edge_workers : 0.0;
  const double rho = s.edge_load + own;
  e.edge_utilisation = rho;
  const double congestion = rho < 1 ? 1.0 / (1.0 - rho) : INFINITY;

  // Per inference.
  double device_s = 0, edge_busy_s = 0, bytes = 0;
  if (!remote) {
    device_s = m.device_ms / 1000.0;
    e.latency_ms = m.device_ms;
  } else {
    device_s = p.infer == Site::kSplit ? m.device_ms / 1000.0 : 0.0;
    edge_busy_s = m.edge_ms / 1000.0;
    bytes = m.request_bytes + m.reply_bytes;
    const double response_s = edge_busy_s * congestion;  // M/M/1: service / (1 - rho)
    e.latency_ms = (device_s + transfer_s(m.request_bytes, s) + transfer_s(m.reply_bytes, s) + s.rtt_ms / 1000.0 +
                    response_s) * 1000.0;
  }
  // The device computes for its CPU time (device_cpu_ms, when measured) and waits, at idle power,
  // for the rest of the latency.
  const double cpu_s = m.device_cpu_ms > 0 && device_s > 0 ? std::min(m.device_cpu_ms / 1000.0, device_s) : device_s;
  double device_j = s.device_compute_w * cpu_s + radio_j(bytes, s);
  if (std::isfinite(e.latency_ms)) device_j += s.device_idle_w * std::max(e.latency_ms / 1000.0 - cpu_s, 0.0);
  double edge_j = s.edge_w * edge_busy_s;

  // Per round, spread over its inferences.
  if (s.inferences_per_round > 0) {
    double round_device_j = 0, round_edge_j = 0, round_bytes = 0;
    auto move = [&](double b) {
      round_bytes += b;
      round_device_j += radio_j(b, s);
    };
    if (p.prune == Site::kDevice) round_device_j += s.device_compute_w * m.device_prune_ms / 1000.0;
    if (p.prune == Site::kEdge) round_edge_j += s.edge_w * m.edge_prune_ms / 1000.0;
    if (p.prune != Site::kNone && p.finetune != Site::kNone && p.prune != p.finetune) move(m.weight_bytes);
    if (p.finetune == Site::kDevice) round_device_j += s.device_compute_w * m.device_finetune_ms / 1000.0;
    if (p.finetune == Site::kEdge) {
      move(s.finetune_bytes);  // the round's data goes up
      round_edge_j += s.edge_w * m.edge_finetune_ms / 1000.0;
    }
    // The fine-tuned (or, without fine-tuning, the pruned) model to where it runs.
    const Site trained = p.finetune != Site::kNone ? p.finetune : p.prune;
    if (trained != Site::kNone) {
      if (p.infer == Site::kDevice && trained == Site::kEdge) move(m.weight_bytes);
      if (p.infer == Site::kEdge && trained == Site::kDevice) move(m.weight_bytes);
      if (p.infer == Site::kSplit) move(trained == Site::kDevice ? m.tail_bytes : m.head_bytes);
    }
    device_j += round_device_j / s.inferences_per_round;
    edge_j += round_edge_j / s.inferences_per_round;
    bytes += round_bytes / s.inferences_per_round;
  }
  e.device_energy_j = device_j;
  e.edge_energy_j = edge_j;
  e.bytes = bytes;
  e.cost = device_j;
  if (edge_j > 0 && s.edge_price > 0) e.cost += s.edge_price * edge_j * congestion;  // no edge work: no congestion

  // Constraints, the first one broken.
  if (s.private_data && p.finetune == Site::kEdge) {
    e.feasible = false;
    e.why = "private data: fine-tuning on the edge would upload it";
  } else if (rho >= 1 && remote) {
    e.feasible = false;
    e.why = detail::cat("edge saturated (utilisation ", std::round(rho * 100) / 100, ")");
  } else if (s.latency_bound_ms > 0 && e.latency_ms > s.latency_bound_ms) {
    e.feasible = false;
    std::ostringstream w;
    w << std::fixed << std::setprecision(2) << "latency " << e.latency_ms << " ms > bound " << s.latency_bound_ms << " ms";
    e.why = w.str();
  } else if (s.accuracy_floor >= 0 && e.accuracy < s.accuracy_floor) {
    e.feasible = false;
    std::ostringstream w;
    w << std::fixed << std::setprecision(2) << "accuracy " << e.accuracy << "% < floor " << s.accuracy_floor << "%";
    e.why = w.str();
  }
  return e;
}

Result<Plan> make_plan(const std::vector<ModelProfile>& models, const Scenario& s) {
  LIBSPLIT_RETURN_IF_ERROR(validate(models, s));
  Plan plan;
  std::vector<Site> finetune_sites = {Site::kDevice, Site::kEdge};
  if (s.inferences_per_round == 0) finetune_sites = {Site::kNone};
  for (const auto& m : models) {
    std::vector<Site> infer_sites, prune_sites = {Site::kNone};
    switch (m.kind) {
      case ModelProfile::Kind::kFull: infer_sites = {Site::kDevice, Site::kEdge}; break;
      case ModelProfile::Kind::kPruned:
        infer_sites = {Site::kDevice};
        prune_sites = {Site::kDevice, Site::kEdge};
        break;
      case ModelProfile::Kind::kSplit: infer_sites = {Site::kSplit}; break;
    }
    for (Site pr : prune_sites)
      for (Site ft : finetune_sites)
        for (Site in : infer_sites) {
          Placement p;
          p.model = m.name;
          p.prune = pr;
          p.finetune = ft;
          p.infer = in;
          plan.options.push_back(estimate(m, p, s));
        }
  }
  std::stable_sort(plan.options.begin(), plan.options.end(), [](const Estimate& a, const Estimate& b) {
    if (a.feasible != b.feasible) return a.feasible;
    return a.cost < b.cost;  // costs are finite or +infinity (a saturated edge), never NaN
  });
  if (!plan.options.empty() && plan.options[0].feasible) plan.recommended = 0;
  return plan;
}

namespace {

Status number(const json& j, const char* key, double* out, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return Status();
  if (!it->is_number()) return invalid_argument(where, ".", key, ": expected a number, got ", it->dump());
  *out = it->get<double>();
  return Status();
}

}  // namespace

Result<std::vector<ModelProfile>> parse_profiles(const std::string& text, const std::string& origin) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return invalid_argument(origin, ": not valid JSON");
  if (!j.is_object() || !j.contains("models") || !j["models"].is_array())
    return invalid_argument(origin, ": expected an object with a \"models\" array");
  std::vector<ModelProfile> out;
  for (size_t i = 0; i < j["models"].size(); ++i) {
    const json& mj = j["models"][i];
    const std::string where = detail::cat(origin, ": models[", i, "]");
    if (!mj.is_object()) return invalid_argument(where, ": expected an object, got ", mj.dump());
    ModelProfile m;
    if (!mj.contains("name") || !mj["name"].is_string()) return invalid_argument(where, ".name: expected a string");
    m.name = mj["name"].get<std::string>();
    const std::string kind = mj.contains("kind") && mj["kind"].is_string() ? mj["kind"].get<std::string>() : "";
    if (kind == "full") m.kind = ModelProfile::Kind::kFull;
    else if (kind == "pruned") m.kind = ModelProfile::Kind::kPruned;
    else if (kind == "split") m.kind = ModelProfile::Kind::kSplit;
    else return invalid_argument(where, ".kind: expected \"full\", \"pruned\" or \"split\", got ", mj.contains("kind") ? mj["kind"].dump() : "nothing");
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "accuracy", &m.accuracy, where));
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "device_ms", &m.device_ms, where));
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "device_cpu_ms", &m.device_cpu_ms, where));
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "edge_ms", &m.edge_ms, where));
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "request_bytes", &m.request_bytes, where));
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "reply_bytes", &m.reply_bytes, where));
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "device_finetune_ms", &m.device_finetune_ms, where));
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "edge_finetune_ms", &m.edge_finetune_ms, where));
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "device_prune_ms", &m.device_prune_ms, where));
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "edge_prune_ms", &m.edge_prune_ms, where));
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "weight_bytes", &m.weight_bytes, where));
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "head_bytes", &m.head_bytes, where));
    LIBSPLIT_RETURN_IF_ERROR(number(mj, "tail_bytes", &m.tail_bytes, where));
    out.push_back(std::move(m));
  }
  Scenario any;
  LIBSPLIT_RETURN_IF_ERROR(validate(out, any));
  return out;
}

Result<std::vector<ModelProfile>> load_profiles(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return detail::not_found(path, ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_profiles(ss.str(), path);
}

std::string plan_to_json(const Plan& plan, const Scenario& s) {
  json j;
  j["scenario"] = {{"link_mbps", s.link_mbps},
                   {"rtt_ms", s.rtt_ms},
                   {"energy_per_bit_nj", s.energy_per_bit_nj},
                   {"edge_load", s.edge_load},
                   {"edge_workers", s.edge_workers},
                   {"request_rate_hz", s.request_rate_hz},
                   {"inferences_per_round", s.inferences_per_round},
                   {"finetune_bytes", s.finetune_bytes},
                   {"private_data", s.private_data},
                   {"latency_bound_ms", s.latency_bound_ms},
                   {"accuracy_floor", s.accuracy_floor},
                   {"device_compute_w", s.device_compute_w},
                   {"device_idle_w", s.device_idle_w},
                   {"edge_w", s.edge_w},
                   {"edge_price", s.edge_price}};
  json opts = json::array();
  for (const auto& e : plan.options) {
    json o = {{"name", e.placement.name()},
              {"model", e.placement.model},
              {"prune", site_name(e.placement.prune)},
              {"finetune", site_name(e.placement.finetune)},
              {"infer", site_name(e.placement.infer)},
              {"latency_ms", std::isfinite(e.latency_ms) ? json(e.latency_ms) : json(nullptr)},
              {"device_energy_j", e.device_energy_j},
              {"edge_energy_j", e.edge_energy_j},
              {"bytes", e.bytes},
              {"edge_utilisation", e.edge_utilisation},
              {"cost", std::isfinite(e.cost) ? json(e.cost) : json(nullptr)},
              {"accuracy", e.accuracy},
              {"feasible", e.feasible}};
    if (!e.feasible) o["why"] = e.why;
    opts.push_back(std::move(o));
  }
  j["options"] = std::move(opts);
  j["recommended"] = plan.recommended >= 0 ? j["options"][size_t(plan.recommended)] : json(nullptr);
  return j.dump(2) + "\n";
}

Result<std::string> read_recommended_local_model(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return detail::not_found(path, ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("recommended"))
    return invalid_argument(path, ": not a split-plan --json file (no \"recommended\")");
  const json& r = j["recommended"];
  if (r.is_null()) return invalid_argument(path, ": the plan recommends nothing (no placement was feasible)");
  if (!r.is_object() || !r.contains("model") || !r["model"].is_string() || !r.contains("infer") || !r.contains("prune"))
    return invalid_argument(path, ": \"recommended\" lacks model, prune or infer");
  if (r["infer"] != "device" || r["prune"] == "none") return std::string();
  return r["model"].get<std::string>();
}

}  // namespace plan
}  // namespace libsplit
