// Manifest parsing: a valid manifest parses; each broken field fails with the file, the field,
// the expected and the actual value in the message.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "libsplit/bundle.h"

namespace {

using nlohmann::json;

json valid() {
  return json::parse(R"({
    "format_version": 1, "name": "m", "version": "1.0.0", "weights": "trained",
    "labels": ["a", "b", "c"],
    "input": {"shape": [1, 1, 28, 28], "dtype": "float32", "mean": [0.5], "std": [0.25], "channel_order": "gray"},
    "full": "full.pt",
    "output": {"shape": [1, 3]},
    "accuracy": {"full": 91.5},
    "splits": [
      {"id": "bf2", "kind": "bottlefit", "head": "bf2_head.pt", "tail": "bf2_tail.pt",
       "bottleneck": {"shape": [1, 2, 7, 7], "dtype": "float32"}, "codec": "q8",
       "accuracy": {"float": 90.1, "codec": 90.0}}
    ]})");
}

json with_preprocess() {
  json j = valid();
  j["input"]["preprocess"] = {{"resize", 32}, {"crop", {28, 28}}, {"interpolation", "bilinear"}};
  return j;
}

TEST(Manifest, ParsesPreprocess) {
  auto m = libsplit::parse_manifest(with_preprocess().dump(), "x/manifest.json");
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ASSERT_TRUE(m->input.preprocess.has_value());
  EXPECT_EQ(m->input.preprocess->resize, 32);
  EXPECT_EQ(m->input.preprocess->crop_height, 28);
  EXPECT_EQ(m->input.preprocess->crop_width, 28);
  EXPECT_EQ(m->input.preprocess->interpolation, "bilinear");
  // interpolation defaults to area; a non-square input crops [H, W]; resize may equal the crop.
  json j = valid();
  j["input"]["shape"] = {1, 1, 24, 28};
  j["input"]["preprocess"] = {{"resize", 28}, {"crop", {24, 28}}};
  m = libsplit::parse_manifest(j.dump(), "x/manifest.json");
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->input.preprocess->interpolation, "area");
  EXPECT_EQ(m->input.preprocess->crop_height, 24);
  EXPECT_EQ(m->input.preprocess->crop_width, 28);
  // Without the object, no preprocessing.
  m = libsplit::parse_manifest(valid().dump(), "x/manifest.json");
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->input.preprocess.has_value());
}

TEST(Manifest, ParsesValidManifest) {
  auto m = libsplit::parse_manifest(valid().dump(), "x/manifest.json");
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->name, "m");
  EXPECT_EQ(m->labels.size(), 3u);
  EXPECT_EQ(m->input.shape, (std::vector<int64_t>{1, 1, 28, 28}));
  ASSERT_EQ(m->splits.size(), 1u);
  EXPECT_EQ(m->splits[0].codec, (libsplit::CodecSpec{libsplit::CodecKind::kQuantPerTensor, 8}));
  EXPECT_DOUBLE_EQ(m->splits[0].accuracy_codec, 90.0);
  EXPECT_EQ(m->find_split("bf2"), 0);
  EXPECT_EQ(m->find_split("nope"), -1);
}

struct Broken {
  std::string name;
  std::function<void(json&)> edit;
  std::vector<std::string> expect_in_message;
};

class ManifestErrors : public ::testing::TestWithParam<Broken> {};

TEST_P(ManifestErrors, NameFileFieldExpectedAndActual) {
  json j = valid();
  GetParam().edit(j);
  auto m = libsplit::parse_manifest(j.dump(), "bundles/m/manifest.json");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), libsplit::StatusCode::kInvalidArgument);
  const auto& msg = m.status().message();
  EXPECT_NE(msg.find("bundles/m/manifest.json"), std::string::npos) << msg;
  for (const auto& s : GetParam().expect_in_message) EXPECT_NE(msg.find(s), std::string::npos) << "'" << s << "' not in: " << msg;
}

