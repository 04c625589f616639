#include "libsplit/session.h"

#include <chrono>

#include "common/cpu_clock.h"
#include "common/errors.h"
#include "libsplit/preprocess.h"

namespace libsplit {

using Clock = std::chrono::steady_clock;
using detail::invalid_argument;

namespace {
double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}
// Fills the remote stages from a server reply. network = round trip - server queue - tail.
Result<Inference> finish_remote(Result<Reply> r, Clock::time_point t0, Inference* inf) {
  if (!r.ok()) return r.status();
  inf->top = std::move(r->top);
  inf->request_bytes = r->request_bytes;
  inf->response_bytes = r->response_bytes;
  inf->server_queue_us = r->server_queue_us;
  inf->tail_us = r->server_tail_us;
  inf->network_us = double(r->round_trip_us) - r->server_queue_us - r->server_tail_us;
  inf->total_us = us_since(t0);
  return std::move(*inf);
}

}  // namespace

Result<Strategy> Strategy::parse(const std::string& name, const Manifest& m) {
  Strategy s;
  if (name == "local") return s;
  if (name == "offload" || name == "offload-png") {
    s.kind = Kind::kOffload;
    if (name == "offload-png") s.codec = "png";
    return s;
  }
  if (const int l = m.find_local(name); l >= 0) {
    s.local = l;
    return s;
  }
  const int i = m.find_split(name);
  if (i < 0) {
    std::string ids;
    for (const auto& l : m.local) ids += ", " + l.id;
    for (const auto& sp : m.splits) ids += ", " + sp.id;
    return detail::not_found("unknown strategy \"", name, "\" in bundle ", m.name, "; choose one of local, offload, offload-png", ids);
  }
  s.kind = Kind::kSplit;
  s.split = size_t(i);
  return s;
}

std::string Strategy::name(const Manifest& m) const {
  switch (kind) {
    case Kind::kLocal: return local < 0 ? "local" : size_t(local) < m.local.size() ? m.local[size_t(local)].id : "?";
    case Kind::kOffload: return codec == "png" ? "offload-png" : "offload";
    case Kind::kSplit: return split < m.splits.size() ? m.splits[split].id : "?";
  }
  return "?";
}

SplitSession::SplitSession(const Bundle* bundle, Client* client, std::vector<int> remote_index)
    : bundle_(bundle), client_(client), remote_index_(std::move(remote_index)) {}

Result<std::unique_ptr<SplitSession>> SplitSession::create(const Bundle* bundle, Client* client) {
  if (!bundle) return invalid_argument("SplitSession needs a bundle");
  const auto& m = bundle->manifest();
  std::vector<int> remote(m.splits.size(), -1);
  if (client) {
    if (client->input_shape() != m.input.shape)
      return invalid_argument("the server's model takes input ", shape_to_string(client->input_shape()),
                              " but the local bundle ", m.name, " takes ", shape_to_string(m.input.shape));
    for (size_t i = 0; i < m.splits.size(); ++i) {
      const int r = client->find_split(m.splits[i].id);
      if (r < 0) continue;
      const auto rs = client->splits()[size_t(r)];
      if (rs.bottleneck_shape != m.splits[i].bottleneck_shape)
        return invalid_argument("split ", m.splits[i].id, ": the server's bottleneck is ",
                                shape_to_string(rs.bottleneck_shape), ", the local bundle's ",
                                shape_to_string(m.splits[i].bottleneck_shape));
      remote[i] = r;
    }
  }
  return std::unique_ptr<SplitSession>(new SplitSession(bundle, client, std::move(remote)));
}

Result<Inference> SplitSession::run(const Tensor& pixels, const Strategy& st, int k, uint32_t deadline_ms) const {
  const auto& m = bundle_->manifest();
  Inference inf;
  inf.strategy = st.name(m);
  const auto t0 = Clock::now();
  if (st.kind == Strategy::Kind::kOffload) {
    if (!client_) return detail::failed_precondition("offload needs a connection to a server");
    auto t = Clock::now();
    EncodedTensor enc;
    const CodecSpec spec{st.codec == "png" ? CodecKind::kImagePng : CodecKind::kImageU8, 8};
    if (!st.codec.empty() && st.codec != "png" && st.codec != "u8image")
      return invalid_argument("offload sends raw pixels or png, not ", st.codec);
    const double c = detail::process_cpu_us();
    LIBSPLIT_RETURN_IF_ERROR(encode(pixels, spec, &enc));
    inf.device_cpu_us = detail::process_cpu_us() - c;  // first: see below
    inf.encode_us = us_since(t);
    inf.payload_bytes = enc.payload.size();
    return finish_remote(client_->infer(Client::kFullModel, enc, k, deadline_ms), t0, &inf);
  }
  // The head stage counts the input's normalization: it is the model's, whichever side runs it.
  auto t = Clock::now();
  const double c = detail::process_cpu_us();
  Tensor x = pixels;
  LIBSPLIT_RETURN_IF_ERROR(normalize_input(m.input, &x));
  if (st.kind == Strategy::Kind::kLocal) {
    auto out = st.local < 0 ? bundle_->run_full(x) : bundle_->run_local(size_t(st.local), x);
    if (!out.ok()) return out.status();
    // The CPU clock is read before the stage's end is stamped: reading it settles the process's
    // CPU account, and under a CPU quota that is where an exhausted slice stops the thread; the
    // wait belongs to the stage that used the slice up, not to whatever comes next.
    inf.device_cpu_us = detail::process_cpu_us() - c;
    inf.head_us = us_since(t);
    inf.top = top_k(*out, k);
    inf.total_us = us_since(t0);
    return inf;
  }
  if (st.split >= m.splits.size()) return invalid_argument("split index ", st.split, " out of range");
  if (!client_) return detail::failed_precondition("split ", m.splits[st.split].id, " needs a connection to a server");
  if (remote_index_[st.split] < 0)
    return detail::not_found("split ", m.splits[st.split].id, " is not served by the connected server");
  auto z = bundle_->run_head(st.split, x);
  if (!z.ok()) return z.status();
  inf.head_us = us_since(t);
  t = Clock::now();
  CodecSpec spec = m.splits[st.split].codec;
  if (!st.codec.empty()) {
    auto c = parse_codec(st.codec);
    if (!c.ok()) return c.status();
    spec = *c;
  }
  EncodedTensor enc;
  LIBSPLIT_RETURN_IF_ERROR(encode(*z, spec, &enc, bundle_->tables(st.split)));
  inf.device_cpu_us = detail::process_cpu_us() - c;  // first: see the local case
  inf.encode_us = us_since(t);
  inf.payload_bytes = enc.payload.size();
  return finish_remote(client_->infer(uint16_t(remote_index_[st.split]), enc, k, deadline_ms), t0, &inf);
}

}  // namespace libsplit
