// The runtime's preprocessing against split-train's Python preprocessing, photo by photo: the
// fixtures (tests/make_preprocess_fixtures.py, written at test time) hold photos of various
// sizes, formats and channel layouts and the normalised input the Python side makes of each
// under several manifests' input specs (resize + centre crop with area, bilinear and nearest
// resampling; rgb, bgr and gray). Both sides decode and resample with OpenCV and normalise in
// float32, so the budget is float rounding: at most 1e-5 per element.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "libsplit/bundle.h"
#include "libsplit/preprocess.h"

namespace {

const std::string kDir = std::string(LIBSPLIT_TEST_TMP) + "/preprocess_fixtures";

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

libsplit::InputSpec spec_of(const std::string& name) {
  const std::string input = read(kDir + "/" + name + ".json");
  const std::string manifest = R"({"format_version": 1, "name": "fixture", "version": "1", "labels": ["a", "b"],
    "input": )" + input + R"(, "full": "full.pt", "output": {"shape": [1, 2]}, "splits": []})";
  auto m = libsplit::parse_manifest(manifest, name + ".json");
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? m->input : libsplit::InputSpec{};
}

TEST(PreprocessPython, NormalisedInputsMatchSplitTrainsOnPhotosOfAnySize) {
  std::ifstream index(kDir + "/index.txt");
  ASSERT_TRUE(index) << kDir << "/index.txt missing: the preprocess_fixtures_from_python test writes it";
  std::string image, spec_name, expected;
  int cases = 0;
  double worst = 0;
  while (index >> image >> spec_name >> expected) {
    SCOPED_TRACE(image + " under " + spec_name);
    const libsplit::InputSpec spec = spec_of(spec_name);
    auto t = libsplit::load_image_file(kDir + "/" + image, spec);
    ASSERT_TRUE(t.ok()) << t.status().message();
    ASSERT_TRUE(libsplit::normalize_input(spec, &*t).ok());
    ASSERT_EQ(t->shape, spec.shape);
    const std::string want = read(kDir + "/" + expected);
    ASSERT_EQ(want.size(), t->data.size() * sizeof(float));
    std::vector<float> ref(t->data.size());
    std::memcpy(ref.data(), want.data(), want.size());
    double max_diff = 0;
    for (size_t i = 0; i < ref.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(ref[i] - t->data[i])));
    EXPECT_LE(max_diff, 1e-5);
    worst = std::max(worst, max_diff);
    ++cases;
  }
  EXPECT_GE(cases, 30);
  std::printf("%d photo/spec cases, largest difference from Python %.3g\n", cases, worst);
}

}  // namespace