INSTANTIATE_TEST_SUITE_P(
    AllFields, ManifestErrors,
    ::testing::Values(
        Broken{"format_version", [](json& j) { j["format_version"] = 7; }, {"format_version", "7"}},
        Broken{"missing_name", [](json& j) { j.erase("name"); }, {"\"name\"", "missing"}},
        Broken{"labels", [](json& j) { j["labels"] = json::array(); }, {"labels", "[]"}},
        Broken{"input_shape", [](json& j) { j["input"]["shape"] = {1, 28, 28}; }, {"input.shape", "[1,28,28]"}},
        Broken{"negative_dim", [](json& j) { j["input"]["shape"] = {1, 1, -28, 28}; }, {"input.shape", "-28"}},
        Broken{"dtype", [](json& j) { j["input"]["dtype"] = "int8"; }, {"input.dtype", "int8"}},
        Broken{"mean_count", [](json& j) { j["input"]["mean"] = {0.1, 0.2}; }, {"input.mean", "1 values"}},
        Broken{"std_zero", [](json& j) { j["input"]["std"] = {0.0}; }, {"input.std", "positive"}},
        Broken{"channel_order", [](json& j) { j["input"]["channel_order"] = "rgb"; }, {"channel_order", "rgb"}},
        Broken{"output_shape", [](json& j) { j["output"]["shape"] = {1, 4}; }, {"output.shape", "[1, 3]", "[1,4]"}},
        Broken{"full_path", [](json& j) { j["full"] = "../x.pt"; }, {"full", "../x.pt"}},
        Broken{"split_kind", [](json& j) { j["splits"][0]["kind"] = "magic"; }, {"splits[0].kind", "magic"}},
        Broken{"split_codec", [](json& j) { j["splits"][0]["codec"] = "q3"; }, {"splits[0].codec", "q3"}},
        Broken{"split_coded_without_tables", [](json& j) { j["splits"][0]["codec"] = "q8rans"; j["splits"][0].erase("tables"); },
               {"splits[0].tables", "q8rans"}},
        Broken{"split_tables_path", [](json& j) { j["splits"][0]["tables"] = "../t.tables"; },
               {"splits[0].tables", "../t.tables"}},
        Broken{"split_shape", [](json& j) { j["splits"][0]["bottleneck"]["shape"] = "big"; },
               {"splits[0].bottleneck.shape", "big"}},
        Broken{"split_dup", [](json& j) { j["splits"].push_back(j["splits"][0]); }, {"splits[1].id", "bf2"}},
        Broken{"split_reserved", [](json& j) { j["splits"][0]["id"] = "local"; }, {"splits[0].id", "local"}},
        Broken{"split_head_missing", [](json& j) { j["splits"][0].erase("head"); }, {"splits[0].head"}},
        Broken{"default_split", [](json& j) { j["default_split"] = "bf9"; }, {"default_split", "bf9"}},
        Broken{"weights", [](json& j) { j["weights"] = "pretrained"; }, {"weights", "pretrained"}},
        Broken{"local_not_array", [](json& j) { j["local"] = "pruned50.pt"; }, {"\"local\"", "an array"}},
        Broken{"local_kind", [](json& j) { j["local"] = json::parse(R"([{"id": "p", "kind": "distilled", "file": "p.pt"}])"); },
               {"local[0].kind", "distilled"}},
        Broken{"local_id_of_a_split", [](json& j) { j["local"] = json::parse(R"([{"id": "bf2", "kind": "pruned", "file": "p.pt"}])"); },
               {"local[0].id", "bf2"}},
        Broken{"local_reserved", [](json& j) { j["local"] = json::parse(R"([{"id": "offload", "kind": "pruned", "file": "p.pt"}])"); },
               {"local[0].id", "offload"}},
        Broken{"local_file_path", [](json& j) { j["local"] = json::parse(R"([{"id": "p", "kind": "pruned", "file": "/etc/p.pt"}])"); },
               {"local[0].file", "/etc/p.pt"}},
        Broken{"local_ratio", [](json& j) { j["local"] = json::parse(R"([{"id": "p", "kind": "pruned", "file": "p.pt", "ratio": 1.5}])"); },
               {"local[0].ratio", "1.5"}},
        Broken{"local_macs", [](json& j) { j["local"] = json::parse(R"([{"id": "p", "kind": "pruned", "file": "p.pt", "macs": -3}])"); },
               {"local[0].macs", "-3"}},
        Broken{"complexity_params", [](json& j) { j["complexity"] = json::parse(R"({"params": 1.5})"); },
               {"complexity.params", "1.5"}},
        Broken{"preprocess_not_object", [](json& j) { j["input"]["preprocess"] = 32; }, {"input.preprocess", "32"}},
        Broken{"preprocess_crop_not_the_shape", [](json& j) { j["input"]["preprocess"] = with_preprocess()["input"]["preprocess"]; j["input"]["preprocess"]["crop"] = {32, 28}; },
               {"input.preprocess.crop", "[28, 28]", "[32,28]"}},
        Broken{"preprocess_crop_not_a_pair", [](json& j) { j["input"]["preprocess"] = with_preprocess()["input"]["preprocess"]; j["input"]["preprocess"]["crop"] = 28; },
               {"input.preprocess.crop", "[height, width]", "28"}},
        Broken{"preprocess_resize_below_crop", [](json& j) { j["input"]["preprocess"] = with_preprocess()["input"]["preprocess"]; j["input"]["preprocess"]["resize"] = 20; },
               {"input.preprocess.resize", "at least 28", "20"}},
        Broken{"preprocess_resize_not_integer", [](json& j) { j["input"]["preprocess"] = with_preprocess()["input"]["preprocess"]; j["input"]["preprocess"]["resize"] = 32.5; },
               {"input.preprocess.resize", "positive integer", "32.5"}},
        Broken{"preprocess_resize_missing", [](json& j) { j["input"]["preprocess"] = with_preprocess()["input"]["preprocess"]; j["input"]["preprocess"].erase("resize"); },
               {"input.preprocess.resize", "missing"}},
        Broken{"preprocess_interpolation", [](json& j) { j["input"]["preprocess"] = with_preprocess()["input"]["preprocess"]; j["input"]["preprocess"]["interpolation"] = "bicubic"; },
               {"input.preprocess.interpolation", "\"area\", \"bilinear\" or \"nearest\"", "bicubic"}},
        Broken{"preprocess_unknown_field", [](json& j) { j["input"]["preprocess"] = with_preprocess()["input"]["preprocess"]; j["input"]["preprocess"]["antialias"] = true; },
               {"input.preprocess.antialias", "no such field", "true"}}),
    [](const auto& info) { return info.param.name; });

