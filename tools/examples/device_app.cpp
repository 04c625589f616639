// A minimal device app on the C++ API: classify one image with the bundle's default split,
// the head here and the tail on split-server.   device_app HOST:PORT BUNDLE_DIR IMAGE
#include <cstdio>

#include "libsplit/libsplit.h"

int fail(const libsplit::Status& st) {
  std::fprintf(stderr, "device_app: %s\n", st.to_string().c_str());
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 4) return std::fprintf(stderr, "usage: device_app HOST:PORT BUNDLE_DIR IMAGE\n"), 2;
  libsplit::BundleOptions bo;
  bo.load_tails = false;  // tails run on the server
  auto bundle = libsplit::Bundle::open(argv[2], bo);
  if (!bundle.ok()) return fail(bundle.status());
  const libsplit::Manifest& m = (*bundle)->manifest();

  libsplit::ClientOptions co;
  co.server = argv[1];
  co.model = m.name;
  co.io_thread = false;  // one request at a time, driven by this thread
  auto client = libsplit::Client::connect(co);
  if (!client.ok()) return fail(client.status());
  auto session = libsplit::SplitSession::create(bundle->get(), client->get());
  if (!session.ok()) return fail(session.status());

  auto pixels = libsplit::load_image_file(argv[3], m.input);
  if (!pixels.ok()) return fail(pixels.status());
  auto strategy = libsplit::Strategy::parse(m.default_split.empty() ? m.splits.at(0).id : m.default_split, m);
  if (!strategy.ok()) return fail(strategy.status());
  auto r = (*session)->run(*pixels, *strategy, /*top_k=*/1);
  if (!r.ok()) return fail(r.status());

  std::printf("%u %s %.4f split %s, %zu bytes sent, %.0f us\n", r->top[0].index, m.labels.at(r->top[0].index).c_str(),
              r->top[0].score, r->strategy.c_str(), r->request_bytes, r->total_us);
  return 0;
}
