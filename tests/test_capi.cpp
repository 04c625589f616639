// The C API and the two example device apps (C++ and C), against a real server on loopback:
// the examples' answers equal in-process head -> 8-bit quantization -> tail; every C API error
// path returns its status with a message.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "libsplit/libsplit.h"
#include "libsplit/libsplit_c.h"

namespace {

const std::string kBundle = std::string(LIBSPLIT_MODELS_DIR) + "/fmnist-resnet";

class CApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    libsplit::ServerOptions so;
    so.models_dir = kBundle;
    so.listen = "127.0.0.1:0";
    so.summary_interval_ms = 0;
    auto s = libsplit::Server::create(so);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    server_ = s->release();
    ASSERT_TRUE(server_->start().ok());
  }
  static void TearDownTestSuite() { delete server_; }
  static std::string address() { return "127.0.0.1:" + std::to_string(server_->port()); }
  static libsplit::Server* server_;
};
libsplit::Server* CApi::server_ = nullptr;

// Runs `cmd`; returns its exit status and stdout.
int run(const std::string& cmd, std::string* out) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) *out += buf;
  return pclose(p);
}

TEST_F(CApi, ExampleAppsAnswerLikeInProcessHeadQuantizedTail) {
  auto images = libsplit::IdxFile::open(std::string(LIBSPLIT_FMNIST_DIR) + "/t10k-images-idx3-ubyte.gz");
  ASSERT_TRUE(images.ok()) << images.status().to_string();
  auto bundle = libsplit::Bundle::open(kBundle);
  ASSERT_TRUE(bundle.ok());
  const auto& m = (*bundle)->manifest();
  const size_t split = size_t(m.find_split(m.default_split));
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    const std::string pgm = std::string(LIBSPLIT_TEST_TMP) + "/capi-" + std::to_string(i) + ".pgm";
    {
      std::ofstream f(pgm, std::ios::binary);
      f << "P5\n28 28\n255\n";
      f.write(reinterpret_cast<const char*>(images->record(i)), 784);
    }
    auto x = libsplit::pixels_to_tensor(images->record(i), 28, 28, 1, m.input);
    ASSERT_TRUE(x.ok());
    ASSERT_TRUE(libsplit::normalize_input(m.input, &*x).ok());
    auto z = (*bundle)->run_head(split, *x);
    ASSERT_TRUE(z.ok());
    libsplit::EncodedTensor enc;
    ASSERT_TRUE(libsplit::encode(*z, m.splits[split].codec, &enc, (*bundle)->tables(split)).ok());
    libsplit::Tensor zq;
    ASSERT_TRUE(libsplit::decode(enc, &zq, (*bundle)->tables(split)).ok());
    auto y = (*bundle)->run_tail(split, zq);
    ASSERT_TRUE(y.ok());
    const std::string want = std::to_string(libsplit::top_k(*y, 1)[0].index) + " ";
    for (const char* app : {DEVICE_APP, DEVICE_APP_C}) {
      std::string out;
      ASSERT_EQ(run(std::string(LIBSPLIT_TEST_EMULATOR) + app + " " + address() + " " + kBundle + " " + pgm, &out), 0)
          << app << ": " << out;
      EXPECT_EQ(out.rfind(want, 0), 0u) << app << " printed \"" << out << "\", expected class " << want;
    }
  }
}

