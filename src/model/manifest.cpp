#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "libsplit/bundle.h"
#include "model/resize.h"

namespace libsplit {

using detail::cat;
using detail::invalid_argument;
using json = nlohmann::json;

namespace {

// Field access that names the file and the JSON path in every error.
class Fields {
 public:
  Fields(const json& j, std::string origin, std::string path)
      : j_(j), origin_(std::move(origin)), path_(std::move(path)) {}

  Status err(const std::string& field, const std::string& expected, const json* actual) const {
    return invalid_argument(origin_, ": field \"", where(field), "\": expected ", expected, ", got ",
                            actual ? actual->dump() : std::string("nothing (missing)"));
  }
  std::string where(const std::string& field) const { return path_.empty() ? field : path_ + "." + field; }
  const json* get(const std::string& f) const {
    auto it = j_.find(f);
    return it == j_.end() ? nullptr : &*it;
  }

  Status str(const std::string& f, std::string* out, bool required = true) const {
    const json* v = get(f);
    if (!v) return required ? err(f, "a string", nullptr) : Status();
    if (!v->is_string() || v->get<std::string>().empty()) return err(f, "a non-empty string", v);
    *out = v->get<std::string>();
    return {};
  }
  Status integer(const std::string& f, int* out) const {
    const json* v = get(f);
    if (!v || !v->is_number_integer()) return err(f, "an integer", v);
    *out = v->get<int>();
    return {};
  }
  Status number(const std::string& f, double* out, bool required) const {
    const json* v = get(f);
    if (!v) return required ? err(f, "a number", nullptr) : Status();
    if (!v->is_number()) return err(f, "a number", v);
    *out = v->get<double>();
    return {};
  }
  // An optional non-negative integer.
  Status count(const std::string& f, int64_t* out) const {
    const json* v = get(f);
    if (!v) return Status();
    if (!v->is_number_integer() || v->get<int64_t>() < 0) return err(f, "a non-negative integer", v);
    *out = v->get<int64_t>();
    return Status();
  }
  Status shape(const std::string& f, std::vector<int64_t>* out) const {
    const json* v = get(f);
    if (!v || !v->is_array() || v->empty() || v->size() > 8)
      return err(f, "a shape: an array of 1 to 8 positive integers", v);
    out->clear();
    for (const auto& d : *v) {
      if (!d.is_number_integer() || d.get<int64_t>() <= 0 || d.get<int64_t>() > (1 << 24))
        return err(f, "a shape: an array of 1 to 8 positive integers", v);
      out->push_back(d.get<int64_t>());
    }
    return {};
  }
  Status floats(const std::string& f, std::vector<float>* out) const {
    const json* v = get(f);
    if (!v || !v->is_array() || v->empty()) return err(f, "a non-empty array of numbers", v);
    out->clear();
    for (const auto& d : *v) {
      if (!d.is_number()) return err(f, "a non-empty array of numbers", v);
      out->push_back(d.get<float>());
    }
    return {};
  }
  Status object(const std::string& f, const json** out) const {
    const json* v = get(f);
    if (!v || !v->is_object()) return err(f, "an object", v);
    *out = v;
    return {};
  }

