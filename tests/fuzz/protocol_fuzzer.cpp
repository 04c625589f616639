// libFuzzer harness over everything a peer's bytes reach before any model runs: the frame
// reader (headers, lengths, CRCs, split across reads), the handshake, request, response, error
// and ping decoders, and the decoding of a request's tensor (every codec, PNG included); and the
// entropy tables a bundle holds (every format) with a q8rans stream decoded against them.
// The first input byte picks the target, the rest is the peer's bytes.
//   Built and run for a fixed time by tests/fuzz/run_fuzz.sh (Debian's clang, ASan + UBSan).
// Built with -DLIBSPLIT_FUZZ_SEEDS instead, main() writes the seed corpus (valid frames of each
// kind) into the directory given: tests/fuzz/corpus/ holds its output.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "codec/crc32c.h"
#include "codec/tables.h"
#include "libsplit/codec.h"
#include "protocol/frame_reader.h"
#include "protocol/frames.h"

namespace proto = libsplit::protocol;

namespace {

// Decodes a request's tensor as the server would, when its size is bounded like the server's.
void decode_tensor(const libsplit::EncodedTensor& t) {
  int64_t n = 1;
  for (int64_t d : t.shape) {
    if (d <= 0 || d > (1 << 20)) return;
    n *= d;
    if (n > (1 << 20)) return;
  }
  libsplit::Tensor out;
  (void)libsplit::decode(t, &out);
}

void decode_body(proto::FrameType type, const uint8_t* p, size_t n) {
  switch (type) {
    case proto::FrameType::kHello: {
      proto::Hello h;
      (void)proto::decode_hello(p, n, &h);
      break;
    }
    case proto::FrameType::kHelloReply: {
      proto::HelloReply r;
      (void)proto::decode_hello_reply(p, n, &r);
      break;
    }
    case proto::FrameType::kRequest: {
      proto::Request r;
      if (proto::decode_request(p, n, &r).ok()) decode_tensor(r.tensor);
      break;
    }
    case proto::FrameType::kResponse: {
      proto::Response r;
      (void)proto::decode_response(p, n, &r);
      break;
    }
    case proto::FrameType::kError: {
      proto::ErrorFrame e;
      (void)proto::decode_error(p, n, &e);
      break;
    }
    case proto::FrameType::kPing: {
      uint64_t nonce;
      (void)proto::decode_ping(p, n, &nonce);
      break;
    }
    default: {
      uint64_t v;
      (void)proto::decode_u64(p, n, &v);
    }
  }
}

// The bytes as a stream: fed to a frame reader in reads of varying size (the byte after the
// selector sets the read size), the first frame under the pre-handshake limit.
void stream(const uint8_t* p, size_t n) {
  if (n == 0) return;
  const size_t step = size_t(p[0] % 64) + 1;
  ++p;
  --n;
  proto::FrameReader reader(256);
  proto::Frame frame;
  size_t fed = 0;
  bool hello_done = false;
  while (fed < n) {
    size_t room = 0;
    uint8_t* dst = reader.space(&room);
    const size_t k = std::min({room, step, n - fed});
    std::copy(p + fed, p + fed + k, dst);
    reader.commit(k);
    fed += k;
    for (;;) {
      auto got = reader.next(hello_done ? (1u << 20) : proto::kMaxHelloBody, &frame);
      if (!got.ok()) return;  // the server closes such a connection
      if (!*got) break;
      decode_body(frame.header.type, frame.body, frame.size());
      hello_done = true;
    }
  }
}

// [u16 L][L bytes: a tables file, its CRC recomputed so that the fuzzer reaches the fields
// behind it][u8 samples][a q8rans stream]: the tables parsed, then the stream decoded with them
// into samples x (the tables' elements per sample) codes.
void tables_and_stream(const uint8_t* p, size_t n) {
  if (n < 3) return;
  const size_t len = size_t(p[0]) | size_t(p[1]) << 8;
  p += 2;
  n -= 2;
  if (len < 8 || len > n) return;
  std::vector<uint8_t> file(p, p + len);
  const uint32_t crc = libsplit::codec::crc32c(file.data(), len - 4);
  for (int b = 0; b < 4; ++b) file[len - 4 + size_t(b)] = uint8_t(crc >> (8 * b));
  auto tables = libsplit::EntropyTables::parse(file.data(), file.size(), "fuzz.tables");
  if (!tables.ok() || n == len) return;
  const size_t samples = size_t(p[len]) % 4 + 1;
  libsplit::EncodedTensor e;
  e.codec = libsplit::CodecSpec{libsplit::CodecKind::kQuantRans, 8};
  e.table_version = (*tables)->version();
  const auto& t = (*tables)->impl();
  const size_t per = !t.context.empty() ? t.context.elements : !t.predictor.empty() ? t.predictor.elements : t.tables.size();
  if (per > 4096) return;
  e.shape = {int64_t(samples), int64_t(per)};
  e.scales = {1.0f};
  e.zero_points = {0};
  e.payload.assign(p + len + 1, p + n);
  libsplit::Tensor out;
  (void)libsplit::decode(e, &out, tables->get());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t target = data[0];
  ++data;
  --size;
  switch (target % 5) {
    case 0:
      stream(data, size);
      break;
    case 1:
      decode_body(proto::FrameType::kHello, data, size);
      break;
    case 2:
      decode_body(proto::FrameType::kRequest, data, size);
      break;
    case 4:
      tables_and_stream(data, size);
      break;
    default:
      if (size > 0) decode_body(proto::FrameType(data[0] % 9), data + 1, size - 1);
  }
  return 0;
}

#ifdef LIBSPLIT_FUZZ_SEEDS
namespace {
void write(const std::string& dir, const std::string& name, uint8_t target, const std::vector<uint8_t>& bytes) {
  std::vector<uint8_t> all{target};
  all.insert(all.end(), bytes.begin(), bytes.end());
  FILE* f = std::fopen((dir + "/" + name).c_str(), "wb");
  if (!f) return;
  std::fwrite(all.data(), 1, all.size(), f);
  std::fclose(f);
}
// A small tables file of each format: two tables; format 2 with a two-element linear predictor,
// format 3 with a two-element context model (one hidden unit, two scale bins).
std::vector<uint8_t> tables_seed(uint16_t format) {
  std::vector<uint8_t> b = {'L', 'S', 'E', 'T'};
  auto put = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) b.push_back(uint8_t(v >> (8 * i)));
  };
  put(format, 2);
  put(0, 2);
  put(2, 4);
  for (int t = 0; t < 2; ++t) {
    b.push_back(uint8_t(t * 100));
    put(3, 2);
    for (uint32_t f : {30000u, 30000u, 5536u}) put(f, 2);
  }
  if (format == 2) {
    put(2, 4);
    put(128u << 16, 4), put(0, 4);               // element 0: 128
    put(0, 4), put(1, 4), put(65536, 4);         // element 1: the code before it
  } else if (format == 3) {
    put(2, 4), put(1, 4), put(2, 4), put(1, 4);  // 2 elements, 1 hidden unit, 2 bins, 1 group
    b.push_back(0), b.push_back(10);             // shifts
    put(0, 4), put(0, 8), put(300, 2);           // the unit: degree 0, bias 0, one weight
    put(128u << 10, 8), put(0, 8);               // element 0: mean 128, bin 0
    put(0, 8), put(512, 2), put(1024, 2);        // element 1: mean from the unit and code 0,
    put(1024, 8), put(0, 2), put(0, 2);          //            bin 1
  }
  put(libsplit::codec::crc32c(b.data(), b.size()), 4);
  return b;
}

