// Through a real split-server on loopback: every split's predictions equal in-process head ->
// 8-bit quantization -> tail on 1,000 test images; local and offload equal the full model.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "libsplit/libsplit.h"

namespace {

const std::string kBundle = std::string(LIBSPLIT_MODELS_DIR) + "/fmnist-resnet";
constexpr int kImages = 1000;

class EndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    libsplit::ServerOptions so;
    so.models_dir = LIBSPLIT_MODELS_DIR;
    so.listen = "127.0.0.1:0";
    so.workers = 2;
    auto s = libsplit::Server::create(so);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    server_ = s->release();
    ASSERT_TRUE(server_->start().ok());
    auto b = libsplit::Bundle::open(kBundle);
    ASSERT_TRUE(b.ok()) << b.status().to_string();
    bundle_ = b->release();
    auto idx = libsplit::IdxFile::open(std::string(LIBSPLIT_FMNIST_DIR) + "/t10k-images-idx3-ubyte.gz");
    ASSERT_TRUE(idx.ok()) << idx.status().to_string();
    images_ = new libsplit::IdxFile(std::move(*idx));
  }
  static void TearDownTestSuite() {
    delete server_;
    delete bundle_;
    delete images_;
  }
  std::unique_ptr<libsplit::Client> connect(const std::string& split = "", bool io_thread = true) {
    libsplit::ClientOptions co;
    co.server = "127.0.0.1:" + std::to_string(server_->port());
    co.model = bundle_->manifest().name;
    co.split = split;
    co.io_thread = io_thread;
    auto c = libsplit::Client::connect(co);
    EXPECT_TRUE(c.ok()) << c.status().to_string();
    return c.ok() ? std::move(*c) : nullptr;
  }
  libsplit::Tensor pixels(int i) {
    auto t = libsplit::pixels_to_tensor(images_->record(i), 28, 28, 1, bundle_->manifest().input);
    EXPECT_TRUE(t.ok());
    return *t;
  }
  // Images first..first+n through split s in process: the coded bottlenecks a device would send
  // and the tail's outputs on them (head -> codec -> decode -> tail).
  void reference(size_t s, int first, int n, std::vector<libsplit::EncodedTensor>* enc,
                 std::vector<libsplit::Tensor>* want) {
    const auto& m = bundle_->manifest();
    enc->assign(size_t(n), {});
    want->assign(size_t(n), {});
    for (int i = 0; i < n; ++i) {
      auto x = pixels(first + i);
      ASSERT_TRUE(libsplit::normalize_input(m.input, &x).ok());
      auto z = bundle_->run_head(s, x);
      ASSERT_TRUE(z.ok());
      ASSERT_TRUE(libsplit::encode(*z, m.splits[s].codec, &(*enc)[size_t(i)], bundle_->tables(s)).ok());
      libsplit::Tensor zq;
      ASSERT_TRUE(libsplit::decode((*enc)[size_t(i)], &zq, bundle_->tables(s)).ok());
      auto y = bundle_->run_tail(s, zq);
      ASSERT_TRUE(y.ok());
      (*want)[size_t(i)] = *y;
    }
  }
  static libsplit::Server* server_;
  static libsplit::Bundle* bundle_;
  static libsplit::IdxFile* images_;
};
libsplit::Server* EndToEnd::server_ = nullptr;
libsplit::Bundle* EndToEnd::bundle_ = nullptr;
libsplit::IdxFile* EndToEnd::images_ = nullptr;

uint32_t argmax(const libsplit::Tensor& t) { return libsplit::top_k(t, 1).at(0).index; }

