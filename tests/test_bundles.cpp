// Every committed bundle loads, and its files and shapes agree with its manifest; a broken copy
// fails with a message naming the file, the expected and the actual shape.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "libsplit/bundle.h"
#include "libsplit/preprocess.h"

namespace fs = std::filesystem;

namespace {

std::vector<std::string> committed_bundles() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(LIBSPLIT_MODELS_DIR))
    if (fs::exists(e.path() / "manifest.json")) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Bundles, AtLeastOneIsCommitted) { EXPECT_FALSE(committed_bundles().empty()) << "no bundle in " << LIBSPLIT_MODELS_DIR; }

TEST(Bundles, EveryCommittedBundleLoadsAndMatchesItsManifest) {
  for (const auto& dir : committed_bundles()) {
    SCOPED_TRACE(dir);
    auto b = libsplit::Bundle::open(dir);
    ASSERT_TRUE(b.ok()) << b.status().to_string();
    const auto& m = (*b)->manifest();
    EXPECT_EQ(m.weights, "trained") << "committed bundles are trained models";
    EXPECT_FALSE(m.splits.empty());
    libsplit::Tensor x{m.input.shape, std::vector<float>(size_t(libsplit::Tensor::element_count(m.input.shape)), 0.1f)};
    auto full = (*b)->run_full(x);
    ASSERT_TRUE(full.ok());
    EXPECT_EQ(full->shape, m.output_shape);
    for (size_t i = 0; i < m.splits.size(); ++i) {
      SCOPED_TRACE(m.splits[i].id);
      EXPECT_GE(m.splits[i].accuracy_codec, 0) << "accuracy measured at export is recorded";
      auto z = (*b)->run_head(i, x);
      ASSERT_TRUE(z.ok()) << z.status().to_string();
      EXPECT_EQ(z->shape, m.splits[i].bottleneck_shape);
      auto y = (*b)->run_tail(i, *z);
      ASSERT_TRUE(y.ok()) << y.status().to_string();
      EXPECT_EQ(y->shape, m.output_shape);
    }
    // Wrong input shapes are errors, not crashes.
    libsplit::Tensor bad{{1, 1, 27, 27}, std::vector<float>(27 * 27)};
    auto r = (*b)->run_head(0, bad);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("[1,1,27,27]"), std::string::npos) << r.status().message();
  }
}

class BrokenBundle : public ::testing::Test {
 protected:
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  void SetUp() override {
    src_ = committed_bundles().at(0);
    // One directory per test: ctest runs the tests of this fixture in parallel processes.
    dir_ = fs::path(LIBSPLIT_TEST_TMP) /
           (std::string("broken-bundle-") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::copy(src_, dir_, fs::copy_options::recursive);
    std::ifstream f(dir_ / "manifest.json");
    manifest_ = nlohmann::json::parse(f);
  }
  void write_manifest() {
    std::ofstream f(dir_ / "manifest.json");
    f << manifest_.dump(2);
  }
  libsplit::Status open() {
    auto b = libsplit::Bundle::open(dir_.string(), {});
    return b.ok() ? libsplit::Status() : b.status();
  }
  std::string src_;
  fs::path dir_;
  nlohmann::json manifest_;
};

TEST_F(BrokenBundle, MissingHeadFileIsNamed) {
  const std::string head = manifest_["splits"][0]["head"];
  fs::remove(dir_ / head);
  auto st = open();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), libsplit::StatusCode::kNotFound);
  EXPECT_NE(st.message().find(head), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("splits[0].head"), std::string::npos) << st.message();
}

TEST_F(BrokenBundle, BottleneckShapeDisagreementNamesFileExpectedAndActual) {
  auto shape = manifest_["splits"][0]["bottleneck"]["shape"];
  const std::string actual = libsplit::shape_to_string(shape.get<std::vector<int64_t>>());
  shape[1] = shape[1].get<int>() + 5;
  manifest_["splits"][0]["bottleneck"]["shape"] = shape;
  write_manifest();
  auto st = open();
  ASSERT_FALSE(st.ok());
  const std::string head = manifest_["splits"][0]["head"];
  EXPECT_NE(st.message().find(head), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(actual), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(libsplit::shape_to_string(shape.get<std::vector<int64_t>>())), std::string::npos)
      << st.message();
}

TEST_F(BrokenBundle, CorruptTorchScriptIsNamed) {
  const std::string tail = manifest_["splits"][0]["tail"];
  std::ofstream(dir_ / tail) << "not a zip archive";
  auto st = open();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(tail), std::string::npos) << st.message();
}

TEST_F(BrokenBundle, OutputShapeDisagreement) {
  manifest_["output"]["shape"] = {1, 11};
  manifest_["labels"].push_back("extra");
  write_manifest();
  auto st = open();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("[1,11]"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("[1,10]"), std::string::npos) << st.message();
}

TEST(Preprocess, RejectsWrongImageSize) {
  libsplit::InputSpec spec;
  spec.shape = {1, 1, 28, 28};
  spec.mean = {0.5f};
  spec.std = {0.5f};
  std::vector<uint8_t> px(32 * 32);
  auto t = libsplit::pixels_to_tensor(px.data(), 32, 32, 1, spec);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("32x32"), std::string::npos);
  EXPECT_NE(t.status().message().find("28x28"), std::string::npos);
  auto d = libsplit::decode_image(px.data(), px.size(), spec);
  EXPECT_FALSE(d.ok());
}

TEST(Preprocess, NormalisesLikeTheManifestSays) {
  libsplit::InputSpec spec;
  spec.shape = {1, 1, 1, 2};
  spec.mean = {0.5f};
  spec.std = {0.25f};
  const uint8_t px[] = {0, 255};
  auto t = libsplit::pixels_to_tensor(px, 1, 2, 1, spec);
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(libsplit::normalize_input(spec, &*t).ok());
  EXPECT_FLOAT_EQ(t->data[0], -2.0f);
  EXPECT_FLOAT_EQ(t->data[1], 2.0f);
}

TEST(Idx, ReadsFashionMnistAndRejectsGarbage) {
  auto idx = libsplit::IdxFile::open(std::string(LIBSPLIT_FMNIST_DIR) + "/t10k-images-idx3-ubyte.gz");
  ASSERT_TRUE(idx.ok()) << idx.status().to_string();
  EXPECT_EQ(idx->count(), 10000);
  EXPECT_EQ(idx->record_size(), 784);
  const auto garbage = fs::path(LIBSPLIT_TEST_TMP) / "garbage.idx";
  std::ofstream(garbage) << "hello world, not idx";
  auto bad = libsplit::IdxFile::open(garbage.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("garbage.idx"), std::string::npos);
}

}  // namespace