std::vector<uint8_t> framed(proto::FrameType type, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> out;
  proto::append_frame(type, body, &out);
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return std::fprintf(stderr, "usage: %s DIR\n", argv[0]), 2;
  const std::string dir = argv[1];
  proto::Hello h;
  h.model = "fmnist-resnet";
  h.split = "bf1";
  h.token = "secret";
  const auto hello = proto::encode_hello(h);
  // A request per codec kind, each with a small valid tensor.
  std::vector<std::vector<uint8_t>> requests;
  libsplit::Tensor z{{1, 2, 3, 3}, std::vector<float>(18)};
  for (size_t i = 0; i < z.data.size(); ++i) z.data[i] = float(i) * 0.25f - 2.f;
  libsplit::Tensor image{{1, 1, 4, 4}, std::vector<float>(16)};
  for (size_t i = 0; i < image.data.size(); ++i) image.data[i] = float(i * 16);
  for (const char* c : {"f32", "f16", "q8", "q4", "q2", "q8c", "q4c", "q8zstd", "u8image", "png"}) {
    auto spec = libsplit::parse_codec(c);
    if (!spec.ok()) return std::fprintf(stderr, "codec %s: %s\n", c, spec.status().to_string().c_str()), 1;
    const bool is_image = libsplit::is_image(*spec);
    proto::Request r;
    r.id = 7;
    r.split = is_image ? proto::kSplitFull : 0;
    auto st = libsplit::encode(is_image ? image : z, *spec, &r.tensor);
    if (!st.ok()) return std::fprintf(stderr, "codec %s: %s\n", c, st.to_string().c_str()), 1;
    requests.push_back(proto::encode_request(r));
    write(dir, std::string("request-") + c, 2, requests.back());
  }
  write(dir, "hello", 1, hello);
  for (uint16_t format : {1, 2, 3}) {  // tables + a stream of two samples coded with them
    const auto file = tables_seed(format);
    auto tables = libsplit::EntropyTables::parse(file.data(), file.size(), "seed.tables");
    if (!tables.ok()) return std::fprintf(stderr, "tables seed %d: %s\n", format, tables.status().to_string().c_str()), 1;
    libsplit::EncodedTensor e;
    auto st = libsplit::encode(libsplit::Tensor{{2, 2}, {0.5f, -1.f, 3.f, 2.5f}}, libsplit::CodecSpec{libsplit::CodecKind::kQuantRans, 8},
                               &e, tables->get());
    if (!st.ok()) return std::fprintf(stderr, "tables seed %d: %s\n", format, st.to_string().c_str()), 1;
    std::vector<uint8_t> seed{uint8_t(file.size()), uint8_t(file.size() >> 8)};
    seed.insert(seed.end(), file.begin(), file.end());
    seed.push_back(1);  // two samples
    seed.insert(seed.end(), e.payload.begin(), e.payload.end());
    write(dir, "tables-format" + std::to_string(format), 4, seed);
  }
  // A connection's bytes: hello, two requests, a ping; read one byte at a time and in chunks.
  std::vector<uint8_t> conn = framed(proto::FrameType::kHello, hello);
  for (size_t i = 0; i < requests.size() && i < 2; ++i) {
    auto f = framed(proto::FrameType::kRequest, requests[i]);
    conn.insert(conn.end(), f.begin(), f.end());
  }
  auto ping = framed(proto::FrameType::kPing, proto::encode_ping(9, 16));
  conn.insert(conn.end(), ping.begin(), ping.end());
  for (uint8_t step : {0, 7, 63}) {
    std::vector<uint8_t> s{step};
    s.insert(s.end(), conn.begin(), conn.end());
    write(dir, "stream-step" + std::to_string(int(step) + 1), 0, s);
  }
  proto::HelloReply hr;
  hr.model = "fmnist-resnet";
  hr.version = "1.0.0";
  hr.input_shape = {1, 1, 28, 28};
  hr.splits.push_back({0, "bf1", *libsplit::parse_codec("q8"), {1, 2, 7, 7}});
  auto with_type = [](proto::FrameType t, std::vector<uint8_t> body) {
    body.insert(body.begin(), uint8_t(t));
    return body;
  };
  write(dir, "hello-reply", 3, with_type(proto::FrameType::kHelloReply, proto::encode_hello_reply(hr)));
  proto::Response resp;
  resp.id = 7;
  resp.top = {{3, 0.5f}, {1, 0.25f}};
  write(dir, "response-top", 3, with_type(proto::FrameType::kResponse, proto::encode_response(resp)));
  resp.top.clear();
  resp.has_tensor = true;
  resp.output = libsplit::Tensor{{1, 4}, {1.f, 2.f, 3.f, 4.f}};
  write(dir, "response-tensor", 3, with_type(proto::FrameType::kResponse, proto::encode_response(resp)));
  write(dir, "error", 3,
        with_type(proto::FrameType::kError, proto::encode_error({7, libsplit::StatusCode::kNotFound, "no such split"})));
  return 0;
}
#endif