TEST(Manifest, ParsesLocalModelsAndComplexity) {
  json j = valid();
  j["complexity"] = {{"params", 1000}, {"macs", 50000}};
  j["local"] = json::parse(R"([{"id": "pruned50", "kind": "pruned", "file": "pruned50.pt", "ratio": 0.5,
                                "params": 400, "macs": 24000, "accuracy": 90.5}])");
  auto m = libsplit::parse_manifest(j.dump(), "x/manifest.json");
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->params_full, 1000);
  EXPECT_EQ(m->macs_full, 50000);
  ASSERT_EQ(m->local.size(), 1u);
  EXPECT_EQ(m->local[0].file, "pruned50.pt");
  EXPECT_DOUBLE_EQ(m->local[0].ratio, 0.5);
  EXPECT_EQ(m->local[0].macs, 24000);
  EXPECT_DOUBLE_EQ(m->local[0].accuracy, 90.5);
  EXPECT_EQ(m->find_local("pruned50"), 0);
  EXPECT_EQ(m->find_local("bf2"), -1);
}

TEST(Manifest, NotJson) {
  auto m = libsplit::parse_manifest("{\"name\": ", "a/manifest.json");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("a/manifest.json"), std::string::npos);
}

TEST(Manifest, MissingDirectory) {
  auto m = libsplit::load_manifest("/nonexistent-bundle-dir");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), libsplit::StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("/nonexistent-bundle-dir/manifest.json"), std::string::npos);
}

}  // namespace
