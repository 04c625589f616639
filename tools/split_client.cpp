// split-client: runs a bundle's head on this device and the tail on split-server (or the whole
// model locally, or offloads the input), over images, a directory (flat, or class folders as
// torchvision's ImageFolder), an IDX file or a camera.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <iomanip>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "libsplit/libsplit.h"

#ifdef LIBSPLIT_WITH_OPENCV
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#endif

namespace {

using libsplit::Result;
using libsplit::Status;
using libsplit::Tensor;

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}
bool has_image_ext(std::string n) {
  std::transform(n.begin(), n.end(), n.begin(), ::tolower);
  for (const char* e : {".png", ".jpg", ".jpeg", ".bmp"})
    if (n.size() > strlen(e) && n.compare(n.size() - strlen(e), strlen(e), e) == 0) return true;
  return false;
}

// The entries of a directory, sorted by name: image files and subdirectories.
bool list_dir(const std::string& dir, std::vector<std::string>* images, std::vector<std::string>* subdirs) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (is_dir(dir + "/" + name)) {
      if (subdirs && name[0] != '.') subdirs->push_back(name);  // hidden folders are no classes (as split-train)
    } else if (has_image_ext(name)) {
      images->push_back(name);
    }
  }
  ::closedir(d);
  std::sort(images->begin(), images->end());
  if (subdirs) std::sort(subdirs->begin(), subdirs->end());
  return true;
}

// The images of an --input directory: flat (DIR/*.png ..., no labels), or the ImageFolder layout
// DIR/<class>/*.png|jpg|jpeg|bmp when a subdirectory holds images, each image labelled by its
// folder's name, which must be one of the bundle's labels. Sorted by class folder, then file name.
struct DirectoryInputs {
  std::vector<std::string> files;
  std::vector<int> labels;  // per file, an index into the manifest's labels; empty when flat
};
// Errors are whole lines naming the folder (no status code: they are the user's layout).
Result<DirectoryInputs> scan_directory(std::string dir, const std::vector<std::string>& labels) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();  // "DIR/" names files as "DIR/<class>/..."
  auto error = [](const std::string& msg) { return Status(libsplit::StatusCode::kInvalidArgument, msg); };
  std::vector<std::string> flat, subdirs;
  if (!list_dir(dir, &flat, &subdirs)) return error(dir + ": cannot list directory");
  std::vector<std::vector<std::string>> class_files(subdirs.size());
  bool image_folder = false;
  for (size_t c = 0; c < subdirs.size(); ++c) {
    if (!list_dir(dir + "/" + subdirs[c], &class_files[c], nullptr))
      return error(dir + "/" + subdirs[c] + ": cannot list directory");
    image_folder |= !class_files[c].empty();
  }
  DirectoryInputs out;
  if (!image_folder) {
    for (const auto& f : flat) out.files.push_back(dir + "/" + f);
    if (out.files.empty()) return error(dir + ": no .png/.jpg/.jpeg/.bmp files");
    return out;
  }
  // Every class folder is checked before any image is read.
  for (size_t c = 0; c < subdirs.size(); ++c) {
    const std::string& name = subdirs[c];
    if (class_files[c].empty()) continue;
    if (std::find(labels.begin(), labels.end(), name) == labels.end()) {
      std::string known;
      for (size_t i = 0; i < labels.size() && i < 10; ++i) known += (i ? ", " : "") + labels[i];
      if (labels.size() > 10) known += ", ... (" + std::to_string(labels.size()) + " in all)";
      return error(dir + "/" + name + ": class folder '" + name + "' is not one of the bundle's labels (" + known + ")");
    }
  }
  for (size_t c = 0; c < subdirs.size(); ++c) {
    const std::string& name = subdirs[c];
    if (class_files[c].empty()) {
      std::fprintf(stderr, "split-client: %s/%s: empty class folder (no .png/.jpg/.jpeg/.bmp files), skipped\n",
                   dir.c_str(), name.c_str());
      continue;
    }
    const int label = int(std::find(labels.begin(), labels.end(), name) - labels.begin());
    for (const auto& f : class_files[c]) {
      out.files.push_back(dir + "/" + name + "/" + f);
      out.labels.push_back(label);
    }
  }
  if (!flat.empty())
    std::fprintf(stderr, "split-client: %s: %zu image(s) beside the class folders are not read (ImageFolder layout)\n",
                 dir.c_str(), flat.size());
  return out;
}

