// The device side in one call: preprocessed input -> head -> encode -> server -> answer, or the
// whole model locally, or the raw input offloaded. Times every stage.
//
// A SplitSession borrows a Bundle (heads and full model loaded) and, unless only `local` is
// used, a Client; both must outlive it. run() is thread-safe when the Client is.
#pragma once

#include "libsplit/export.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "libsplit/bundle.h"
#include "libsplit/client.h"
#include "libsplit/status.h"
#include "libsplit/tensor.h"

LIBSPLIT_PUBLIC_BEGIN
namespace libsplit {

struct Strategy {
  enum class Kind { kSplit, kLocal, kOffload };
  Kind kind = Kind::kLocal;
  size_t split = 0;  // manifest split index for kSplit
  // kSplit: a codec name (see codec.h) instead of the split's manifest codec; kOffload: "png"
  // (lossless PNG) or "" (raw pixels).
  std::string codec;
  int local = -1;  // kLocal: -1 = the full model, else an index into the manifest's local models

  // "local" (the full model), a local model id (e.g. "pruned50"), "offload" (raw pixels),
  // "offload-png" or a split id of `manifest`.
  static Result<Strategy> parse(const std::string& name, const Manifest& manifest);
  std::string name(const Manifest& manifest) const;
};

struct Inference {
  std::vector<ClassScore> top;  // best first
  std::string strategy;         // "local", a local model id, "offload", "offload-png" or the split id
  std::string fallback;         // dynamic: why the chosen remote candidate fell back to local
  // dynamic: this request tried a candidate other than the chosen one (an exploration; a local
  // model's trial is two requests), also when the local model answered for it
  bool exploration = false;
  // Stage times in microseconds. head: on-device input normalization and head (or the whole
  // model for local ones);
  // encode: codec; network: round trip minus the server's queue and tail time;
  // tail: as the server reported it (its queue wait in server_queue_us); total: end to end.
  double head_us = 0, encode_us = 0, network_us = 0, server_queue_us = 0, tail_us = 0, total_us = 0;
  // CPU time this process spent over the device's stages (head and encode), microseconds: what
  // the device computed, without the time it waited for the CPU (a CPU quota's throttling, other
  // processes). Counts every thread of the process meanwhile.
  double device_cpu_us = 0;
  size_t request_bytes = 0;   // whole request frame, header included (0 for local)
  size_t payload_bytes = 0;   // encoded tensor bytes alone
  size_t response_bytes = 0;  // whole reply frame (0 for local)
};

class SplitSession {
 public:
  // `client` may be null when only the local strategy will be used.
  static Result<std::unique_ptr<SplitSession>> create(const Bundle* bundle, Client* client);

  // `pixels` is a pixel tensor (see preprocess.h). deadline_ms 0 = the client's default.
  Result<Inference> run(const Tensor& pixels, const Strategy& strategy, int top_k = 5, uint32_t deadline_ms = 0) const;

 private:
  SplitSession(const Bundle* bundle, Client* client, std::vector<int> remote_index);
  const Bundle* bundle_;
  Client* client_;
  std::vector<int> remote_index_;  // manifest split -> server split index (-1 = not served)
};

}  // namespace libsplit
LIBSPLIT_PUBLIC_END