 private:
  const json& j_;
  std::string origin_, path_;
};

// A file name inside the bundle: no directories, no "..".
Status check_file_name(const Fields& f, const std::string& field, const std::string& name) {
  if (name.find('/') != std::string::npos || name.find('\\') != std::string::npos || name == "." || name == "..") {
    json v = name;
    return f.err(field, "a plain file name inside the bundle directory", &v);
  }
  return {};
}

// "input.preprocess": {"resize": N, "crop": [H, W], "interpolation": "area"|"bilinear"|"nearest"}.
// Every field is checked, unknown ones included: a misspelt field would otherwise leave the C++
// side resizing differently from the Python side that trained the model.
Status parse_preprocess(const json& j, const std::string& origin, const std::vector<int64_t>& shape,
                        PreprocessSpec* p) {
  Fields f(j, origin, "input.preprocess");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "resize" && it.key() != "crop" && it.key() != "interpolation")
      return f.err(it.key(), "no such field (input.preprocess has resize, crop and interpolation)", &*it);
  const json* r = f.get("resize");
  if (!r || !r->is_number_integer() || r->get<int64_t>() <= 0 || r->get<int64_t>() > (1 << 24))
    return f.err("resize", "a positive integer (the length of the image's shorter side after resizing)", r);
  p->resize = r->get<int>();
  const json* c = f.get("crop");
  if (!c || !c->is_array() || c->size() != 2 || !(*c)[0].is_number_integer() || !(*c)[1].is_number_integer())
    return f.err("crop", "[height, width] of the centre crop (two integers)", c);
  const int64_t h = shape[2], w = shape[3];
  if ((*c)[0].get<int64_t>() != h || (*c)[1].get<int64_t>() != w)
    return f.err("crop", cat("[", h, ", ", w, "] (the height and width of input.shape)"), c);
  p->crop_height = int(h);
  p->crop_width = int(w);
  if (p->resize < std::max(h, w))
    return f.err("resize", cat("at least ", std::max(h, w), " (the crop's larger side, ", shape[2] >= shape[3] ? "height" : "width", ")"), r);
  LIBSPLIT_RETURN_IF_ERROR(f.str("interpolation", &p->interpolation, /*required=*/false));
  detail::Interpolation mode;
  if (!detail::parse_interpolation(p->interpolation, &mode)) {
    json v = p->interpolation;
    return f.err("interpolation", "\"area\", \"bilinear\" or \"nearest\"", &v);
  }
  return {};
}

}  // namespace

int Manifest::find_split(const std::string& id) const {
  for (size_t i = 0; i < splits.size(); ++i)
    if (splits[i].id == id) return int(i);
  return -1;
}

int Manifest::find_local(const std::string& id) const {
  for (size_t i = 0; i < local.size(); ++i)
    if (local[i].id == id) return int(i);
  return -1;
}

