#include <sys/stat.h>

#include <atomic>
#include <optional>

#include <torch/script.h>
#include <torch/torch.h>

#include "common/errors.h"
#include "common/log.h"
#include "libsplit/bundle.h"

namespace libsplit {

using detail::cat;
using detail::invalid_argument;

struct Bundle::Impl {
  std::string dir;
  Manifest manifest;
  torch::Device device{torch::kCPU};
  std::optional<torch::jit::Module> full;
  std::vector<std::optional<torch::jit::Module>> local;  // manifest "local", when loaded
  std::vector<std::optional<torch::jit::Module>> heads, tails;
  std::vector<std::shared_ptr<const EntropyTables>> tables;  // per split, null without a file
};

namespace {

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::vector<int64_t> to_shape(const at::Tensor& t) { return std::vector<int64_t>(t.sizes().begin(), t.sizes().end()); }

Result<torch::jit::Module> load_module(const std::string& dir, const std::string& file, const std::string& field,
                                       const torch::Device& device, bool optimize) {
  const std::string path = dir + "/" + file;
  if (!file_exists(path))
    return detail::not_found(path, ": file named by manifest field \"", field, "\" does not exist");
  try {
    auto m = torch::jit::load(path, device);
    m.eval();
    if (!optimize) return m;
    try {
      return torch::jit::optimize_for_inference(m);
    } catch (const std::exception& e) {
      std::string what = e.what();
      if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
      detail::logger()->warn("{}: runs as loaded, optimizing it for inference failed ({})", path, what);
      auto plain = torch::jit::load(path, device);  // not m: optimizing may have changed it in place
      plain.eval();
      return plain;
    }
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    return invalid_argument(path, ": not a loadable TorchScript file (", what, ")");
  }
}

// Bumped whenever a Bundle sets LibTorch's intra-op thread count.
std::atomic<int> thread_count_generation{0};

// OpenMP keeps the thread count per thread, and LibTorch applies its configured count only in
// threads it starts or parallelizes from itself. A thread of ours (a server's worker or I/O thread)
// would otherwise run oneDNN's convolutions with OpenMP's default, whose other split of the work
// changes outputs in the last bits: the same request would get a different answer depending on
// the thread that ran it. Each thread takes the configured count before its first forward pass.
void apply_thread_count() {
  thread_local int applied = -1;
  const int generation = thread_count_generation.load(std::memory_order_acquire);
  if (applied == generation) return;
  at::init_num_threads();
  applied = generation;
}

Result<at::Tensor> forward(const torch::jit::Module& m, const at::Tensor& in, const std::string& what) {
  try {
    c10::InferenceMode guard;
    apply_thread_count();
    auto out = const_cast<torch::jit::Module&>(m).forward({in});
    if (!out.isTensor()) return detail::internal_error(what, ": forward() did not return a tensor");
    return out.toTensor().to(torch::kCPU, torch::kFloat).contiguous();
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    return detail::internal_error(what, ": forward failed: ", msg);
  }
}

at::Tensor to_torch(const Tensor& t, const torch::Device& device) {
  auto cpu = torch::from_blob(const_cast<float*>(t.data.data()), t.shape, torch::kFloat);
  return device.is_cpu() ? cpu : cpu.to(device);
}

Tensor from_torch(const at::Tensor& t) {
  Tensor out;
  out.shape = to_shape(t);
  out.data.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  return out;
}

Status check_shape(const std::string& what, const std::vector<int64_t>& expected, const std::vector<int64_t>& actual) {
  if (expected != actual)
    return invalid_argument(what, ": expected shape ", shape_to_string(expected), ", got ", shape_to_string(actual));
  return {};
}

// Warm-up runs that double as shape checks against the manifest.
Status warm_up(const torch::jit::Module& m, const std::vector<int64_t>& in_shape, const std::vector<int64_t>& out_shape,
               const std::string& path, const std::string& field, const torch::Device& device, int runs) {
  auto in = torch::zeros(in_shape, torch::TensorOptions().dtype(torch::kFloat).device(device));
  for (int i = 0; i < std::max(1, runs); ++i) {
    auto out = forward(m, in, path);
    if (!out.ok())
      return invalid_argument(path, ": cannot run on the input shape ", shape_to_string(in_shape),
                              " from the manifest (", out.status().message(), ")");
    const auto actual = to_shape(*out);
    if (actual != out_shape)
      return invalid_argument(path, ": output shape ", shape_to_string(actual), " disagrees with manifest field \"",
                              field, "\" ", shape_to_string(out_shape));
  }
  return {};
}

}  // namespace

Bundle::Bundle(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Bundle::~Bundle() = default;
const Manifest& Bundle::manifest() const { return impl_->manifest; }
const std::string& Bundle::dir() const { return impl_->dir; }

Result<std::unique_ptr<Bundle>> Bundle::open(const std::string& dir, const BundleOptions& o) {
  auto m = load_manifest(dir);
  if (!m.ok()) return m.status();
  if (o.warmup_runs < 0 || o.warmup_runs > 100) return invalid_argument("BundleOptions.warmup_runs must be in [0, 100], got ", o.warmup_runs);
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->manifest = std::move(*m);
  try {
    impl->device = torch::Device(o.device);
  } catch (const std::exception&) {
    return invalid_argument("device \"", o.device, "\": expected \"cpu\", \"cuda\" or \"cuda:N\"");
  }
  if (impl->device.is_cuda() && !torch::cuda::is_available())
    return detail::failed_precondition("device \"", o.device, "\": this LibTorch build or machine has no CUDA");
  if (o.intra_op_threads > 0) {
    at::set_num_threads(o.intra_op_threads);
    thread_count_generation.fetch_add(1, std::memory_order_release);
  }
  const auto& man = impl->manifest;
  const auto& dev = impl->device;
  if (o.load_full) {
    auto full = load_module(dir, man.full, "full", dev, o.optimize);
    if (!full.ok()) return full.status();
    LIBSPLIT_RETURN_IF_ERROR(warm_up(*full, man.input.shape, man.output_shape, dir + "/" + man.full, "output.shape", dev,
                                     o.warmup_runs));
    impl->full = std::move(*full);
  }
  impl->local.resize(man.local.size());
  for (size_t i = 0; o.load_local && i < man.local.size(); ++i) {
    const auto& l = man.local[i];
    auto model = load_module(dir, l.file, cat("local[", i, "].file"), dev, o.optimize);
    if (!model.ok()) return model.status();
    LIBSPLIT_RETURN_IF_ERROR(warm_up(*model, man.input.shape, man.output_shape, dir + "/" + l.file, "output.shape", dev,
                                     o.warmup_runs));
    impl->local[i] = std::move(*model);
  }
  impl->heads.resize(man.splits.size());
  impl->tails.resize(man.splits.size());
  impl->tables.resize(man.splits.size());
  for (size_t i = 0; i < man.splits.size(); ++i) {
    const auto& s = man.splits[i];
    const std::string field = cat("splits[", i, "]");
    if (!s.tables.empty()) {
      const std::string path = dir + "/" + s.tables;
      if (!file_exists(path)) return detail::not_found(field, ".tables: file ", path, " does not exist");
      auto t = EntropyTables::load(path);
      if (!t.ok()) return Status(t.status().code(), cat(field, ".tables: ", t.status().message()));
      int64_t n = 1;
      for (int64_t d : s.bottleneck_shape) n *= d;
      Status fits = (*t)->check_elements(n);
      if (!fits.ok())
        return invalid_argument(field, ".tables: ", path, " do not fit bottleneck ", shape_to_string(s.bottleneck_shape),
                                ": ", fits.message());
      impl->tables[i] = std::move(*t);
    }
    if (o.load_heads) {
      auto head = load_module(dir, s.head, field + ".head", dev, o.optimize);
      if (!head.ok()) return head.status();
      LIBSPLIT_RETURN_IF_ERROR(warm_up(*head, man.input.shape, s.bottleneck_shape, dir + "/" + s.head,
                                       field + ".bottleneck.shape", dev, o.warmup_runs));
      impl->heads[i] = std::move(*head);
    }
    if (o.load_tails) {
      auto tail = load_module(dir, s.tail, field + ".tail", dev, o.optimize);
      if (!tail.ok()) return tail.status();
      LIBSPLIT_RETURN_IF_ERROR(warm_up(*tail, s.bottleneck_shape, man.output_shape, dir + "/" + s.tail, "output.shape",
                                       dev, o.warmup_runs));
      impl->tails[i] = std::move(*tail);
    }
  }
  detail::logger()->debug("bundle {} {} loaded from {}: {} splits on {}", man.name, man.version, dir, man.splits.size(),
                          o.device);
  return std::unique_ptr<Bundle>(new Bundle(std::move(impl)));
}

const EntropyTables* Bundle::tables(size_t split) const {
  return split < impl_->tables.size() ? impl_->tables[split].get() : nullptr;
}

Result<Tensor> Bundle::run_head(size_t split, const Tensor& input) const {
  const auto& man = impl_->manifest;
  if (split >= man.splits.size()) return invalid_argument("split index ", split, " out of range (", man.splits.size(), " splits)");
  if (!impl_->heads[split]) return detail::failed_precondition("head of split ", man.splits[split].id, " was not loaded");
  LIBSPLIT_RETURN_IF_ERROR(check_shape("head input", man.input.shape, input.shape));
  auto out = forward(*impl_->heads[split], to_torch(input, impl_->device), man.splits[split].head);
  if (!out.ok()) return out.status();
  return from_torch(*out);
}

Result<Tensor> Bundle::run_tail(size_t split, const Tensor& z) const {
  const auto& man = impl_->manifest;
  if (split >= man.splits.size()) return invalid_argument("split index ", split, " out of range (", man.splits.size(), " splits)");
  if (!impl_->tails[split]) return detail::failed_precondition("tail of split ", man.splits[split].id, " was not loaded");
  auto expected = man.splits[split].bottleneck_shape;
  if (z.shape.size() != expected.size() || z.shape.empty() || z.shape[0] < 1)
    return check_shape("tail input of split " + man.splits[split].id, expected, z.shape);
  expected[0] = z.shape[0];
  LIBSPLIT_RETURN_IF_ERROR(check_shape("tail input of split " + man.splits[split].id, expected, z.shape));
  if (int64_t(z.data.size()) != z.numel()) return invalid_argument("tail input: data size ", z.data.size(), " != shape ", shape_to_string(z.shape));
  auto out = forward(*impl_->tails[split], to_torch(z, impl_->device), man.splits[split].tail);
  if (!out.ok()) return out.status();
  return from_torch(*out);
}

namespace {
Result<Tensor> run_whole(const torch::jit::Module& m, const Manifest& man, const torch::Device& device,
                         const std::string& file, const Tensor& input) {
  auto expected = man.input.shape;
  if (!input.shape.empty()) expected[0] = input.shape[0];
  LIBSPLIT_RETURN_IF_ERROR(check_shape(file + " input", expected, input.shape));
  if (int64_t(input.data.size()) != input.numel()) return invalid_argument(file, " input: data size mismatch");
  auto out = forward(m, to_torch(input, device), file);
  if (!out.ok()) return out.status();
  return from_torch(*out);
}
}  // namespace

Result<Tensor> Bundle::run_full(const Tensor& input) const {
  if (!impl_->full) return detail::failed_precondition("the full model was not loaded");
  return run_whole(*impl_->full, impl_->manifest, impl_->device, impl_->manifest.full, input);
}

Result<Tensor> Bundle::run_local(size_t index, const Tensor& input) const {
  const auto& man = impl_->manifest;
  if (index >= man.local.size()) return invalid_argument("local model index ", index, " out of range (", man.local.size(), " local models)");
  if (!impl_->local[index]) return detail::failed_precondition("local model ", man.local[index].id, " was not loaded");
  return run_whole(*impl_->local[index], man, impl_->device, man.local[index].file, input);
}

}  // namespace libsplit