// Caller-driven, as split-client runs it (the I/O-thread client is checked by the tests below).
// Every split with its manifest codec over kImages images; a split with entropy tables also with
// q8, q8rans and q8zstd over kCodecImages: the coded ones are lossless, so they must answer what
// q8 answers in process.
TEST_F(EndToEnd, EverySplitThroughServerEqualsInProcessHeadQuantizedTail) {
  constexpr int kCodecImages = 200;
  auto client = connect("", /*io_thread=*/false);
  ASSERT_TRUE(client);
  auto session = libsplit::SplitSession::create(bundle_, client.get());
  ASSERT_TRUE(session.ok());
  const auto& m = bundle_->manifest();
  int coded_runs = 0;
  for (size_t s = 0; s < m.splits.size(); ++s) {
    std::vector<std::string> codecs = {""};  // "" = the manifest's
    const bool q8_family = m.splits[s].codec.kind == libsplit::CodecKind::kQuantPerTensor ||
                           m.splits[s].codec.kind == libsplit::CodecKind::kQuantRans;
    if (bundle_->tables(s) && q8_family) codecs.insert(codecs.end(), {"q8", "q8rans", "q8zstd"});
    for (const auto& codec_name : codecs) {
      const auto spec = codec_name.empty() ? m.splits[s].codec : *libsplit::parse_codec(codec_name);
      SCOPED_TRACE(m.splits[s].id + " " + libsplit::codec_name(spec));
      libsplit::Strategy st{libsplit::Strategy::Kind::kSplit, s, codec_name};
      coded_runs += libsplit::is_variable_length(spec);
      int mismatches = 0;
      for (int i = 0; i < (codec_name.empty() ? kImages : kCodecImages); ++i) {
        auto px = pixels(i);
        auto x = px;
        ASSERT_TRUE(libsplit::normalize_input(m.input, &x).ok());
        auto z = bundle_->run_head(s, x);
        ASSERT_TRUE(z.ok());
        // The reference: the lossless q8 bottleneck for the q8 family, else the codec's own.
        const auto ref_spec = libsplit::is_variable_length(spec) && spec.kind != libsplit::CodecKind::kSymbolRans
                                  ? libsplit::CodecSpec{libsplit::CodecKind::kQuantPerTensor, 8}
                                  : spec;
        libsplit::EncodedTensor enc;
        ASSERT_TRUE(libsplit::encode(*z, ref_spec, &enc, bundle_->tables(s)).ok());
        libsplit::Tensor zq;
        ASSERT_TRUE(libsplit::decode(enc, &zq, bundle_->tables(s)).ok());
        auto y = bundle_->run_tail(s, zq);
        ASSERT_TRUE(y.ok());
        auto r = (*session)->run(px, st, 3);
        ASSERT_TRUE(r.ok()) << "image " << i << ": " << r.status().to_string();
        mismatches += r->top.at(0).index != argmax(*y);
        EXPECT_NEAR(r->top.at(0).score, libsplit::top_k(*y, 1)[0].score, 1e-4);
        EXPECT_LE(r->request_bytes, r->payload_bytes + 64);  // the wire-overhead bar
      }
      EXPECT_EQ(mismatches, 0);
    }
  }
  // The committed bundle has calibrated tables: the coded paths were exercised.
  EXPECT_GT(coded_runs, 0);
}

TEST_F(EndToEnd, LocalAndOffloadEqualTheFullModel) {
  auto client = connect();
  ASSERT_TRUE(client);
  auto session = libsplit::SplitSession::create(bundle_, client.get());
  ASSERT_TRUE(session.ok());
  const auto& m = bundle_->manifest();
  int local_mismatch = 0, offload_mismatch = 0;
  for (int i = 0; i < kImages; ++i) {
    auto px = pixels(i);
    auto x = px;
    ASSERT_TRUE(libsplit::normalize_input(m.input, &x).ok());
    auto y = bundle_->run_full(x);
    ASSERT_TRUE(y.ok());
    const uint32_t want = argmax(*y);
    auto local = (*session)->run(px, {libsplit::Strategy::Kind::kLocal, 0, ""});
    ASSERT_TRUE(local.ok());
    auto off = (*session)->run(px, {libsplit::Strategy::Kind::kOffload, 0, ""});
    ASSERT_TRUE(off.ok()) << off.status().to_string();
    local_mismatch += local->top[0].index != want;
    offload_mismatch += off->top[0].index != want;
    EXPECT_EQ(off->payload_bytes, 784u);
  }
  EXPECT_EQ(local_mismatch, 0);
  EXPECT_EQ(offload_mismatch, 0);
}

TEST_F(EndToEnd, ManyRequestsInFlightOnOneConnection) {
  auto client = connect();
  ASSERT_TRUE(client);
  const auto& m = bundle_->manifest();
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, ok = 0;
  constexpr int kN = 64;
  std::vector<libsplit::EncodedTensor> encoded(kN);
  for (int i = 0; i < kN; ++i) {
    auto x = pixels(i);
    ASSERT_TRUE(libsplit::normalize_input(m.input, &x).ok());
    auto z = bundle_->run_head(0, x);
    ASSERT_TRUE(libsplit::encode(*z, m.splits[0].codec, &encoded[size_t(i)], bundle_->tables(0)).ok());
  }
  for (int i = 0; i < kN; ++i)
    client->infer_async(uint16_t(client->find_split(m.splits[0].id)), encoded[size_t(i)], 1, 10000,
                        [&](libsplit::Result<libsplit::Reply> r) {
                          std::lock_guard<std::mutex> lock(mu);
                          ++done;
                          ok += r.ok();
                          cv.notify_all();
                        });
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done == kN; }));
  EXPECT_EQ(ok, kN);
}

TEST_F(EndToEnd, WholeOutputTensorWhenTopKIsZero) {
  auto client = connect();
  const auto& m = bundle_->manifest();
  auto x = pixels(0);
  ASSERT_TRUE(libsplit::normalize_input(m.input, &x).ok());
  auto z = bundle_->run_head(0, x);
  libsplit::EncodedTensor enc;
  ASSERT_TRUE(libsplit::encode(*z, m.splits[0].codec, &enc, bundle_->tables(0)).ok());
  auto r = client->infer(uint16_t(client->find_split(m.splits[0].id)), enc, 0);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->output.shape, m.output_shape);
}