TEST_F(CApi, ErrorsAreStatusesWithMessages) {
  ls_bundle* bundle = nullptr;
  EXPECT_EQ(ls_bundle_open(nullptr, 0, &bundle), LS_INVALID_ARGUMENT);
  EXPECT_EQ(ls_bundle_open("/nonexistent/bundle", 0, &bundle), LS_NOT_FOUND);
  EXPECT_EQ(bundle, nullptr);
  EXPECT_NE(std::string(ls_last_error()).find("/nonexistent/bundle"), std::string::npos) << ls_last_error();
  EXPECT_STREQ(ls_status_name(LS_UNAVAILABLE), "unavailable");

  ASSERT_EQ(ls_bundle_open(kBundle.c_str(), 1, &bundle), LS_OK) << ls_last_error();
  EXPECT_STREQ(ls_bundle_name(bundle), "fmnist-resnet");
  uint32_t h = 0, w = 0, c = 0;
  ASSERT_EQ(ls_bundle_input(bundle, &h, &w, &c), LS_OK);
  EXPECT_EQ(h * w * c, 784u);
  ASSERT_GT(ls_bundle_split_count(bundle), 0u);
  char id[64];
  ASSERT_EQ(ls_bundle_split_id(bundle, 0, id, sizeof id), LS_OK);
  EXPECT_GT(std::strlen(id), 0u);
  char tiny[2];
  EXPECT_EQ(ls_bundle_split_id(bundle, 0, tiny, sizeof tiny), LS_RESOURCE_EXHAUSTED);
  EXPECT_EQ(ls_bundle_split_id(bundle, 999, id, sizeof id), LS_INVALID_ARGUMENT);
  EXPECT_STREQ(ls_bundle_label(bundle, 999), "");

  ls_client* client = nullptr;
  EXPECT_EQ(ls_client_connect("127.0.0.1:1", "fmnist-resnet", 2000, &client), LS_UNAVAILABLE);
  EXPECT_EQ(ls_client_connect(address().c_str(), "no-such-model", 2000, &client), LS_NOT_FOUND);
  ASSERT_EQ(ls_client_connect(address().c_str(), ls_bundle_name(bundle), 2000, &client), LS_OK) << ls_last_error();

  ls_session* session = nullptr;
  ASSERT_EQ(ls_session_create(bundle, client, &session), LS_OK) << ls_last_error();
  std::vector<uint8_t> px(784, 128);
  ls_class_score top[3];
  size_t n = 0;
  ls_timings t{};
  EXPECT_EQ(ls_session_run(session, "no-such-split", px.data(), 28, 28, 1, 0, top, 3, &n, &t), LS_NOT_FOUND);
  EXPECT_EQ(ls_session_run(session, nullptr, px.data(), 32, 32, 1, 0, top, 3, &n, &t), LS_INVALID_ARGUMENT);
  EXPECT_EQ(ls_session_run(session, nullptr, px.data(), 28, 28, 1, 0, nullptr, 3, &n, &t), LS_INVALID_ARGUMENT);
  for (const char* strategy : {static_cast<const char*>(nullptr), "local", "offload"}) {
    ASSERT_EQ(ls_session_run(session, strategy, px.data(), 28, 28, 1, 0, top, 3, &n, &t), LS_OK) << ls_last_error();
    EXPECT_EQ(n, 3u);
    EXPECT_GE(top[0].score, top[1].score);
    EXPECT_GT(t.total_us, 0.0);
  }
  ls_session_destroy(session);
  ls_client_close(client);
  ls_bundle_close(bundle);
  ls_session_destroy(nullptr);
  ls_client_close(nullptr);
  ls_bundle_close(nullptr);
}

TEST(CApiLog, CallbackReceivesRecords) {
  struct Seen {
    int count = 0;
    std::string last;
  } seen;
  ls_set_log_callback(
      [](ls_log_level, const char* message, void* user) {
        auto* s = static_cast<Seen*>(user);
        ++s->count;
        s->last = message;
      },
      &seen, LS_LOG_INFO);
  libsplit::ServerOptions so;  // a server's start is logged at info
  so.models_dir = kBundle;
  so.listen = "127.0.0.1:0";
  so.summary_interval_ms = 0;
  auto s = libsplit::Server::create(so);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->start().ok());
  ls_set_log_callback(nullptr, nullptr, LS_LOG_WARN);
  EXPECT_GT(seen.count, 0);
  EXPECT_FALSE(seen.last.empty());
}

}  // namespace
