// Every committed bundle loads, and its files and shapes agree with its manifest; a broken copy
// fails with a message naming the file, the expected and the actual shape.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

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

// Optimized modules run oneDNN convolutions whose result depends on how many OpenMP threads
// split the work; a thread the library did not start must still use the configured count, so a
// request's answer does not depend on the server thread (I/O or worker) that ran it.
TEST(Bundles, AnswerDoesNotDependOnTheThreadThatRunsIt) {
  libsplit::BundleOptions o;
  o.intra_op_threads = 1;  // OpenMP's own default on a machine of two or more cores differs
  auto b = libsplit::Bundle::open(std::string(LIBSPLIT_MODELS_DIR) + "/fmnist-resnet", o);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  const auto& m = (*b)->manifest();
  for (size_t i = 0; i < m.splits.size(); ++i) {
    SCOPED_TRACE(m.splits[i].id);
    libsplit::Tensor z{m.splits[i].bottleneck_shape,
                       std::vector<float>(size_t(libsplit::Tensor::element_count(m.splits[i].bottleneck_shape)))};
    for (size_t k = 0; k < z.data.size(); ++k) z.data[k] = float(int(k * 37 % 23) - 11) / 7.0f;
    auto here = (*b)->run_tail(i, z);
    ASSERT_TRUE(here.ok()) << here.status().to_string();
    std::optional<libsplit::Result<libsplit::Tensor>> there;
    std::thread([&] { there.emplace((*b)->run_tail(i, z)); }).join();
    ASSERT_TRUE(there && there->ok());
    EXPECT_EQ(here->data, (*there)->data) << "bit-identical outputs";
  }
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
    for (size_t i = 0; i < m.local.size(); ++i) {
      SCOPED_TRACE(m.local[i].id);
      EXPECT_GE(m.local[i].accuracy, 0) << "accuracy measured at export is recorded";
      EXPECT_GT(m.local[i].macs, 0);
      EXPECT_LT(m.local[i].macs, m.macs_full) << "a pruned model does less work than the full one";
      auto y = (*b)->run_local(i, x);
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

TEST_F(BrokenBundle, MissingLocalModelIsNamedUnlessNotLoaded) {
  manifest_["local"] = nlohmann::json::parse(R"([{"id": "pruned9", "kind": "pruned", "file": "pruned9.pt"}])");
  write_manifest();
  auto st = open();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), libsplit::StatusCode::kNotFound);
  EXPECT_NE(st.message().find("pruned9.pt"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("local[0].file"), std::string::npos) << st.message();
  libsplit::BundleOptions o;
  o.load_local = false;  // as the server opens bundles
  auto b = libsplit::Bundle::open(dir_.string(), o);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  libsplit::Tensor x{(*b)->manifest().input.shape, std::vector<float>(28 * 28, 0.f)};
  auto r = (*b)->run_local(0, x);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), libsplit::StatusCode::kFailedPrecondition);
  EXPECT_FALSE((*b)->run_local(1, x).ok());
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

// PGM and PPM are read by libsplit itself, with or without OpenCV.
TEST(Preprocess, ReadsBinaryPgmAndPpmAndRejectsBrokenOnes) {
  libsplit::InputSpec gray;
  gray.shape = {1, 1, 2, 3};
  gray.mean = {0.f};
  gray.std = {1.f};
  auto bytes = [](const std::string& header, std::vector<uint8_t> px) {
    std::vector<uint8_t> b(header.begin(), header.end());
    b.insert(b.end(), px.begin(), px.end());
    return b;
  };
  auto pgm = bytes("P5\n# a comment\n3 2\n255\n", {0, 1, 2, 3, 4, 255});
  auto t = libsplit::decode_image(pgm.data(), pgm.size(), gray);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->data, (std::vector<float>{0, 1, 2, 3, 4, 255}));
  auto scaled = bytes("P5 3 2 15 ", {0, 1, 2, 3, 4, 15});  // maxval 15 scales to 0..255
  t = libsplit::decode_image(scaled.data(), scaled.size(), gray);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->data, (std::vector<float>{0, 17, 34, 51, 68, 255}));

  libsplit::InputSpec bgr = gray;
  bgr.shape = {1, 3, 1, 2};
  bgr.mean = {0.f, 0.f, 0.f};
  bgr.std = {1.f, 1.f, 1.f};
  bgr.channel_order = "bgr";
  auto ppm = bytes("P6\n2 1\n255\n", {10, 20, 30, 40, 50, 60});
  t = libsplit::decode_image(ppm.data(), ppm.size(), bgr);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->data, (std::vector<float>{30, 60, 20, 50, 10, 40}));  // CHW, blue plane first

  for (const auto& bad : {bytes("P5\n3 2\n255\n", {0, 1, 2}),   // short pixel data
                          bytes("P5\n3 2\n65535\n", {0, 1}),    // 16-bit samples
                          bytes("P5\n3", {}),                     // cut header
                          bytes("P5\nx 2\n255\n", {0}),         // not a number
                          bytes("P5\n0 2\n255\n", {0}),         // zero width
                          bytes("P5\n28 28\n255\n", std::vector<uint8_t>(784))}) {  // wrong size
    auto r = libsplit::decode_image(bad.data(), bad.size(), gray);
    EXPECT_EQ(r.status().code(), libsplit::StatusCode::kInvalidArgument) << std::string(bad.begin(), bad.begin() + 6);
  }
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
