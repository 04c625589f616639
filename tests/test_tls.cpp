// TLS between client and server (Asio SSL over OpenSSL), against certificates made for the test
// by tests/tls_certs.sh: answers equal plain TCP's; a plain client, an untrusted server, a wrong
// name, a missing or foreign client certificate and bad files are each refused with an error
// that says so, and the server keeps serving.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "libsplit/libsplit.h"

namespace {

// One directory per process: ctest runs each test in a process of its own, in parallel, and each
// makes its certificates (a shared directory would be rewritten under another's feet).
const std::string kCerts = std::string(LIBSPLIT_TEST_TMP) + "/tls-certs-" + std::to_string(::getpid());

class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string cmd = "bash " + std::string(LIBSPLIT_SOURCE_DIR) + "/tests/tls_certs.sh " + kCerts;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(kCerts); }
  static std::string cert(const std::string& name) { return kCerts + "/" + name; }

  std::unique_ptr<libsplit::Server> server(libsplit::ServerOptions so) {
    so.models_dir = std::string(LIBSPLIT_MODELS_DIR) + "/fmnist-resnet";
    so.listen = "127.0.0.1:0";
    so.summary_interval_ms = 0;
    so.handshake_timeout_ms = 2000;
    if (so.tls_cert_file.empty()) {
      so.tls_cert_file = cert("server.pem");
      so.tls_key_file = cert("server.key");
    }
    auto s = libsplit::Server::create(so);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    if (!s.ok() || !(*s)->start().ok()) return nullptr;
    return std::move(*s);
  }
  libsplit::ClientOptions client_options(const libsplit::Server& s) {
    libsplit::ClientOptions co;
    co.server = "127.0.0.1:" + std::to_string(s.port());
    co.model = "fmnist-resnet";
    co.tls = true;
    co.tls_ca_file = cert("ca.pem");
    co.connect_timeout_ms = 5000;
    return co;
  }
  // One request on the first split: the bottleneck of a constant, made-up tensor.
  static libsplit::Result<libsplit::Reply> infer(libsplit::Client& c) {
    const auto split = c.splits().at(0);
    libsplit::Tensor z{split.bottleneck_shape,
                       std::vector<float>(size_t(libsplit::Tensor::element_count(split.bottleneck_shape)), 0.3f)};
    z.data[0] = -1.5f;
    libsplit::EncodedTensor enc;
    EXPECT_TRUE(libsplit::encode(z, *libsplit::parse_codec("f32"), &enc).ok());
    return c.infer(split.index, enc, 3);
  }
};

TEST_F(Tls, AnswersEqualPlainTcp) {
  auto tls_server = server({});
  libsplit::ServerOptions plain_opts;
  plain_opts.models_dir = std::string(LIBSPLIT_MODELS_DIR) + "/fmnist-resnet";
  plain_opts.listen = "127.0.0.1:0";
  auto plain = libsplit::Server::create(plain_opts);
  ASSERT_TRUE(tls_server && plain.ok());
  ASSERT_TRUE((*plain)->start().ok());
  libsplit::ClientOptions po;
  po.server = "127.0.0.1:" + std::to_string((*plain)->port());
  po.model = "fmnist-resnet";
  auto pc = libsplit::Client::connect(po);
  ASSERT_TRUE(pc.ok());
  auto want = infer(**pc);
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  for (bool io_thread : {true, false}) {
    auto co = client_options(*tls_server);
    co.io_thread = io_thread;
    auto c = libsplit::Client::connect(co);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    for (int i = 0; i < 20; ++i) {
      auto got = infer(**c);
      ASSERT_TRUE(got.ok()) << got.status().to_string();
      ASSERT_EQ(got->top.size(), want->top.size());
      for (size_t k = 0; k < got->top.size(); ++k) {
        EXPECT_EQ(got->top[k].index, want->top[k].index);
        EXPECT_EQ(got->top[k].score, want->top[k].score);
      }
    }
  }
  EXPECT_EQ(tls_server->stats().requests_ok, 40u);
}