TEST_F(EndToEnd, BadRequestsGetErrorsAndTheConnectionKeepsWorking) {
  auto client = connect();
  const auto& m = bundle_->manifest();
  libsplit::EncodedTensor wrong;
  libsplit::Tensor t{{1, 3, 7, 7}, std::vector<float>(147, 1.0f)};
  ASSERT_TRUE(libsplit::encode(t, {libsplit::CodecKind::kQuantPerTensor, 8}, &wrong).ok());
  auto r = client->infer(0, wrong, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), libsplit::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("[1,3,7,7]"), std::string::npos) << r.status().message();
  r = client->infer(999, wrong, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), libsplit::StatusCode::kNotFound);
  auto x = pixels(1);
  ASSERT_TRUE(libsplit::normalize_input(m.input, &x).ok());
  auto z = bundle_->run_head(0, x);
  libsplit::EncodedTensor enc;
  ASSERT_TRUE(libsplit::encode(*z, m.splits[0].codec, &enc, bundle_->tables(0)).ok());
  EXPECT_TRUE(client->infer(uint16_t(client->find_split(m.splits[0].id)), enc, 1).ok());
}

TEST_F(EndToEnd, HandshakeErrors) {
  libsplit::ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string(server_->port());
  co.model = "no-such-model";
  auto c = libsplit::Client::connect(co);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), libsplit::StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find(bundle_->manifest().name), std::string::npos) << "lists what is available";
  co.model = bundle_->manifest().name;
  co.split = "no-such-split";
  c = libsplit::Client::connect(co);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), libsplit::StatusCode::kNotFound);
  co.split = "";
  co.version = "99.0";
  c = libsplit::Client::connect(co);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), libsplit::StatusCode::kNotFound);
}

TEST_F(EndToEnd, CallerDrivenAsyncCallCompletesBeforeItReturns) {
  auto client = connect("", /*io_thread=*/false);
  ASSERT_TRUE(client);
  const auto& m = bundle_->manifest();
  auto x = pixels(0);
  ASSERT_TRUE(libsplit::normalize_input(m.input, &x).ok());
  auto z = bundle_->run_head(0, x);
  ASSERT_TRUE(z.ok());
  libsplit::EncodedTensor enc;
  ASSERT_TRUE(libsplit::encode(*z, m.splits[0].codec, &enc, bundle_->tables(0)).ok());
  int calls = 0;
  bool ok = false;
  client->infer_async(uint16_t(client->find_split(m.splits[0].id)), enc, 1, 0, [&](libsplit::Result<libsplit::Reply> r) {
    ++calls;
    ok = r.ok();
  });
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(ok);
  // A bad split index is answered by the server with an error; the connection stays usable.
  auto bad = client->infer(999, enc, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), libsplit::StatusCode::kNotFound) << bad.status().to_string();
  EXPECT_TRUE(client->infer(uint16_t(client->find_split(m.splits[0].id)), enc, 1).ok());
}

// A server of its own with `so` (the committed bundle, a free loopback port unless `so` names
// one), started; null (and a test failure) if it cannot be.
std::unique_ptr<libsplit::Server> start_server(libsplit::ServerOptions so) {
  so.models_dir = kBundle;
  if (so.listen == libsplit::ServerOptions().listen) so.listen = "127.0.0.1:0";
  so.summary_interval_ms = 0;
  auto s = libsplit::Server::create(so);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  if (!s.ok() || !(*s)->start().ok()) return nullptr;
  return std::move(*s);
}

// The first split's bottleneck for a constant image, encoded with that split's codec.
struct Bottleneck {
  std::string model, split_id;
  libsplit::EncodedTensor enc;
};
Bottleneck constant_image_bottleneck(float value) {
  libsplit::BundleOptions bo;
  bo.load_tails = false;
  bo.load_full = false;
  auto bundle = libsplit::Bundle::open(kBundle, bo);
  EXPECT_TRUE(bundle.ok());
  Bottleneck b;
  if (!bundle.ok()) return b;
  const auto& m = (*bundle)->manifest();
  libsplit::Tensor x{m.input.shape, std::vector<float>(784, value)};
  auto z = (*bundle)->run_head(0, x);
  EXPECT_TRUE(z.ok());
  if (z.ok()) {
    EXPECT_TRUE(libsplit::encode(*z, m.splits[0].codec, &b.enc, (*bundle)->tables(0)).ok());
  }
  b.model = m.name;
  b.split_id = m.splits[0].id;
  return b;
}