// Yields pixel tensors one by one from whatever --input names.
class InputSource {
 public:
  // `dir`: what scan_directory found when --input is a directory.
  static Result<std::unique_ptr<InputSource>> open(const std::string& input, const libsplit::InputSpec& spec,
                                                   const DirectoryInputs* dir) {
    auto s = std::unique_ptr<InputSource>(new InputSource(spec));
    if (dir) {
      s->files_ = dir->files;
      s->count_ = int64_t(s->files_.size());
    } else if (exists(input) && has_image_ext(input)) {
      s->files_.push_back(input);
      s->count_ = 1;
    } else if (exists(input)) {
      auto idx = libsplit::IdxFile::open(input);
      if (!idx.ok()) return idx.status();
      const auto& dims = idx->dims();  // any image size when the manifest resizes (input.preprocess)
      if (dims.size() != 3 || spec.shape[1] != 1 ||
          (!spec.preprocess && (dims[1] != spec.shape[2] || dims[2] != spec.shape[3])))
        return Status(libsplit::StatusCode::kInvalidArgument,
                      input + ": IDX images of shape " + libsplit::shape_to_string(dims) +
                          " do not fit the model input " + libsplit::shape_to_string(spec.shape));
      s->count_ = idx->count();
      s->idx_ = std::move(*idx);
      s->stream_ = input;
    } else if (!input.empty() && input.find_first_not_of("0123456789") == std::string::npos) {
#ifdef LIBSPLIT_WITH_OPENCV
      s->camera_ = std::make_unique<cv::VideoCapture>(std::stoi(input));
      if (!s->camera_->isOpened())
        return Status(libsplit::StatusCode::kNotFound, "camera " + input + " cannot be opened");
      s->count_ = -1;
      s->stream_ = "camera:" + input;
#else
      return Status(libsplit::StatusCode::kFailedPrecondition, "camera input needs OpenCV");
#endif
    } else {
      return Status(libsplit::StatusCode::kNotFound, input + ": no such file, directory or camera index");
    }
    return s;
  }

  int64_t count() const { return count_; }  // -1 = endless (camera)
  std::string name(int64_t i) const { return files_.empty() ? "#" + std::to_string(i) : files_[size_t(i)]; }
  // The input's file, or the IDX file / camera with "#index".
  std::string path(int64_t i) const { return files_.empty() ? stream_ + "#" + std::to_string(i) : files_[size_t(i)]; }

  Result<Tensor> get(int64_t i) {
    if (idx_) return libsplit::pixels_to_tensor(idx_->record(i), int(idx_->dims()[1]), int(idx_->dims()[2]), 1, spec_);
#ifdef LIBSPLIT_WITH_OPENCV
    if (camera_) {
      cv::Mat frame, conv;
      if (!camera_->read(frame) || frame.empty()) return Status(libsplit::StatusCode::kUnavailable, "camera gave no frame");
      if (spec_.channel_order == "gray") cv::cvtColor(frame, conv, cv::COLOR_BGR2GRAY);
      else if (spec_.channel_order == "rgb") cv::cvtColor(frame, conv, cv::COLOR_BGR2RGB);
      else conv = frame;
      // The manifest's input.preprocess resizes and crops the whole frame; without it, the frame
      // is squeezed to the input size.
      if (!spec_.preprocess)
        cv::resize(conv, conv, cv::Size(int(spec_.shape[3]), int(spec_.shape[2])), 0, 0, cv::INTER_AREA);
      if (!conv.isContinuous()) conv = conv.clone();
      return libsplit::pixels_to_tensor(conv.data, conv.rows, conv.cols, conv.channels(), spec_);
    }
#endif
    return libsplit::load_image_file(files_[size_t(i)], spec_);
  }

 private:
  explicit InputSource(const libsplit::InputSpec& spec) : spec_(spec) {}
  libsplit::InputSpec spec_;
  std::vector<std::string> files_;
  std::optional<libsplit::IdxFile> idx_;
  std::string stream_;  // the IDX file or "camera:N"
#ifdef LIBSPLIT_WITH_OPENCV
  std::unique_ptr<cv::VideoCapture> camera_;
#endif
  int64_t count_ = 0;
};

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};
Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, size_t(std::ceil(q * double(v.size())) - 1))]; };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.max = v.back();
  for (double x : v) p.mean += x / double(v.size());
  return p;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "split-client: %s\n", msg.c_str());
  return 1;
}

// One strategy of --split and what its requests measured.
struct Run {
  std::string name;
  bool dynamic = false;
  libsplit::Strategy strategy;
  std::vector<double> head, encode, network, queue, tail, total, device_cpu;
  int64_t ok = 0, failures = 0, correct = 0, explorations = 0;
  size_t wire_bytes = 0, payload_bytes = 0, response_bytes = 0;
  std::map<std::string, int64_t> errors;
};

}  // namespace

