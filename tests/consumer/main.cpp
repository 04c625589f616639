// Compiles against the installed public headers only (no LibTorch, Asio or OpenCV on the
// include path) and runs the codec.
#include <cstdio>

#include "libsplit/client.h"
#include "libsplit/codec.h"

int main() {
  libsplit::Tensor t{{1, 2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7}};
  libsplit::EncodedTensor e;
  if (!libsplit::encode(t, {libsplit::CodecKind::kQuantPerTensor, 8}, &e).ok()) return 1;
  libsplit::ClientOptions options;  // a firmware app's view of the client
  std::printf("consumer: %zu payload bytes, default server %s\n", e.payload.size(), options.server.c_str());
  return e.payload.size() == 8 ? 0 : 1;
}