// The server goes away and comes back on the same port: requests in the gap fail with
// kUnavailable (none hangs, none is answered twice), and the client reconnects by itself.
class Reconnect : public ::testing::TestWithParam<bool> {};

TEST_P(Reconnect, ClientComesBackWhenTheServerDoes) {
  const bool io_thread = GetParam();
  auto first = start_server({});
  ASSERT_TRUE(first);
  const uint16_t port = first->port();
  const auto b = constant_image_bottleneck(0.5f);
  const auto& enc = b.enc;
  libsplit::ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string(port);
  co.model = b.model;
  co.io_thread = io_thread;
  co.reconnect_initial_ms = 1;
  co.reconnect_max_ms = 20;
  co.default_deadline_ms = 5000;
  auto client = libsplit::Client::connect(co);
  ASSERT_TRUE(client.ok()) << client.status().to_string();
  const uint16_t split = uint16_t((*client)->find_split(b.split_id));
  auto before = (*client)->infer(split, enc, 1);
  ASSERT_TRUE(before.ok()) << before.status().to_string();

  first.reset();  // stops the server and closes the connection
  auto gap = (*client)->infer(split, enc, 1);
  ASSERT_FALSE(gap.ok());
  EXPECT_EQ(gap.status().code(), libsplit::StatusCode::kUnavailable) << gap.status().to_string();

  libsplit::ServerOptions so;
  so.listen = "127.0.0.1:" + std::to_string(port);
  auto second = start_server(so);
  ASSERT_TRUE(second);
  // Bounded: the backoff is at most 20 ms; give it 10 s of attempts before failing.
  libsplit::Result<libsplit::Reply> after = libsplit::Status();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int failures = 0;
  while (std::chrono::steady_clock::now() < give_up) {
    after = (*client)->infer(split, enc, 1);
    if (after.ok()) break;
    EXPECT_EQ(after.status().code(), libsplit::StatusCode::kUnavailable) << after.status().to_string();
    ++failures;
    std::this_thread::yield();
  }
  ASSERT_TRUE(after.ok()) << "no reconnect after " << failures << " attempts: " << after.status().to_string();
  EXPECT_EQ(after->top.at(0).index, before->top.at(0).index);
  EXPECT_TRUE((*client)->connected());
}

INSTANTIATE_TEST_SUITE_P(Client, Reconnect, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "WithIoThread" : "CallerDriven"; });

// Failover: a client given two servers moves to the second when the first goes away, and a
// request that was on the lost connection is sent again there and answered once.
class Failover : public ::testing::TestWithParam<bool> {};

TEST_P(Failover, InFlightRequestIsAnsweredByTheNextServer) {
  libsplit::ServerOptions held;
  held.max_batch = 64;
  held.batch_delay_us = 1000000;  // the first server holds its batch for 1 s: it dies first
  auto first = start_server(held);
  auto second = start_server({});
  ASSERT_TRUE(first && second);
  const auto b = constant_image_bottleneck(0.5f);
  libsplit::ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string(first->port()) + ",127.0.0.1:" + std::to_string(second->port());
  co.model = b.model;
  co.io_thread = GetParam();
  co.default_deadline_ms = 30000;
  auto client = libsplit::Client::connect(co);
  ASSERT_TRUE(client.ok()) << client.status().to_string();
  const uint16_t split = uint16_t((*client)->find_split(b.split_id));
  const uint64_t handshake_bytes = first->stats().bytes_received;
  // Stops the first server once the request has reached it (bounded wait on its byte count).
  std::thread killer([&] {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (first->stats().bytes_received == handshake_bytes && std::chrono::steady_clock::now() < give_up)
      std::this_thread::yield();
    first->stop();
  });
  auto r = (*client)->infer(split, b.enc, 1);
  killer.join();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  // (The first server may still have run it while stopping; that answer had no connection left.)
  EXPECT_EQ(second->stats().requests_ok, 1u);
  // Later requests go to the second server directly.
  auto again = (*client)->infer(split, b.enc, 1);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->top.at(0).index, r->top.at(0).index);
  EXPECT_EQ(second->stats().requests_ok, 2u);
}

TEST_P(Failover, UnreachableFirstServerIsSkippedAtConnect) {
  auto second = start_server({});
  ASSERT_TRUE(second);
  uint16_t dead_port;
  {
    auto gone = start_server({});  // a port that was just free and is closed again
    ASSERT_TRUE(gone);
    dead_port = gone->port();
  }
  const auto b = constant_image_bottleneck(0.5f);
  libsplit::ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string(dead_port) + ",127.0.0.1:" + std::to_string(second->port());
  co.model = b.model;
  co.io_thread = GetParam();
  auto client = libsplit::Client::connect(co);
  ASSERT_TRUE(client.ok()) << client.status().to_string();
  auto r = (*client)->infer(uint16_t((*client)->find_split(b.split_id)), b.enc, 1);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(second->stats().requests_ok, 1u);
  co.server = "127.0.0.1:" + std::to_string(dead_port) + ",not-an-endpoint";
  EXPECT_EQ(libsplit::Client::connect(co).status().code(), libsplit::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Client, Failover, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "WithIoThread" : "CallerDriven"; });

