// Bundles: a directory with manifest.json and TorchScript files (head/tail per split, full model).
// Schema of manifest.json: see "Bundle format" in README.md. LibTorch stays behind the pimpl.
#pragma once

#include "libsplit/export.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "libsplit/codec.h"
#include "libsplit/status.h"
#include "libsplit/tensor.h"

LIBSPLIT_PUBLIC_BEGIN
namespace libsplit {

constexpr int kManifestFormatVersion = 1;

// Manifest "input.preprocess": how an image of any size becomes the input's H x W, as
// torchvision's Resize(resize) then CenterCrop([crop_height, crop_width]) would, on the 8-bit
// image with OpenCV's resampling (see preprocess.h).
struct PreprocessSpec {
  int resize = 0;       // the shorter side becomes this many pixels, the aspect ratio kept
  int crop_height = 0;  // centre crop; equal to the input's H and W, each <= resize
  int crop_width = 0;
  std::string interpolation = "area";  // "area", "bilinear" or "nearest"
};

struct InputSpec {
  std::vector<int64_t> shape;      // e.g. [1, 1, 28, 28], NCHW
  std::string dtype = "float32";   // the model's input dtype (only float32 is supported)
  std::vector<float> mean;         // per channel, applied after scaling pixels to [0, 1]
  std::vector<float> std;          // per channel, > 0
  std::string channel_order = "gray";  // "gray", "rgb" or "bgr"
  std::optional<PreprocessSpec> preprocess;  // none: images must have the input's exact size
};

struct SplitSpec {
  std::string id;    // unique in the bundle, e.g. "bf2"
  std::string kind;  // "bottlefit", "natural" or "variational" (a learned entropy-coded latent)
  std::string head;  // file names, relative to the bundle directory
  std::string tail;
  std::vector<int64_t> bottleneck_shape;
  std::string bottleneck_dtype = "float32";
  CodecSpec codec;          // the default codec for this split
  std::string tables;       // optional: entropy tables file (needed by q8rans / s8rans)
  double accuracy_float = -1;  // top-1 % with a float bottleneck (-1 = not measured)
  double accuracy_codec = -1;  // top-1 % with `codec`
};

// A model that runs whole on the device besides the full one, e.g. a channel-pruned teacher
// (manifest "local" array).
struct LocalSpec {
  std::string id;    // unique among splits and local models, e.g. "pruned50"
  std::string kind;  // "pruned"
  std::string file;  // relative to the bundle directory; same input and output as the full model
  double ratio = -1;     // the fraction of the full model's multiply-adds it was pruned to
  int64_t params = -1;   // parameters (-1 = not recorded)
  int64_t macs = -1;     // multiply-adds of one forward pass (-1 = not recorded)
  double accuracy = -1;  // top-1 % on the bundle's test set (-1 = not measured)
};

struct Manifest {
  int format_version = kManifestFormatVersion;
  std::string name;
  std::string version;
  std::string weights;  // "trained" or "random"
  std::vector<std::string> labels;
  InputSpec input;
  std::string full;                  // file of the whole model
  std::vector<int64_t> output_shape;  // e.g. [1, 10]
  double accuracy_full = -1;
  int64_t params_full = -1;  // "complexity" of the full model (-1 = not recorded)
  int64_t macs_full = -1;
  std::vector<SplitSpec> splits;
  std::vector<LocalSpec> local;  // optional further on-device models
  std::string default_split;  // optional: the split a client uses when told none ("" = first)

  // Index of the split with this id, or -1.
  int find_split(const std::string& id) const;
  // Index of the local model with this id, or -1.
  int find_local(const std::string& id) const;
};

// Parses and validates manifest text; `origin` names the file in error messages.
Result<Manifest> parse_manifest(const std::string& json_text, const std::string& origin);
// Reads <dir>/manifest.json.
Result<Manifest> load_manifest(const std::string& bundle_dir);

struct BundleOptions {
  std::string device = "cpu";  // "cpu", or "cuda" / "cuda:N" where LibTorch was built with CUDA
  bool load_full = true;       // load the full model file
  bool load_heads = true;      // load every split's head
  bool load_tails = true;      // load every split's tail
  bool load_local = true;      // load every local model (manifest "local")
  int warmup_runs = 2;         // forward passes per loaded model at open (0..100); they also
                               // check the output shapes against the manifest
  int intra_op_threads = 0;    // > 0 sets LibTorch's (process-wide) intra-op thread count
  bool optimize = true;        // freeze each module for inference at open (parameters become
                               // constants, batch norm folds into the convolutions, CPU
                               // convolutions run on oneDNN where LibTorch has it); same
                               // outputs to float rounding. A module that cannot be optimized
                               // runs as loaded (logged). false: every module runs as loaded
};

// A loaded bundle. Create with open(); the run_* calls are thread-safe (concurrent forward
// passes over immutable TorchScript modules) and the Bundle must outlive them.
class Bundle {
 public:
  // Loads and validates: every file listed exists, loads as TorchScript, and produces the
  // shapes the manifest declares. Errors name the file, the field, the expected and actual value.
  static Result<std::unique_ptr<Bundle>> open(const std::string& dir, const BundleOptions& options = {});
  ~Bundle();
  Bundle(const Bundle&) = delete;
  Bundle& operator=(const Bundle&) = delete;

  const Manifest& manifest() const;
  const std::string& dir() const;

  // `input` must have the manifest's input shape; `bottleneck` the split's bottleneck shape
  // (batch dimension may differ from 1 for tails: N tails are run as one batch).
  Result<Tensor> run_head(size_t split, const Tensor& input) const;
  Result<Tensor> run_tail(size_t split, const Tensor& bottleneck) const;
  Result<Tensor> run_full(const Tensor& input) const;
  // Local model `index` of manifest().local; same input and output as run_full.
  Result<Tensor> run_local(size_t index, const Tensor& input) const;

  // The split's entropy tables (its manifest's "tables" file), or nullptr if it has none.
  const EntropyTables* tables(size_t split) const;

 private:
  struct Impl;
  explicit Bundle(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace libsplit
LIBSPLIT_PUBLIC_END