Result<Manifest> parse_manifest(const std::string& text, const std::string& origin) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_argument(origin, ": not valid JSON");
  if (!j.is_object()) return invalid_argument(origin, ": expected a JSON object at the top level");
  Manifest m;
  Fields top(j, origin, "");
  LIBSPLIT_RETURN_IF_ERROR(top.integer("format_version", &m.format_version));
  if (m.format_version != kManifestFormatVersion) {
    json v = m.format_version;
    return top.err("format_version", cat(kManifestFormatVersion, " (the version this libsplit reads)"), &v);
  }
  LIBSPLIT_RETURN_IF_ERROR(top.str("name", &m.name));
  LIBSPLIT_RETURN_IF_ERROR(top.str("version", &m.version));
  m.weights = "trained";
  LIBSPLIT_RETURN_IF_ERROR(top.str("weights", &m.weights, /*required=*/false));
  if (m.weights != "trained" && m.weights != "random") {
    json v = m.weights;
    return top.err("weights", "\"trained\" or \"random\"", &v);
  }
  const json* labels = top.get("labels");
  if (!labels || !labels->is_array() || labels->empty())
    return top.err("labels", "a non-empty array of strings", labels);
  for (const auto& l : *labels) {
    if (!l.is_string()) return top.err("labels", "a non-empty array of strings", labels);
    m.labels.push_back(l.get<std::string>());
  }

  const json* input;
  LIBSPLIT_RETURN_IF_ERROR(top.object("input", &input));
  Fields in(*input, origin, "input");
  LIBSPLIT_RETURN_IF_ERROR(in.shape("shape", &m.input.shape));
  if (m.input.shape.size() != 4 || m.input.shape[0] != 1) {
    json v = m.input.shape;
    return in.err("shape", "[1, C, H, W]", &v);
  }
  LIBSPLIT_RETURN_IF_ERROR(in.str("dtype", &m.input.dtype));
  if (m.input.dtype != "float32") {
    json v = m.input.dtype;
    return in.err("dtype", "\"float32\"", &v);
  }
  LIBSPLIT_RETURN_IF_ERROR(in.floats("mean", &m.input.mean));
  LIBSPLIT_RETURN_IF_ERROR(in.floats("std", &m.input.std));
  const size_t channels = size_t(m.input.shape[1]);
  if (m.input.mean.size() != channels) return in.err("mean", cat(channels, " values (one per channel)"), in.get("mean"));
  if (m.input.std.size() != channels) return in.err("std", cat(channels, " values (one per channel)"), in.get("std"));
  for (float s : m.input.std)
    if (!(s > 0)) return in.err("std", "positive values", in.get("std"));
  LIBSPLIT_RETURN_IF_ERROR(in.str("channel_order", &m.input.channel_order));
  const bool gray = m.input.channel_order == "gray";
  if (!(gray && channels == 1) && !((m.input.channel_order == "rgb" || m.input.channel_order == "bgr") && channels == 3)) {
    json v = m.input.channel_order;
    return in.err("channel_order", cat("\"gray\" for 1 channel or \"rgb\"/\"bgr\" for 3 (shape has ", channels, ")"), &v);
  }
  if (const json* pp = in.get("preprocess")) {
    if (!pp->is_object()) return in.err("preprocess", "an object {\"resize\": N, \"crop\": [H, W], \"interpolation\": ...}", pp);
    LIBSPLIT_RETURN_IF_ERROR(parse_preprocess(*pp, origin, m.input.shape, &m.input.preprocess.emplace()));
  }

  LIBSPLIT_RETURN_IF_ERROR(top.str("full", &m.full));
  LIBSPLIT_RETURN_IF_ERROR(check_file_name(top, "full", m.full));
  const json* output;
  LIBSPLIT_RETURN_IF_ERROR(top.object("output", &output));
  Fields out(*output, origin, "output");
  LIBSPLIT_RETURN_IF_ERROR(out.shape("shape", &m.output_shape));
  if (m.output_shape.size() != 2 || m.output_shape[0] != 1 || size_t(m.output_shape[1]) != m.labels.size()) {
    json v = m.output_shape;
    return out.err("shape", cat("[1, ", m.labels.size(), "] (one score per label)"), &v);
  }
  if (const json* acc = top.get("accuracy")) {
    if (!acc->is_object()) return top.err("accuracy", "an object", acc);
    LIBSPLIT_RETURN_IF_ERROR(Fields(*acc, origin, "accuracy").number("full", &m.accuracy_full, false));
  }

  if (const json* cx = top.get("complexity")) {
    if (!cx->is_object()) return top.err("complexity", "an object", cx);
    Fields cf(*cx, origin, "complexity");
    LIBSPLIT_RETURN_IF_ERROR(cf.count("params", &m.params_full));
    LIBSPLIT_RETURN_IF_ERROR(cf.count("macs", &m.macs_full));
  }

  const json* splits = top.get("splits");
  if (!splits || !splits->is_array()) return top.err("splits", "an array", splits);
  std::set<std::string> ids;
  for (size_t i = 0; i < splits->size(); ++i) {
    const json& sj = (*splits)[i];
    const std::string path = cat("splits[", i, "]");
    if (!sj.is_object()) return top.err(path, "an object", &sj);
    Fields f(sj, origin, path);
    SplitSpec s;
    LIBSPLIT_RETURN_IF_ERROR(f.str("id", &s.id));
    if (s.id == "local" || s.id == "offload" || s.id == "dynamic") {
      json v = s.id;
      return f.err("id", "an id other than the reserved local/offload/dynamic", &v);
    }
    if (!ids.insert(s.id).second) {
      json v = s.id;
      return f.err("id", "an id not used by another split", &v);
    }
    LIBSPLIT_RETURN_IF_ERROR(f.str("kind", &s.kind));
    if (s.kind != "bottlefit" && s.kind != "natural" && s.kind != "variational") {
      json v = s.kind;
      return f.err("kind", "\"bottlefit\", \"natural\" or \"variational\"", &v);
    }
    LIBSPLIT_RETURN_IF_ERROR(f.str("head", &s.head));
    LIBSPLIT_RETURN_IF_ERROR(check_file_name(f, "head", s.head));
    LIBSPLIT_RETURN_IF_ERROR(f.str("tail", &s.tail));
    LIBSPLIT_RETURN_IF_ERROR(check_file_name(f, "tail", s.tail));
    const json* bn;
    LIBSPLIT_RETURN_IF_ERROR(f.object("bottleneck", &bn));
    Fields bf(*bn, origin, path + ".bottleneck");
    LIBSPLIT_RETURN_IF_ERROR(bf.shape("shape", &s.bottleneck_shape));
    if (s.bottleneck_shape[0] != 1) {
      json v = s.bottleneck_shape;
      return bf.err("shape", "a shape with batch dimension 1", &v);
    }
    LIBSPLIT_RETURN_IF_ERROR(bf.str("dtype", &s.bottleneck_dtype));
    if (s.bottleneck_dtype != "float32") {
      json v = s.bottleneck_dtype;
      return bf.err("dtype", "\"float32\"", &v);
    }
    std::string codec = "q8";
    LIBSPLIT_RETURN_IF_ERROR(f.str("codec", &codec));
    auto spec = parse_codec(codec);
    if (!spec.ok() || spec->kind == CodecKind::kImageU8) {
      json v = codec;
      return f.err("codec", "one of f32, f16, q8, q4, q2, q8c, q4c, q2c, q8rans, q8zstd, s8rans", &v);
    }
    s.codec = *spec;
    LIBSPLIT_RETURN_IF_ERROR(f.str("tables", &s.tables, /*required=*/false));
    if (!s.tables.empty()) LIBSPLIT_RETURN_IF_ERROR(check_file_name(f, "tables", s.tables));
    if (needs_tables(s.codec) && s.tables.empty()) {
      json v = nullptr;
      return f.err("tables", cat("an entropy tables file (codec ", codec, " needs one)"), &v);
    }
    if (s.codec.kind == CodecKind::kQuantPerChannel && s.bottleneck_shape.size() < 2) {
      json v = codec;
      return f.err("codec", "a per-tensor codec (per-channel needs a [N, C, ...] bottleneck)", &v);
    }
    if (const json* acc = f.get("accuracy")) {
      if (!acc->is_object()) return f.err("accuracy", "an object", acc);
      Fields af(*acc, origin, path + ".accuracy");
      LIBSPLIT_RETURN_IF_ERROR(af.number("float", &s.accuracy_float, false));
      LIBSPLIT_RETURN_IF_ERROR(af.number("codec", &s.accuracy_codec, false));
    }
    m.splits.push_back(std::move(s));
  }
  if (const json* local = top.get("local")) {
    if (!local->is_array()) return top.err("local", "an array", local);
    for (size_t i = 0; i < local->size(); ++i) {
      const json& lj = (*local)[i];
      const std::string path = cat("local[", i, "]");
      if (!lj.is_object()) return top.err(path, "an object", &lj);
      Fields f(lj, origin, path);
      LocalSpec l;
      LIBSPLIT_RETURN_IF_ERROR(f.str("id", &l.id));
      if (l.id == "local" || l.id == "offload" || l.id == "offload-png" || l.id == "dynamic") {
        json v = l.id;
        return f.err("id", "an id other than the reserved local/offload/offload-png/dynamic", &v);
      }
      if (!ids.insert(l.id).second) {
        json v = l.id;
        return f.err("id", "an id used by no split and no other local model", &v);
      }
      LIBSPLIT_RETURN_IF_ERROR(f.str("kind", &l.kind));
      if (l.kind != "pruned") {
        json v = l.kind;
        return f.err("kind", "\"pruned\"", &v);
      }
      LIBSPLIT_RETURN_IF_ERROR(f.str("file", &l.file));
      LIBSPLIT_RETURN_IF_ERROR(check_file_name(f, "file", l.file));
      LIBSPLIT_RETURN_IF_ERROR(f.number("ratio", &l.ratio, false));
      if (f.get("ratio") && !(l.ratio > 0 && l.ratio <= 1)) return f.err("ratio", "a number in (0, 1]", f.get("ratio"));
      LIBSPLIT_RETURN_IF_ERROR(f.count("params", &l.params));
      LIBSPLIT_RETURN_IF_ERROR(f.count("macs", &l.macs));
      LIBSPLIT_RETURN_IF_ERROR(f.number("accuracy", &l.accuracy, false));
      m.local.push_back(std::move(l));
    }
  }
  LIBSPLIT_RETURN_IF_ERROR(top.str("default_split", &m.default_split, /*required=*/false));
  if (!m.default_split.empty() && m.find_split(m.default_split) < 0) {
    json v = m.default_split;
    return top.err("default_split", "the id of one of the splits", &v);
  }
  return m;
}

Result<Manifest> load_manifest(const std::string& dir) {
  const std::string path = dir + "/manifest.json";
  std::ifstream f(path, std::ios::binary);
  if (!f) return detail::not_found(path, ": cannot open (is \"", dir, "\" a bundle directory?)");
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_manifest(ss.str(), path);
}

}  // namespace libsplit