// Admission control: one worker, a queue of two; a burst of requests on one connection gets
// some answers and, at once, "resource exhausted" for the rest; nothing is lost.
TEST(Admission, FullQueueAnswersResourceExhausted) {
  libsplit::ServerOptions so;
  so.workers = 1;
  so.max_queue_per_model = 2;
  auto server = start_server(so);
  ASSERT_TRUE(server);
  const auto b = constant_image_bottleneck(0.25f);
  const auto& enc = b.enc;
  libsplit::ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string(server->port());
  co.model = b.model;
  auto client = libsplit::Client::connect(co);
  ASSERT_TRUE(client.ok());
  const uint16_t split = uint16_t((*client)->find_split(b.split_id));
  constexpr int kBurst = 24;
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0, ok = 0, full = 0;
  for (int i = 0; i < kBurst; ++i) {
    (*client)->infer_async(split, enc, 1, 10000, [&](libsplit::Result<libsplit::Reply> r) {
      std::lock_guard<std::mutex> lock(mu);
      ++answered;
      if (r.ok()) ++ok;
      else if (r.status().code() == libsplit::StatusCode::kResourceExhausted) ++full;
      else ADD_FAILURE() << r.status().to_string();
      cv.notify_one();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return answered == kBurst; }));
  EXPECT_GE(ok, 1);
  EXPECT_GE(full, 1) << "a burst of " << kBurst << " on one worker with a queue of 2";
  EXPECT_EQ(ok + full, kBurst);
  EXPECT_EQ(server->stats().rejected_queue_full, uint64_t(full));
}

// Graceful drain: requests the server accepted are all answered; the client is told, takes no
// new requests on that connection, and closes it once its last answer arrived.
TEST(Drain, AcceptedRequestsFinishAndClientsAreTold) {
  libsplit::ServerOptions so;
  so.workers = 1;
  auto server = start_server(so);
  ASSERT_TRUE(server);
  const auto b = constant_image_bottleneck(0.75f);
  const auto& enc = b.enc;
  libsplit::ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string(server->port());
  co.model = b.model;
  co.reconnect_initial_ms = 10000;  // no reconnect attempt within this test
  co.reconnect_max_ms = 20000;
  auto client = libsplit::Client::connect(co);
  ASSERT_TRUE(client.ok());
  const uint16_t split = uint16_t((*client)->find_split(b.split_id));
  constexpr int kN = 6;
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0, ok = 0;
  const uint64_t received_before = server->stats().requests_received;
  for (int i = 0; i < kN; ++i) {
    (*client)->infer_async(split, enc, 1, 30000, [&](libsplit::Result<libsplit::Reply> r) {
      std::lock_guard<std::mutex> lock(mu);
      ++answered;
      ok += r.ok();
      EXPECT_TRUE(r.ok()) << r.status().to_string();
      cv.notify_one();
    });
  }
  // Drain once the server has admitted all six requests (the client may write them in more than
  // one go, and on a loaded machine the later ones can trail the first answer; the count moves
  // only after a request's admission was decided). Bounded: 60 s.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (server->stats().requests_received - received_before < uint64_t(kN)) {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "the server never received all six requests";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto drained = server->drain(30000);
  EXPECT_TRUE(drained.ok()) << drained.to_string();
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return answered == kN; }));
  EXPECT_EQ(ok, kN);
  lock.unlock();
  auto after = (*client)->infer(split, enc, 1);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), libsplit::StatusCode::kUnavailable) << after.status().to_string();
  EXPECT_EQ(server->stats().requests_ok, uint64_t(kN));
}

TEST(Auth, TokenIsCheckedBeforeAnyModelWork) {
  libsplit::ServerOptions so;
  so.auth_token = "s3cret-token";
  auto server = start_server(so);
  ASSERT_TRUE(server);
  libsplit::ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string(server->port());
  co.model = "no-such-model";  // authentication is answered first, before the model lookup
  for (const char* token : {"", "s3cret-tokem", "s3cret-token-and-more", "s3cret"}) {
    co.auth_token = token;
    auto c = libsplit::Client::connect(co);
    ASSERT_FALSE(c.ok()) << "token \"" << token << "\"";
    EXPECT_EQ(c.status().code(), libsplit::StatusCode::kUnauthenticated) << c.status().to_string();
  }
  co.auth_token = "s3cret-token";
  auto c = libsplit::Client::connect(co);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), libsplit::StatusCode::kNotFound) << "past authentication: " << c.status().to_string();
  co.model = "fmnist-resnet";
  c = libsplit::Client::connect(co);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
}