// "a,b,,c" -> {"a", "b", "c"}
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  for (size_t a = 0; a < text.size();) {
    size_t b = text.find(',', a);
    if (b == std::string::npos) b = text.size();
    if (b > a) out.push_back(text.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:7070", bundle_dir, split = "", input, labels_path, json_path, log_level = "warn";
  std::string device = "cpu", codec;
  int64_t limit = -1;
  int top_k = 5, threads = 1;
  uint32_t deadline_ms = 5000;
  bool quiet = false, io_thread = false;
  CLI::App app{"split-client: split inference on the device with the tail on split-server"};
  app.add_option("--server", server, "split-server address HOST:PORT, or several separated by commas (failover in order)")->capture_default_str();
  app.add_option("--bundle", bundle_dir, "Bundle directory (manifest.json + TorchScript files)")->required();
  app.add_option("--split", split,
                 "Split id from the manifest, 'local' (whole model here), 'offload' (raw input to the server), "
                 "'offload-png' (the input as a lossless PNG), a local model id of the manifest (e.g. pruned50) or 'dynamic' (chosen per request from the measured "
                 "link and server); default: the manifest's default_split. Several, comma-separated, run each input through "
                 "every one in turn and report each (e.g. local,bf2,offload,dynamic)");
  std::string policy = "latency", power, only;
  double latency_bound_ms = 0, hysteresis = 0.10;
  uint32_t probe_idle_ms = 300;
  app.add_option("--policy", policy, "dynamic: latency (lowest latency), energy (lowest device energy) or bytes "
                                     "(fewest uplink bytes within --latency-bound-ms)")->capture_default_str();
  app.add_option("--latency-bound-ms", latency_bound_ms, "dynamic, policy bytes: the latency bound");
  app.add_option("--power-profile", power, "dynamic, policy energy: device watts as compute=W,transmit=W,idle=W "
                                           "(default compute=5,transmit=2,idle=1)");
  app.add_option("--hysteresis", hysteresis, "dynamic: switch only to a candidate this fraction cheaper")
      ->capture_default_str()->check(CLI::Range(0.0, 0.99));
  app.add_option("--probe-idle-ms", probe_idle_ms, "dynamic: probe the link after this long without a remote answer")
      ->capture_default_str();
  app.add_option("--only", only, "dynamic: comma-separated candidates to consider (local, offload, offload-png, split ids, "
                                 "local model ids)");
  std::string local_models, plan_file;
  app.add_option("--local-models", local_models,
                 "dynamic: the bundle's local models (e.g. pruned50) to consider besides the full one, "
                 "comma-separated; default: all of them; none: none")
      ->default_str("all");
  double min_accuracy = -1;
  app.add_option("--min-accuracy", min_accuracy,
                 "dynamic: leave out candidates whose top-1 recorded in the manifest is below this percentage "
                 "(local models, splits at their codec, offload as the full model)")
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--plan", plan_file,
                 "dynamic: a split-plan --json file; its recommended local model is then the one local model "
                 "considered besides the full one (with --local-models: joins those)")
      ->check(CLI::ExistingFile);
  app.add_option("--codec", codec,
                 "Bottleneck codec instead of the split's manifest codec: f32, f16, q8, q4, q2, q8c, q4c, q2c, "
                 "q8rans, q8zstd or s8rans (q8rans/s8rans need the split's entropy tables in the bundle)");
  app.add_option("--input", input,
                 "Image file, directory of images (flat, or class folders DIR/<label>/*.png|jpg|jpeg|bmp as "
                 "torchvision's ImageFolder: each image labelled by its folder, whose name must be one of the "
                 "bundle's labels; accuracy is then reported), IDX images file, or camera index")
      ->required();
  app.add_option("--labels", labels_path, "IDX labels file, to report accuracy");
  std::string predictions_path;
  app.add_option("--predictions", predictions_path,
                 "Write one JSON line per measured input and strategy to this file (created afresh), as each "
                 "request completes: index, path (the image file, or the IDX file / camera:N with #index), "
                 "strategy (that answered), label (its class folder's or the IDX label's name, or null), top_k "
                 "(class indices, best first), labels (their names), scores (softmax); a failed request has "
                 "\"error\" and empty lists instead; \"run\" names the --split entry when there are several");
  app.add_option("--limit", limit, "Process at most N inputs (default: all; camera: 100)");
  int64_t warmup = 0;
  app.add_option("--warmup", warmup, "Run the first N inputs before measuring; they are not counted (--limit includes them)")
      ->capture_default_str()->check(CLI::Range(int64_t(0), int64_t(1000000)));
  app.add_option("--json", json_path, "Write the summary as JSON to this file");
  std::string samples_path;
  int64_t pause_every = 0;
  bool shuffle = false;
  uint32_t gap_ms = 0;
  app.add_option("--samples", samples_path,
                 "Write one tab-separated line per measured request to this file: run (the --split named), input "
                 "index and name, strategy taken, start (monotonic clock, s), stage times in ms (head, encode, "
                 "network, queue, tail, total), request and reply bytes, predicted class, label, and status (ok, "
                 "or the error's code, the other fields then empty)");
  app.add_option("--pause-every", pause_every,
                 "After every N measured inputs (when more remain), print '# paused after input K' and wait for "
                 "a line on standard input before going on (end of input: go on without pausing); lets a "
                 "benchmark change the link between phases of one run")
      ->check(CLI::Range(int64_t(1), int64_t(1000000000)));
  app.add_flag("--shuffle", shuffle,
               "With several strategies: run each input through them in a new order (seeded by the input's "
               "index), so that no strategy always follows the same one");
  app.add_option("--gap-ms", gap_ms,
                 "Idle this long before each measured request (not counted): every request then starts from the "
                 "same state, e.g. a CPU quota's budget refilled")
      ->check(CLI::Range(0, 60000));
  double rate_hz = 0;
  app.add_option("--rate", rate_hz,
                 "Start measured requests at this many per second (one at a time: a request that takes longer "
                 "delays the next); default: each as soon as the previous answered")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", top_k, "Classes to return per input")->capture_default_str()->check(CLI::Range(1, 255));
  app.add_option("--deadline-ms", deadline_ms, "Deadline of each request")->capture_default_str();
  app.add_option("--threads", threads, "LibTorch intra-op threads on the device")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--device", device, "cpu, or cuda[:N] where LibTorch has CUDA")->capture_default_str();
  bool no_optimize = false;
  app.add_flag("--no-optimize", no_optimize,
               "Run the device's models as loaded instead of optimized for inference (frozen, batch norm folded "
               "into the convolutions, oneDNN convolutions where LibTorch has them)");
  std::string token_file;
  app.add_option("--token-file", token_file, "File holding the server's pre-shared token")->check(CLI::ExistingFile);
  uint32_t reconnect_max_ms = 5000;
  app.add_option("--reconnect-max-ms", reconnect_max_ms,
                 "Longest wait between reconnect attempts when the server is away (the wait doubles from 50 ms)")
      ->capture_default_str()->check(CLI::Range(50, 600000));
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key, tls_name;
  app.add_flag("--tls", tls, "Connect with TLS (the server runs with --tls-cert/--tls-key)");
  app.add_option("--tls-ca", tls_ca, "PEM CA the server's certificate must chain to (default: the system's trust store)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-server-name", tls_name, "Name the server's certificate must carry (default: the --server host)");
  app.add_option("--tls-cert", tls_cert, "PEM client certificate, for a server that asks for one")->check(CLI::ExistingFile);
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert")->check(CLI::ExistingFile);
  app.add_flag("--io-thread", io_thread,
               "Give the connection its own I/O thread (default: this loop drives the socket itself, "
               "one request at a time, which saves two thread hand-offs per request)");
  uint32_t busy_poll_us = 0;
  app.add_option("--busy-poll-us", busy_poll_us,
                 "Wait for each reply polling the socket without sleeping for up to this long before blocking: "
                 "no wake-up to pay for a reply that comes within it, at the price of a busy core (0 = off; "
                 "only with the default caller-driven connection, not --io-thread or --split dynamic)")
      ->capture_default_str()->check(CLI::Range(0, 1000000));
  app.add_flag("--quiet", quiet, "Print only the summary, not one line per input");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line per request, visible as it happens (pipes too)
  std::string token;
  if (!token_file.empty()) {
    std::ifstream f(token_file);
    std::getline(f, token);
    if (token.empty() || token.size() > 255) return fail(token_file + ": the token must be one line of 1 to 255 bytes");
  }

  libsplit::LogLevel level;
  if (!libsplit::parse_log_level(log_level, &level)) return fail("--log-level \"" + log_level + "\" is not a level");
  libsplit::set_log_level(level);

  auto manifest = libsplit::load_manifest(bundle_dir);
  if (!manifest.ok()) return fail(manifest.status().to_string());
  // A directory's images, and its class folders checked against the labels, before anything loads.
  std::optional<DirectoryInputs> dir_inputs;
  if (is_dir(input)) {
    auto d = scan_directory(input, manifest->labels);
    if (!d.ok()) return fail(d.status().message());
    dir_inputs = std::move(*d);
    if (!dir_inputs->labels.empty() && !labels_path.empty())
      return fail("--labels: " + input + " has class folders, which label its images already");
  }
  if (split.empty())
    split = !manifest->default_split.empty() ? manifest->default_split
            : manifest->splits.empty()       ? "local"
                                             : manifest->splits[0].id;
  // One run per strategy named; each input goes through every run in turn (interleaved, so that
  // a machine whose speed drifts affects them alike).
  std::vector<Run> runs;
  for (const auto& name : split_list(split)) {
    if (std::any_of(runs.begin(), runs.end(), [&](const Run& r) { return r.name == name; }))
      return fail("--split: \"" + name + "\" is named twice");
    Run r;
    r.name = name;
    r.dynamic = name == "dynamic";
    if (!r.dynamic) {
      auto s = libsplit::Strategy::parse(name, *manifest);
      if (!s.ok()) return fail(s.status().to_string());
      r.strategy = *s;
    }
    runs.push_back(std::move(r));
  }
  if (runs.empty()) return fail("--split: no strategy named");
  const bool dynamic = std::any_of(runs.begin(), runs.end(), [](const Run& r) { return r.dynamic; });
  const bool all_dynamic = std::all_of(runs.begin(), runs.end(), [](const Run& r) { return r.dynamic; });
  if (busy_poll_us > 0 && (io_thread || dynamic))
    return fail("--busy-poll-us needs the caller-driven connection: not with --io-thread or --split dynamic");
  libsplit::DynamicOptions dopt;
  if (dynamic) {
    auto p = libsplit::parse_policy(policy);
    if (!p.ok()) return fail("--policy: " + p.status().message());
    dopt.policy = *p;
    if (!power.empty()) {
      auto pp = libsplit::PowerProfile::parse(power);
      if (!pp.ok()) return fail("--power-profile: " + pp.status().message());
      dopt.power = *pp;
    }
    dopt.latency_bound_ms = latency_bound_ms;
    dopt.hysteresis = hysteresis;
    dopt.probe_idle_ms = probe_idle_ms;
    dopt.default_deadline_ms = deadline_ms;
    dopt.only = split_list(only);
    dopt.local_models = split_list(local_models);
    dopt.min_accuracy = min_accuracy;
    if (!plan_file.empty()) {
      auto model = libsplit::plan::read_recommended_local_model(plan_file);
      if (!model.ok()) return fail("--plan: " + model.status().to_string());
      if (!model->empty() && std::find(dopt.local_models.begin(), dopt.local_models.end(), *model) == dopt.local_models.end())
        dopt.local_models.push_back(*model);
    }
  } else if (!only.empty() || policy != "latency" || !power.empty() || latency_bound_ms > 0 || !local_models.empty() ||
             !plan_file.empty() || min_accuracy >= 0) {
    return fail("--policy, --power-profile, --latency-bound-ms, --only, --local-models, --min-accuracy and --plan "
                "apply to --split dynamic");
  }
  if (!codec.empty()) {
    if (runs.size() != 1) return fail("--codec applies to one split; name only that one in --split");
    auto& st = runs[0].strategy;
    if (runs[0].dynamic) return fail("--codec applies to a fixed split, not to dynamic");
    if (st.kind != libsplit::Strategy::Kind::kSplit) return fail("--codec applies to a split, not to " + split);
    auto c = libsplit::parse_codec(codec);
    if (!c.ok()) return fail("--codec: " + c.status().message());
    if (libsplit::is_image(*c)) return fail("--codec: " + codec + " is for offload (use --split offload or offload-png), not a split");
    st.codec = codec;
  }

  libsplit::BundleOptions bo;
  bo.device = device;
  bo.load_tails = false;
  bo.intra_op_threads = threads;
  bo.optimize = !no_optimize;
  // Dynamic with local models among its candidates: all of the bundle's by default.
  bool dynamic_local = dynamic && dopt.local_models.empty() && !manifest->local.empty();
  for (const auto& id : dopt.local_models) dynamic_local |= manifest->find_local(id) >= 0;
  for (const auto& id : dopt.only) dynamic_local |= manifest->find_local(id) >= 0;
  bool remote = false;  // a fixed run that needs the server
  bo.load_full = dynamic;
  bo.load_heads = dynamic;
  bo.load_local = dynamic_local;
  for (const auto& r : runs) {
    if (r.dynamic) continue;
    const auto kind = r.strategy.kind;
    bo.load_full |= kind == libsplit::Strategy::Kind::kLocal && r.strategy.local < 0;
    bo.load_heads |= kind == libsplit::Strategy::Kind::kSplit;
    bo.load_local |= r.strategy.local >= 0;
    remote |= kind != libsplit::Strategy::Kind::kLocal;
  }
  auto bundle = libsplit::Bundle::open(bundle_dir, bo);
  if (!bundle.ok()) return fail(bundle.status().to_string());
  const auto& m = (*bundle)->manifest();

  std::unique_ptr<libsplit::Client> client;
  if (dynamic || remote) {
    libsplit::ClientOptions co;
    co.server = server;
    co.model = m.name;
    co.version = m.version;
    co.default_deadline_ms = deadline_ms;
    co.io_thread = io_thread || dynamic;  // dynamic probes the link in the background
    co.busy_poll_us = busy_poll_us;
    co.start_offline = all_dynamic;      // and runs locally until the server is there
    co.auth_token = token;
    co.reconnect_max_ms = reconnect_max_ms;
    co.tls = tls || !tls_ca.empty() || !tls_cert.empty();
    co.tls_ca_file = tls_ca;
    co.tls_server_name = tls_name;
    co.tls_cert_file = tls_cert;
    co.tls_key_file = tls_key;
    auto c = libsplit::Client::connect(co);
    if (!c.ok()) return fail(c.status().to_string());
    client = std::move(*c);
  }
  auto source = InputSource::open(input, m.input, dir_inputs ? &*dir_inputs : nullptr);
  if (!source.ok()) return fail(source.status().to_string());
  auto session = libsplit::SplitSession::create(bundle->get(), remote ? client.get() : nullptr);
  if (!session.ok()) return fail(session.status().to_string());
  std::unique_ptr<libsplit::DynamicSession> dyn;
  if (dynamic) {
    auto sample = (*source)->get(0);
    if (!sample.ok()) return fail((*source)->name(0) + ": " + sample.status().to_string());
    auto d = libsplit::DynamicSession::create(bundle->get(), client.get(), dopt, &*sample);
    if (!d.ok()) return fail(d.status().to_string());
    dyn = std::move(*d);
    if (!quiet) {
      const auto l = dyn->link();
      std::printf("# dynamic, policy %s: link %.2f Mbit/s, round trip %.2f ms (%llu samples)\n", policy.c_str(),
                  l.rate_bps / 1e6, l.rtt_us / 1000, (unsigned long long)l.samples);
      for (const auto& e : dyn->estimates())
        std::printf("#   %-12s %s device %.3f ms, %.0f B, tail %.3f ms -> %.3f ms, %.4f J\n", e.name.c_str(),
                    e.available ? "  " : "na", e.device_us / 1000, e.bytes, e.tail_us / 1000, e.latency_us / 1000,
                    e.energy_j);
    }
  }
  std::optional<libsplit::IdxFile> labels;
  if (!labels_path.empty()) {
    auto l = libsplit::IdxFile::open(labels_path);
    if (!l.ok()) return fail(l.status().to_string());
    if (l->dims().size() != 1) return fail(labels_path + ": expected a 1-D IDX labels file");
    labels = std::move(*l);
  }
  const bool several = runs.size() > 1;
  int64_t n = (*source)->count();
  if (n < 0) n = limit >= 0 ? limit : 100;
  if (limit >= 0) n = std::min(n, limit);
  if (labels && labels->count() < n)
    return fail(labels_path + ": has " + std::to_string(labels->count()) + " labels for " + std::to_string(n) + " inputs");
  // Each input's true class, from --labels or the class folders (accuracy is reported with them).
  const bool labelled = labels || (dir_inputs && !dir_inputs->labels.empty());
  auto truth = [&](int64_t i) { return labels ? int(labels->record(i)[0]) : dir_inputs->labels[size_t(i)]; };

  auto run_one = [&](const Run& run, const Tensor& pixels) {
    return run.dynamic ? dyn->run(pixels, top_k) : (*session)->run(pixels, run.strategy, top_k);
  };
  for (int64_t i = 0; i < std::min(warmup, n); ++i) {
    auto pixels = (*source)->get(i);
    if (!pixels.ok()) continue;
    for (const auto& run : runs) {
      if (gap_ms) std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
      auto r = run_one(run, *pixels);
      if (!r.ok() && !quiet)
        std::fprintf(stderr, "split-client: warm-up %s (%s): %s\n", (*source)->name(i).c_str(), run.name.c_str(),
                     r.status().to_string().c_str());
    }
  }
  std::map<std::string, uint64_t> warm_counts;
  std::map<std::string, uint64_t> warm_fallbacks;
  if (dyn) {
    warm_counts = dyn->counts();
    warm_fallbacks = dyn->fallbacks();
  }
  std::ofstream predictions;
  if (!predictions_path.empty()) {
    predictions.open(predictions_path, std::ios::trunc);
    if (!predictions) return fail(predictions_path + ": cannot write");
  }
  // One line of --predictions; `r` null for a failure, described by `error`.
  auto predict_line = [&](int64_t i, const Run& run, const libsplit::Inference* r, const std::string& error) {
    nlohmann::ordered_json j;
    j["index"] = i;
    j["path"] = (*source)->path(i);
    if (several) j["run"] = run.name;
    j["strategy"] = r ? r->strategy : run.name;
    const int label = labelled ? truth(i) : -1;
    j["label"] = label >= 0 && size_t(label) < m.labels.size() ? nlohmann::ordered_json(m.labels[size_t(label)]) : nullptr;
    j["top_k"] = nlohmann::ordered_json::array();
    j["labels"] = nlohmann::ordered_json::array();
    j["scores"] = nlohmann::ordered_json::array();
    if (r)
      for (const auto& c : r->top) {
        j["top_k"].push_back(c.index);
        j["labels"].push_back(c.index < m.labels.size() ? m.labels[c.index] : "?");
        j["scores"].push_back(c.score);
      }
    else
      j["error"] = error;
    predictions << j.dump() << '\n';
    predictions.flush();
  };
  std::ofstream samples;
  if (!samples_path.empty()) {
    samples.open(samples_path);
    if (!samples) return fail(samples_path + ": cannot write");
    samples << "run\tindex\tinput\tstrategy\tstart_s\thead_ms\tencode_ms\tnetwork_ms\tqueue_ms\ttail_ms\ttotal_ms\trequest_bytes\t"
               "response_bytes\tpredicted\tlabel\tstatus\n";
  }
  auto next_start = std::chrono::steady_clock::now();
  const auto measured_from = next_start;
  int64_t input_failures = 0;
  bool pausing = pause_every > 0;
  for (int64_t i = std::min(warmup, n); i < n; ++i) {
    const int64_t k = i - std::min(warmup, n);  // measured inputs before this one
    if (pausing && k > 0 && k % pause_every == 0) {
      if (samples.is_open()) samples.flush();
      std::printf("# paused after input %lld\n", (long long)(i - 1));
      std::fflush(stdout);
      char line[256];
      if (!std::fgets(line, sizeof line, stdin)) pausing = false;  // no one to wait for: go on
      next_start = std::chrono::steady_clock::now();
    }
    auto pixels = (*source)->get(i);
    if (!pixels.ok()) {
      ++input_failures;
      std::fprintf(stderr, "split-client: %s: %s\n", (*source)->name(i).c_str(), pixels.status().to_string().c_str());
      if (predictions.is_open())
        for (const auto& run : runs) predict_line(i, run, nullptr, pixels.status().to_string());
      continue;
    }
    std::vector<size_t> order(runs.size());
    for (size_t j = 0; j < order.size(); ++j) order[j] = j;
    if (shuffle) std::shuffle(order.begin(), order.end(), std::mt19937(uint32_t(i) * 2654435761u + 1));
    for (size_t o : order) {
      auto& run = runs[o];
      if (gap_ms) std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
      if (rate_hz > 0) {  // the request process itself: one interval after the previous start, or now if later
        const auto now = std::chrono::steady_clock::now();
        if (next_start > now) std::this_thread::sleep_until(next_start);
        next_start = std::max(now, next_start) + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                     std::chrono::duration<double>(1.0 / rate_hz));
      }
      const double start_s =
          std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
      auto r = run_one(run, *pixels);
      if (!r.ok()) {
        ++run.failures;
        ++run.errors[libsplit::status_code_name(r.status().code())];
        std::fprintf(stderr, "split-client: %s%s%s: %s\n", (*source)->name(i).c_str(), several ? " " : "",
                     several ? run.name.c_str() : "", r.status().to_string().c_str());
        if (samples.is_open())
          samples << run.name << '\t' << i << '\t' << (*source)->name(i) << "\t-\t" << std::fixed
                  << std::setprecision(6) << start_s << "\t\t\t\t\t\t\t\t\t\t\t" << libsplit::status_code_name(r.status().code())
                  << '\n';
        if (predictions.is_open()) predict_line(i, run, nullptr, r.status().to_string());
        continue;
      }
      ++run.ok;
      run.explorations += r->exploration;
      run.head.push_back(r->head_us / 1000);
      run.encode.push_back(r->encode_us / 1000);
      run.network.push_back(r->network_us / 1000);
      run.queue.push_back(r->server_queue_us / 1000);
      run.tail.push_back(r->tail_us / 1000);
      run.total.push_back(r->total_us / 1000);
      run.device_cpu.push_back(r->device_cpu_us / 1000);
      run.wire_bytes += r->request_bytes;
      run.payload_bytes += r->payload_bytes;
      run.response_bytes += r->response_bytes;
      const uint32_t pred = r->top.empty() ? 0 : r->top[0].index;
      int label = -1;
      if (labelled) {
        label = truth(i);
        run.correct += int(pred) == label;
      }
      if (predictions.is_open()) predict_line(i, run, &*r, "");
      if (samples.is_open()) {
        char b[300];
        std::snprintf(b, sizeof b, "\t%.6f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%zu\t%zu\t%u\t%d\tok\n", start_s, r->head_us / 1000,
                      r->encode_us / 1000, r->network_us / 1000, r->server_queue_us / 1000, r->tail_us / 1000,
                      r->total_us / 1000, r->request_bytes, r->response_bytes, pred, label);
        samples << run.name << '\t' << i << '\t' << (*source)->name(i) << '\t' << r->strategy << b;
      }
      if (!quiet) {
        std::printf("%s\t%s\t%.3f", (*source)->name(i).c_str(), pred < m.labels.size() ? m.labels[pred].c_str() : "?",
                    r->top.empty() ? 0.0 : r->top[0].score);
        if (labelled) std::printf("\tlabel=%s", label < int(m.labels.size()) ? m.labels[size_t(label)].c_str() : "?");
        std::printf("\t%s%s%s\t%.3f ms", several && run.dynamic ? "dynamic/" : "", r->strategy.c_str(),
                    several && !run.dynamic && r->strategy != run.name ? ("/" + run.name).c_str() : "",
                    r->total_us / 1000);
        if (!r->fallback.empty()) std::printf("\tfallback=%s", r->fallback.c_str());
        if (r->exploration) std::printf("\texploration");
        std::printf("\n");
      }
    }
  }
  const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - measured_from).count();
  if (samples.is_open() && !samples.flush()) return fail(samples_path + ": write failed");
  if (predictions.is_open() && !predictions.flush()) return fail(predictions_path + ": write failed");

  std::map<std::string, uint64_t> counts, fallbacks;
  if (dyn) {
    counts = dyn->counts();
    for (auto& [k, v] : counts) v -= warm_counts.count(k) ? warm_counts[k] : 0;  // measured requests only
    fallbacks = dyn->fallbacks();
    for (auto& [k, v] : fallbacks) v -= warm_fallbacks.count(k) ? warm_fallbacks[k] : 0;
  }
  std::string js = several ? "[\n" : "";
  int64_t failures = input_failures;
  for (size_t k = 0; k < runs.size(); ++k) {
    const auto& run = runs[k];
    failures += run.failures;
    const int64_t ok = run.ok;
    const std::string codec_used = run.dynamic || run.strategy.kind != libsplit::Strategy::Kind::kSplit ? ""
                                   : codec.empty() ? libsplit::codec_name(m.splits[run.strategy.split].codec)
                                                   : codec;
    const auto ph = percentiles(run.head), pe = percentiles(run.encode), pn = percentiles(run.network),
               pq = percentiles(run.queue), pt = percentiles(run.tail), pa = percentiles(run.total),
               pc = percentiles(run.device_cpu);
    const double accuracy = ok ? 100.0 * double(run.correct) / double(ok) : 0.0;
    const double wire_per = ok ? double(run.wire_bytes) / double(ok) : 0.0;
    const double payload_per = ok ? double(run.payload_bytes) / double(ok) : 0.0;
    std::printf("\n%s %s, strategy %s%s%s: %lld requests, %lld failures\n", m.name.c_str(), m.version.c_str(),
                run.name.c_str(), codec_used.empty() ? "" : ", codec ", codec_used.c_str(), (long long)ok,
                (long long)(run.failures + input_failures));
    if (labelled) std::printf("accuracy: %.2f%% (%lld/%lld)\n", accuracy, (long long)run.correct, (long long)ok);
    std::printf("wire bytes per request: %.1f (payload %.1f, raw input %lld)\n", wire_per, payload_per,
                (long long)libsplit::Tensor::element_count(m.input.shape));
    std::printf("latency ms      p50      p90      p99      max\n");
    auto row = [](const char* name, const Percentiles& p) {
      std::printf("  %-8s %8.3f %8.3f %8.3f %8.3f\n", name, p.p50, p.p90, p.p99, p.max);
    };
    row("head", ph);
    row("encode", pe);
    row("network", pn);
    row("queue", pq);
    row("tail", pt);
    row("total", pa);
    if (!run.errors.empty()) {
      std::printf("failures by status:");
      for (const auto& [code, v] : run.errors) std::printf(" %s=%lld", code.c_str(), (long long)v);
      std::printf("\n");
    }
    if (run.dynamic) {
      std::printf("strategies:");
      for (const auto& [s, v] : counts) std::printf(" %s=%llu", s.c_str(), (unsigned long long)v);
      std::printf(" (explorations %lld)\n", (long long)run.explorations);
      if (!fallbacks.empty()) {
        std::printf("local fallbacks:");
        for (const auto& [s, v] : fallbacks) std::printf(" %s=%llu", s.c_str(), (unsigned long long)v);
        std::printf("\n");
      }
    }
    if (json_path.empty()) continue;
    auto jp = [](const Percentiles& p) {
      char b[200];
      std::snprintf(b, sizeof b, "{\"p50\": %.4f, \"p90\": %.4f, \"p99\": %.4f, \"max\": %.4f, \"mean\": %.4f}", p.p50,
                    p.p90, p.p99, p.max, p.mean);
      return std::string(b);
    };
    std::ostringstream f;
    f << "{\n  \"bundle\": \"" << m.name << "\",\n  \"version\": \"" << m.version << "\",\n  \"strategy\": \"" << run.name
      << "\",\n  \"codec\": \"" << codec_used << "\",\n  \"requests\": " << ok << ",\n  \"failures\": "
      << run.failures + input_failures << ",\n";
    if (labelled) f << "  \"accuracy\": " << accuracy << ",\n  \"correct\": " << run.correct << ",\n";
    if (run.dynamic) {
      auto jmap = [](const std::map<std::string, uint64_t>& mp) {
        std::string o = "{";
        for (const auto& [s, v] : mp) o += (o.size() > 1 ? ", \"" : "\"") + s + "\": " + std::to_string(v);
        return o + "}";
      };
      f << "  \"policy\": \"" << policy << "\",\n  \"strategies\": " << jmap(counts) << ",\n  \"fallbacks\": "
        << jmap(fallbacks) << ",\n  \"explorations\": " << run.explorations << ",\n";
    }
    // Throughput of one run when several share the process: its requests over the time they took.
    double busy_s = 0;
    for (double t : run.total) busy_s += t / 1000;
    const double run_s = several ? busy_s : elapsed_s;
    f << "  \"wire_bytes_per_request\": " << wire_per << ",\n  \"payload_bytes_per_request\": " << payload_per
      << ",\n  \"response_bytes_per_request\": " << (ok ? double(run.response_bytes) / double(ok) : 0.0)
      << ",\n  \"rate_hz\": " << rate_hz << ",\n  \"elapsed_s\": " << run_s
      << ",\n  \"throughput_rps\": " << (run_s > 0 ? double(ok) / run_s : 0.0) << ",\n  \"latency_ms\": {\n    \"head\": "
      << jp(ph) << ",\n    \"encode\": " << jp(pe) << ",\n    \"network\": " << jp(pn) << ",\n    \"queue\": " << jp(pq)
      << ",\n    \"tail\": " << jp(pt) << ",\n    \"total\": " << jp(pa) << ",\n    \"device_cpu\": " << jp(pc)
      << "\n  }\n}";
    js += f.str() + (several ? (k + 1 < runs.size() ? ",\n" : "\n]\n") : "\n");
  }
  if (!json_path.empty()) {
    std::ofstream f(json_path);
    if (!f || !(f << js)) return fail(json_path + ": cannot write");
  }
  return failures == 0 ? 0 : 3;
}