TEST_F(Tls, PlainClientIsRefusedAndTheServerGoesOn) {
  auto s = server({});
  ASSERT_TRUE(s);
  auto co = client_options(*s);
  co.tls = false;
  co.tls_ca_file.clear();
  auto c = libsplit::Client::connect(co);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), libsplit::StatusCode::kUnavailable) << c.status().to_string();
  auto good = libsplit::Client::connect(client_options(*s));
  ASSERT_TRUE(good.ok()) << good.status().to_string();
  EXPECT_TRUE(infer(**good).ok());
  EXPECT_GE(s->stats().tls_handshake_failures, 1u);
}

TEST_F(Tls, UntrustedServerOrWrongNameIsRefused) {
  auto s = server({});
  ASSERT_TRUE(s);
  auto co = client_options(*s);
  co.tls_ca_file = cert("other-ca.pem");
  auto c = libsplit::Client::connect(co);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("TLS handshake"), std::string::npos) << c.status().to_string();
  EXPECT_NE(c.status().message().find("certificate verify failed"), std::string::npos) << c.status().to_string();

  co = client_options(*s);
  co.tls_server_name = "edge.example.org";  // the certificate names 127.0.0.1 and localhost
  c = libsplit::Client::connect(co);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("certificate verify failed"), std::string::npos) << c.status().to_string();
  co.tls_server_name = "localhost";
  c = libsplit::Client::connect(co);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
}

TEST_F(Tls, MutualTlsNeedsAClientCertificateFromTheCa) {
  libsplit::ServerOptions so;
  so.tls_client_ca_file = cert("ca.pem");
  auto s = server(so);
  ASSERT_TRUE(s);
  auto co = client_options(*s);
  EXPECT_FALSE(libsplit::Client::connect(co).ok()) << "no client certificate";
  co.tls_cert_file = cert("other-server.pem");  // signed by another CA
  co.tls_key_file = cert("other-server.key");
  EXPECT_FALSE(libsplit::Client::connect(co).ok()) << "a certificate of another CA";
  co.tls_cert_file = cert("client.pem");
  co.tls_key_file = cert("client.key");
  auto c = libsplit::Client::connect(co);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_TRUE(infer(**c).ok());
  EXPECT_GE(s->stats().tls_handshake_failures, 2u);
}

TEST_F(Tls, TokenIsCheckedInsideTls) {
  libsplit::ServerOptions so;
  so.auth_token = "edge-secret";
  auto s = server(so);
  ASSERT_TRUE(s);
  auto co = client_options(*s);
  co.auth_token = "wrong";
  auto bad = libsplit::Client::connect(co);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), libsplit::StatusCode::kUnauthenticated) << bad.status().to_string();
  co.auth_token = "edge-secret";
  auto c = libsplit::Client::connect(co);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_TRUE(infer(**c).ok());
}

TEST_F(Tls, BadFilesAreErrorValuesNamingTheFile) {
  libsplit::ServerOptions so;
  so.models_dir = std::string(LIBSPLIT_MODELS_DIR) + "/fmnist-resnet";
  so.listen = "127.0.0.1:0";
  so.tls_cert_file = cert("missing.pem");
  so.tls_key_file = cert("server.key");
  auto s = libsplit::Server::create(so);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("missing.pem"), std::string::npos) << s.status().to_string();
  so.tls_cert_file = cert("server.pem");
  so.tls_key_file = cert("client.key");  // another certificate's key
  s = libsplit::Server::create(so);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("mismatch"), std::string::npos) << s.status().to_string();
  EXPECT_NE(s.status().message().find("client.key"), std::string::npos) << s.status().to_string();
  so.tls_key_file.clear();
  EXPECT_EQ(libsplit::Server::create(so).status().code(), libsplit::StatusCode::kInvalidArgument);

  libsplit::ClientOptions co;
  co.server = "127.0.0.1:1";
  co.model = "fmnist-resnet";
  co.tls_ca_file = cert("ca.pem");  // files without tls = true
  EXPECT_EQ(libsplit::Client::connect(co).status().code(), libsplit::StatusCode::kInvalidArgument);
  co.tls = true;
  co.tls_ca_file = cert("missing-ca.pem");
  auto c = libsplit::Client::connect(co);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("missing-ca.pem"), std::string::npos) << c.status().to_string();
}

}  // namespace