TEST(Client, UnreachableServerIsAnErrorValue) {
  // Bind a port, close it: nothing listens there now.
  libsplit::ClientOptions co;
  co.server = "127.0.0.1:1";
  co.model = "x";
  co.connect_timeout_ms = 2000;
  auto c = libsplit::Client::connect(co);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), libsplit::StatusCode::kUnavailable);
  co.server = "not-an-address";
  c = libsplit::Client::connect(co);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), libsplit::StatusCode::kInvalidArgument);
}

// Requests sent asynchronously on `clients`; waits (bounded) for every answer.
struct Sent {
  std::unique_ptr<libsplit::Client> client;
  uint16_t split = 0;
};
std::vector<libsplit::Result<libsplit::Reply>> send_all(std::vector<Sent>& clients,
                                                        const std::vector<libsplit::EncodedTensor>& tensors,
                                                        const std::vector<uint32_t>& deadlines_ms, int top_k) {
  std::mutex mu;
  std::condition_variable cv;
  size_t answered = 0;
  std::vector<libsplit::Result<libsplit::Reply>> out(tensors.size(), libsplit::Status());
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto& c = clients[i % clients.size()];
    c.client->infer_async(c.split, tensors[i], top_k, deadlines_ms[i], [&, i](libsplit::Result<libsplit::Reply> r) {
      std::lock_guard<std::mutex> lock(mu);
      out[i] = std::move(r);
      ++answered;
      cv.notify_one();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return answered == tensors.size(); }));
  return out;
}

std::vector<Sent> connect_clients(const libsplit::Server& server, const std::string& model, const std::string& split,
                                  int n) {
  std::vector<Sent> clients;
  for (int i = 0; i < n; ++i) {
    libsplit::ClientOptions co;
    co.server = "127.0.0.1:" + std::to_string(server.port());
    co.model = model;
    auto c = libsplit::Client::connect(co);
    EXPECT_TRUE(c.ok()) << c.status().to_string();
    if (!c.ok()) return {};
    const int index = (*c)->find_split(split);
    EXPECT_GE(index, 0);
    clients.push_back({std::move(*c), uint16_t(index)});
  }
  return clients;
}

// Dynamic batching: requests of three devices are run together, and each answer equals what
// the tail gives that request alone (in process, batch of one).
TEST_F(EndToEnd, BatchedAnswersEqualUnbatched) {
  libsplit::ServerOptions so;
  so.workers = 1;
  so.max_batch = 8;
  so.batch_delay_us = 300000;
  auto server = start_server(so);
  ASSERT_TRUE(server);
  const auto& m = bundle_->manifest();
  for (size_t s = 0; s < m.splits.size(); ++s) {
    constexpr int kN = 24;
    std::vector<libsplit::EncodedTensor> enc;
    std::vector<libsplit::Tensor> want;
    ASSERT_NO_FATAL_FAILURE(reference(s, int(s) * kN, kN, &enc, &want));
    const auto before = server->stats();
    auto clients = connect_clients(*server, m.name, m.splits[s].id, 3);
    ASSERT_EQ(clients.size(), 3u);
    auto got = send_all(clients, enc, std::vector<uint32_t>(kN, 30000), /*top_k=*/0);
    for (int i = 0; i < kN; ++i) {
      ASSERT_TRUE(got[size_t(i)].ok()) << got[size_t(i)].status().to_string();
      const auto& y = got[size_t(i)]->output;
      ASSERT_EQ(y.shape, want[size_t(i)].shape);
      float worst = 0;
      for (size_t k = 0; k < y.data.size(); ++k) worst = std::max(worst, std::abs(y.data[k] - want[size_t(i)].data[k]));
      // A batched convolution may sum in another order: equal to float rounding, same class.
      EXPECT_LE(worst, 1e-4f) << "split " << m.splits[s].id << " request " << i;
      EXPECT_EQ(argmax(y), argmax(want[size_t(i)]));
    }
    const auto after = server->stats();
    EXPECT_EQ(after.forward_requests - before.forward_requests, uint64_t(kN));
    EXPECT_LT(after.forwards - before.forwards, uint64_t(kN)) << "no two requests were batched";
  }
}

// With a long batch delay the one worker holds its batch open, so admission is exact: a queue of
// Q takes Q requests of a burst and answers the rest "resource exhausted" at once.
TEST(Admission, ExactRejectionsOverAQueueOfQ) {
  libsplit::ServerOptions so;
  so.workers = 1;
  so.max_queue_per_model = 4;
  so.max_batch = 64;
  so.batch_delay_us = 1000000;
  auto server = start_server(so);
  ASSERT_TRUE(server);
  const auto b = constant_image_bottleneck(0.25f);
  auto clients = connect_clients(*server, b.model, b.split_id, 2);
  ASSERT_EQ(clients.size(), 2u);
  constexpr int kBurst = 10;
  auto got = send_all(clients, std::vector<libsplit::EncodedTensor>(kBurst, b.enc), std::vector<uint32_t>(kBurst, 30000), 1);
  int ok = 0, full = 0;
  for (const auto& r : got) {
    if (r.ok()) ++ok;
    else if (r.status().code() == libsplit::StatusCode::kResourceExhausted) ++full;
    else ADD_FAILURE() << r.status().to_string();
  }
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(full, kBurst - 4);
  const auto st = server->stats();
  EXPECT_EQ(st.rejected_queue_full, uint64_t(kBurst - 4));
  EXPECT_EQ(st.forwards, 1u);
  EXPECT_EQ(st.forward_requests, 4u);
}

// A request whose deadline passes while it waits is answered "deadline exceeded" and never
// reaches the model: the forward carries only the requests still in time.
TEST(Deadlines, ExpiredRequestsNeverReachTheModel) {
  libsplit::ServerOptions so;
  so.workers = 1;
  so.max_batch = 64;
  so.batch_delay_us = 1000000;  // the batch is taken 1 s after the first arrival
  auto server = start_server(so);
  ASSERT_TRUE(server);
  const auto b = constant_image_bottleneck(0.5f);
  auto clients = connect_clients(*server, b.model, b.split_id, 1);
  ASSERT_EQ(clients.size(), 1u);
  // Three with 100 ms, two with 30 s; the long ones' answers come after the server has dealt
  // with all five (one batch).
  auto got = send_all(clients, std::vector<libsplit::EncodedTensor>(5, b.enc), {100, 30000, 100, 30000, 100}, 1);
  for (size_t i = 0; i < got.size(); ++i) {
    if (i % 2 == 1) {
      EXPECT_TRUE(got[i].ok()) << got[i].status().to_string();
    } else {
      ASSERT_FALSE(got[i].ok());
      EXPECT_EQ(got[i].status().code(), libsplit::StatusCode::kDeadlineExceeded) << got[i].status().to_string();
    }
  }
  const auto st = server->stats();
  EXPECT_EQ(st.rejected_deadline, 3u);
  EXPECT_EQ(st.forwards, 1u);
  EXPECT_EQ(st.forward_requests, 2u);
  EXPECT_EQ(st.requests_ok, 2u);
}

// An idle server runs a short tail on the I/O thread that read the request: every request of a
// single stream but the first of its split (whose tail time is not known yet) runs inline, the
// answers equal in-process head -> 8-bit quantization -> tail; with the option at 0, none does;
// requests from several clients at once are all answered, inline or not.
TEST_F(EndToEnd, IdleServerRunsShortTailsInline) {
  const auto& m = bundle_->manifest();
  const size_t s = 0;
  constexpr int kN = 12;
  std::vector<libsplit::EncodedTensor> enc;
  std::vector<libsplit::Tensor> outputs;
  ASSERT_NO_FATAL_FAILURE(reference(s, 500, kN, &enc, &outputs));
  std::vector<uint32_t> want;
  for (const auto& y : outputs) want.push_back(argmax(y));
  for (uint32_t limit : {1000000u, 0u}) {
    libsplit::ServerOptions so;
    // 1 s (the most allowed): any tail of this bundle qualifies, however slow the machine, also
    // when the first pass (which sets the server's tail estimate) was held up by a busy host.
    so.inline_tail_max_us = limit;
    auto server = start_server(so);
    ASSERT_TRUE(server);
    auto clients = connect_clients(*server, m.name, m.splits[s].id, 1);
    ASSERT_EQ(clients.size(), 1u);
    for (int i = 0; i < kN; ++i) {  // single stream: the next request when the previous is answered
      auto r = clients[0].client->infer(clients[0].split, enc[size_t(i)], 1, 30000);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      EXPECT_EQ(r->top.at(0).index, want[size_t(i)]) << "request " << i;
    }
    const uint64_t single = server->stats().inline_runs;
    EXPECT_EQ(single, limit ? uint64_t(kN - 1) : 0u) << "inline_tail_max_us " << limit;
    // Pipelined on the one connection: a request with another already behind it goes to a worker
    // (run inline, each would wait for every earlier one on the I/O thread). Only a request that
    // happens to arrive alone may run inline; all of them cannot.
    auto got = send_all(clients, enc, std::vector<uint32_t>(kN, 30000), /*top_k=*/1);
    for (int i = 0; i < kN; ++i) {
      ASSERT_TRUE(got[size_t(i)].ok()) << got[size_t(i)].status().to_string();
      EXPECT_EQ(got[size_t(i)]->top.at(0).index, want[size_t(i)]) << "pipelined request " << i;
    }
    const uint64_t pipelined = server->stats().inline_runs - single;
    EXPECT_LT(pipelined, uint64_t(kN)) << "pipelined requests all ran on the I/O thread";
    // Several devices: never inline, whatever the timing (the I/O thread serves them all).
    auto many = connect_clients(*server, m.name, m.splits[s].id, 3);
    got = send_all(many, enc, std::vector<uint32_t>(kN, 30000), /*top_k=*/1);
    for (int i = 0; i < kN; ++i) {
      ASSERT_TRUE(got[size_t(i)].ok()) << got[size_t(i)].status().to_string();
      EXPECT_EQ(got[size_t(i)]->top.at(0).index, want[size_t(i)]) << "concurrent request " << i;
    }
    EXPECT_EQ(server->stats().inline_runs, single + pipelined) << "a request ran inline with four devices connected";
    EXPECT_EQ(server->stats().requests_ok, uint64_t(3 * kN));
  }
}

// Busy polling on both sides (a caller-driven client and the server's I/O thread poll without
// sleeping) changes when the bytes are read, not what is answered: the answers equal in-process
// head -> 8-bit quantization -> tail; and a spinning call still ends at its deadline.
TEST_F(EndToEnd, BusyPollingAnswersLikeBlockingAndKeepsDeadlines) {
  const auto& m = bundle_->manifest();
  const size_t s = 0;
  constexpr int kN = 8;
  std::vector<libsplit::EncodedTensor> enc;
  std::vector<libsplit::Tensor> outputs;
  ASSERT_NO_FATAL_FAILURE(reference(s, 700, kN, &enc, &outputs));
  libsplit::ServerOptions so;
  so.busy_poll_us = 20000;
  auto server = start_server(so);
  ASSERT_TRUE(server);
  libsplit::ClientOptions co;
  co.server = "127.0.0.1:" + std::to_string(server->port());
  co.model = m.name;
  co.io_thread = false;
  co.busy_poll_us = 20000;
  auto c = libsplit::Client::connect(co);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  const int index = (*c)->find_split(m.splits[s].id);
  ASSERT_GE(index, 0);
  for (int i = 0; i < kN; ++i) {
    auto r = (*c)->infer(uint16_t(index), enc[size_t(i)], 1, 30000);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->top.at(0).index, argmax(outputs[size_t(i)])) << "request " << i;
  }
  EXPECT_EQ(server->stats().requests_ok, uint64_t(kN));

  // A server that holds every request for 1 s (a batch waiting to fill): a call with a 50 ms
  // deadline spinning for up to 1 s returns deadline exceeded long before the answer.
  libsplit::ServerOptions slow;
  slow.workers = 1;
  slow.max_batch = 8;
  slow.batch_delay_us = 1000000;
  auto held = start_server(slow);
  ASSERT_TRUE(held);
  co.server = "127.0.0.1:" + std::to_string(held->port());
  co.busy_poll_us = 1000000;
  auto spinning = libsplit::Client::connect(co);
  ASSERT_TRUE(spinning.ok()) << spinning.status().to_string();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = (*spinning)->infer(uint16_t(index), enc[0], 1, 50);
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), libsplit::StatusCode::kDeadlineExceeded) << r.status().to_string();
  EXPECT_LT(waited, std::chrono::milliseconds(900)) << "the spin outlived the call's deadline";
}

TEST(Client, BadBusyPollIsAnErrorValue) {
  libsplit::ClientOptions co;
  co.model = "x";
  co.busy_poll_us = 1000001;
  auto c = libsplit::Client::connect(co);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), libsplit::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("busy_poll_us"), std::string::npos) << c.status().to_string();
}

TEST(Server, BadOptionsAreErrorValues) {
  libsplit::ServerOptions so;
  so.models_dir = "/nonexistent";
  so.listen = "127.0.0.1:0";
  auto s = libsplit::Server::create(so);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), libsplit::StatusCode::kNotFound);
  so.models_dir = LIBSPLIT_MODELS_DIR;
  so.listen = "127.0.0.1";
  EXPECT_FALSE(libsplit::Server::create(so).ok());
  so.listen = "127.0.0.1:0";
  so.workers = 0;
  EXPECT_FALSE(libsplit::Server::create(so).ok());
  so.workers = 1;
  so.max_batch = 0;
  EXPECT_FALSE(libsplit::Server::create(so).ok());
  so.max_batch = 8;
  so.batch_delay_us = 2000000;
  EXPECT_FALSE(libsplit::Server::create(so).ok());
  so.batch_delay_us = 0;
  so.inline_tail_max_us = 2000000;
  EXPECT_FALSE(libsplit::Server::create(so).ok());
  so.inline_tail_max_us = 0;
  so.busy_poll_us = 1000001;
  auto busy = libsplit::Server::create(so);
  ASSERT_FALSE(busy.ok());
  EXPECT_NE(busy.status().message().find("busy_poll_us"), std::string::npos) << busy.status().to_string();
}

}  // namespace
