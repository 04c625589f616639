#include "protocol/frames.h"

#include <cmath>

#include "codec/crc32c.h"
#include "common/errors.h"
#include "protocol/wire.h"

namespace libsplit::protocol {

using detail::data_loss;
using detail::invalid_argument;

namespace {

Status truncated(const char* what, const char* field) {
  return invalid_argument(what, " frame truncated at field ", field);
}

void write_shape(Writer& w, const std::vector<int64_t>& shape) {
  w.u8(uint8_t(shape.size()));
  for (int64_t d : shape) w.u32(uint32_t(d));
}

// Reads ndim and dims; each dim in [1, kMaxDim], ndim in [1, kMaxDims].
Status read_shape(Reader& r, const char* what, std::vector<int64_t>* shape) {
  uint8_t ndim;
  if (!r.u8(&ndim)) return truncated(what, "ndim");
  if (ndim == 0 || ndim > kMaxDims)
    return invalid_argument(what, " frame: ndim must be in [1, ", kMaxDims, "], got ", int(ndim));
  shape->resize(ndim);
  for (size_t i = 0; i < ndim; ++i) {
    uint32_t d;
    if (!r.u32(&d)) return truncated(what, "dims");
    if (d == 0 || d > kMaxDim)
      return invalid_argument(what, " frame: dimension ", i, " must be in [1, ", kMaxDim, "], got ", d);
    (*shape)[i] = d;
  }
  return {};
}

// Product of dims with an overflow-safe cap; fails if above `cap`.
Status bounded_count(const std::vector<int64_t>& shape, uint64_t cap, const char* what, uint64_t* n) {
  uint64_t c = 1;
  for (int64_t d : shape) {
    if (c > cap / uint64_t(d))
      return invalid_argument(what, " frame: shape ", shape_to_string(shape), " exceeds ", cap, " elements");
    c *= uint64_t(d);
  }
  *n = c;
  return {};
}

Status read_codec(Reader& r, const char* what, CodecSpec* spec) {
  uint8_t kind, bits;
  if (!r.u8(&kind)) return truncated(what, "codec");
  if (!r.u8(&bits)) return truncated(what, "bits");
  if (kind > uint8_t(CodecKind::kImagePng))
    return invalid_argument(what, " frame: unknown codec id ", int(kind));
  spec->kind = CodecKind(kind);
  spec->bits = bits;
  const std::string name = codec_name(*spec);
  auto parsed = parse_codec(name);
  if (!parsed.ok() || *parsed != *spec)
    return invalid_argument(what, " frame: codec id ", int(kind), " does not take ", int(bits), " bits");
  return {};
}

// The prefix hello and hello reply share: magic, major, minor, capabilities, max_frame.
void write_hello_prefix(Writer& w, uint16_t major, uint16_t minor, uint32_t caps, uint32_t max_frame) {
  w.u32(kHelloMagic);
  w.u16(major);
  w.u16(minor);
  w.u32(caps);
  w.u32(max_frame);
}

Status read_hello_prefix(Reader& r, const char* what, uint16_t* major, uint16_t* minor, uint32_t* caps,
                         uint32_t* max_frame) {
  uint32_t magic;
  if (!r.u32(&magic)) return truncated(what, "magic");
  if (magic != kHelloMagic) return invalid_argument(what, " frame: bad magic 0x", std::hex, magic);
  if (!r.u16(major)) return truncated(what, "major");
  if (!r.u16(minor)) return truncated(what, "minor");
  if (!r.u32(caps)) return truncated(what, "capabilities");
  if (!r.u32(max_frame)) return truncated(what, "max_frame");
  return {};
}

Status finish(const Reader& r, const char* what) {
  if (r.remaining() != 0)
    return invalid_argument(what, " frame has ", r.remaining(), " unexpected trailing bytes");
  return {};
}

}  // namespace

Status decode_header(const uint8_t* p, size_t n, uint32_t max_body, FrameHeader* out) {
  if (n < kHeaderSize) return invalid_argument("frame header needs ", kHeaderSize, " bytes, got ", n);
  if (p[0] != kFrameMagic0 || p[1] != kFrameMagic1)
    return invalid_argument("bad frame magic 0x", std::hex, int(p[0]), " 0x", int(p[1]),
                            " (expected \"LS\")");
  if (p[2] < uint8_t(FrameType::kHello) || p[2] > uint8_t(FrameType::kDrain))
    return invalid_argument("unknown frame type ", int(p[2]));
  if (p[3] != 0) return invalid_argument("frame flags must be 0, got ", int(p[3]));
  Reader r(p + 4, 8);
  out->type = FrameType(p[2]);
  out->flags = p[3];
  r.u32(&out->body_length);
  r.u32(&out->crc);
  if (out->body_length > max_body)
    return Status(StatusCode::kResourceExhausted,
                  detail::cat("frame body of ", out->body_length, " bytes exceeds the limit of ",
                              max_body, " bytes"));
  return {};
}

Status check_body(const FrameHeader& h, const uint8_t* body, size_t n) {
  if (n != h.body_length) return invalid_argument("frame body has ", n, " bytes, header says ", h.body_length);
  const uint32_t crc = codec::crc32c(body, n);
  if (crc != h.crc) return data_loss("frame CRC-32C mismatch: header 0x", std::hex, h.crc, ", body 0x", crc);
  return {};
}

void append_frame(FrameType type, const std::vector<uint8_t>& body, std::vector<uint8_t>* out) {
  Writer w(out);
  w.u8(kFrameMagic0);
  w.u8(kFrameMagic1);
  w.u8(uint8_t(type));
  w.u8(0);
  w.u32(uint32_t(body.size()));
  w.u32(codec::crc32c(body.data(), body.size()));
  w.bytes(body.data(), body.size());
}

std::vector<uint8_t> encode_hello(const Hello& h) {
  std::vector<uint8_t> b;
  Writer w(&b);
  write_hello_prefix(w, h.major, h.minor, h.capabilities, h.max_frame);
  w.str8(h.model);
  w.str8(h.version);
  w.str8(h.split);
  w.str8(h.token);
  return b;
}

Status decode_hello(const uint8_t* p, size_t n, Hello* out) {
  Reader r(p, n);
  LIBSPLIT_RETURN_IF_ERROR(read_hello_prefix(r, "hello", &out->major, &out->minor, &out->capabilities, &out->max_frame));
  if (!r.str8(&out->model)) return truncated("hello", "model");
  if (!r.str8(&out->version)) return truncated("hello", "version");
  if (!r.str8(&out->split)) return truncated("hello", "split");
  if (!r.str8(&out->token)) return truncated("hello", "token");
  if (out->max_frame < 1024) return invalid_argument("hello frame: max_frame ", out->max_frame, " is below 1024");
  return finish(r, "hello");
}

std::vector<uint8_t> encode_hello_reply(const HelloReply& h) {
  std::vector<uint8_t> b;
  Writer w(&b);
  write_hello_prefix(w, h.major, h.minor, h.capabilities, h.max_frame);
  w.str8(h.model);
  w.str8(h.version);
  write_shape(w, h.input_shape);
  w.u16(uint16_t(h.splits.size()));
  for (const auto& s : h.splits) {
    w.u16(s.index);
    w.str8(s.id);
    w.u8(uint8_t(s.codec.kind));
    w.u8(uint8_t(s.codec.bits));
    write_shape(w, s.bottleneck_shape);
  }
  return b;
}

Status decode_hello_reply(const uint8_t* p, size_t n, HelloReply* out) {
  Reader r(p, n);
  LIBSPLIT_RETURN_IF_ERROR(
      read_hello_prefix(r, "hello reply", &out->major, &out->minor, &out->capabilities, &out->max_frame));
  if (!r.str8(&out->model)) return truncated("hello reply", "model");
  if (!r.str8(&out->version)) return truncated("hello reply", "version");
  LIBSPLIT_RETURN_IF_ERROR(read_shape(r, "hello reply", &out->input_shape));
  uint16_t count;
  if (!r.u16(&count)) return truncated("hello reply", "split count");
  // Each split takes at least 2 + 1 + 2 + 1 + 4 bytes: check before reserving.
  if (size_t(count) * 10 > r.remaining())
    return invalid_argument("hello reply frame: ", count, " splits cannot fit in ", r.remaining(), " bytes");
  out->splits.resize(count);
  for (auto& s : out->splits) {
    if (!r.u16(&s.index)) return truncated("hello reply", "split index");
    if (!r.str8(&s.id)) return truncated("hello reply", "split id");
    LIBSPLIT_RETURN_IF_ERROR(read_codec(r, "hello reply", &s.codec));
    LIBSPLIT_RETURN_IF_ERROR(read_shape(r, "hello reply", &s.bottleneck_shape));
  }
  return finish(r, "hello reply");
}

size_t request_frame_size(const Request& r) {
  const auto& t = r.tensor;
  return kHeaderSize + 8 + 4 + 2 + 1 + 2 + 1 + 4 * t.shape.size() + 5 * t.scales.size() +
         (is_variable_length(t.codec) ? 4 : 0) + t.payload.size();
}

std::vector<uint8_t> encode_request(const Request& r) {
  std::vector<uint8_t> b;
  b.reserve(request_frame_size(r));
  Writer w(&b);
  w.u64(r.id);
  w.u32(r.deadline_us);
  w.u16(r.split);
  w.u8(r.top_k);
  w.u8(uint8_t(r.tensor.codec.kind));
  w.u8(uint8_t(r.tensor.codec.bits));
  write_shape(w, r.tensor.shape);
  for (size_t i = 0; i < r.tensor.scales.size(); ++i) {
    w.f32(r.tensor.scales[i]);
    w.u8(i < r.tensor.zero_points.size() ? r.tensor.zero_points[i] : 0);
  }
  if (is_variable_length(r.tensor.codec)) w.u32(r.tensor.table_version);
  w.bytes(r.tensor.payload.data(), r.tensor.payload.size());
  return b;
}

Status decode_request(const uint8_t* p, size_t n, Request* out) {
  Reader r(p, n);
  if (!r.u64(&out->id)) return truncated("request", "request_id");
  if (!r.u32(&out->deadline_us)) return truncated("request", "deadline_us");
  if (!r.u16(&out->split)) return truncated("request", "split");
  if (!r.u8(&out->top_k)) return truncated("request", "top_k");
  auto& t = out->tensor;
  LIBSPLIT_RETURN_IF_ERROR(read_codec(r, "request", &t.codec));
  LIBSPLIT_RETURN_IF_ERROR(read_shape(r, "request", &t.shape));
  uint64_t count;
  // A fixed-size payload cannot hold more elements than 4 per byte (2-bit codes) of what remains;
  // a coded one can, up to kMaxCodedElements (the server then checks the split's shape before
  // decoding).
  const bool variable = is_variable_length(t.codec);
  LIBSPLIT_RETURN_IF_ERROR(
      bounded_count(t.shape, variable ? kMaxCodedElements : uint64_t(r.remaining()) * 4 + 4, "request", &count));
  size_t params = 0;
  if (t.codec.kind == CodecKind::kQuantPerTensor || t.codec.kind == CodecKind::kQuantRans ||
      t.codec.kind == CodecKind::kQuantZstd)
    params = 1;
  if (t.codec.kind == CodecKind::kQuantPerChannel) {
    if (t.shape.size() < 2) return invalid_argument("request frame: per-channel codec needs ndim >= 2");
    params = size_t(t.shape[1]);
  }
  if (params * 5 > r.remaining())
    return truncated("request", "quantization parameters");
  t.scales.resize(params);
  t.zero_points.resize(params);
  const uint32_t qmax = params ? (1u << t.codec.bits) - 1u : 0u;  // quantized kinds have <= 8 bits
  for (size_t i = 0; i < params; ++i) {
    r.f32(&t.scales[i]);
    r.u8(&t.zero_points[i]);
    if (!std::isfinite(t.scales[i]) || t.scales[i] <= 0.0f)
      return invalid_argument("request frame: scale ", i, " must be finite and positive, got ", t.scales[i]);
    if (t.zero_points[i] > qmax)
      return invalid_argument("request frame: zero point ", int(t.zero_points[i]), " exceeds ", qmax);
  }
  t.table_version = 0;
  if (variable) {
    if (!r.u32(&t.table_version)) return truncated("request", "table_version");
    if (r.remaining() == 0) return invalid_argument("request frame: codec ", codec_name(t.codec), " with an empty payload");
    const uint8_t* payload;
    const size_t len = r.remaining();
    r.bytes(len, &payload);
    t.payload.assign(payload, payload + len);
    return {};
  }
  const size_t expected = payload_size(t.codec, int64_t(count));
  if (r.remaining() != expected)
    return invalid_argument("request frame: codec ", codec_name(t.codec), " with shape ",
                            shape_to_string(t.shape), " needs ", expected, " payload bytes, got ",
                            r.remaining());
  const uint8_t* payload;
  r.bytes(expected, &payload);
  t.payload.assign(payload, payload + expected);
  return {};
}

std::vector<uint8_t> encode_response(const Response& r) {
  std::vector<uint8_t> b;
  Writer w(&b);
  w.u64(r.id);
  w.u32(r.queue_us);
  w.u32(r.tail_us);
  if (!r.has_tensor) {
    w.u8(1);
    w.u8(uint8_t(r.top.size()));
    for (const auto& c : r.top) {
      w.u32(c.index);
      w.f32(c.score);
    }
  } else {
    w.u8(2);
    write_shape(w, r.output.shape);
    for (float v : r.output.data) w.f32(v);
  }
  return b;
}

Status decode_response(const uint8_t* p, size_t n, Response* out) {
  Reader r(p, n);
  if (!r.u64(&out->id)) return truncated("response", "request_id");
  if (!r.u32(&out->queue_us)) return truncated("response", "queue_us");
  if (!r.u32(&out->tail_us)) return truncated("response", "tail_us");
  uint8_t kind;
  if (!r.u8(&kind)) return truncated("response", "kind");
  if (kind == 1) {
    uint8_t k;
    if (!r.u8(&k)) return truncated("response", "k");
    if (size_t(k) * 8 != r.remaining())
      return invalid_argument("response frame: ", int(k), " classes need ", int(k) * 8, " bytes, got ", r.remaining());
    out->has_tensor = false;
    out->top.resize(k);
    for (auto& c : out->top) {
      r.u32(&c.index);
      r.f32(&c.score);
    }
    return {};
  }
  if (kind != 2) return invalid_argument("response frame: unknown result kind ", int(kind));
  out->has_tensor = true;
  LIBSPLIT_RETURN_IF_ERROR(read_shape(r, "response", &out->output.shape));
  uint64_t count;
  LIBSPLIT_RETURN_IF_ERROR(bounded_count(out->output.shape, r.remaining() / 4, "response", &count));
  if (count * 4 != r.remaining())
    return invalid_argument("response frame: tensor ", shape_to_string(out->output.shape), " needs ",
                            count * 4, " bytes, got ", r.remaining());
  out->output.data.resize(count);
  for (auto& v : out->output.data) r.f32(&v);
  return {};
}

std::vector<uint8_t> encode_error(const ErrorFrame& e) {
  std::vector<uint8_t> b;
  Writer w(&b);
  w.u64(e.id);
  w.u8(uint8_t(e.code));
  const size_t len = e.message.size() > 65535 ? 65535 : e.message.size();
  w.u16(uint16_t(len));
  w.bytes(reinterpret_cast<const uint8_t*>(e.message.data()), len);
  return b;
}

Status decode_error(const uint8_t* p, size_t n, ErrorFrame* out) {
  Reader r(p, n);
  uint8_t code;
  uint16_t len;
  if (!r.u64(&out->id)) return truncated("error", "request_id");
  if (!r.u8(&code)) return truncated("error", "code");
  if (code == 0 || code > uint8_t(StatusCode::kUnauthenticated))
    return invalid_argument("error frame: unknown status code ", int(code));
  out->code = StatusCode(code);
  if (!r.u16(&len)) return truncated("error", "message length");
  const uint8_t* m;
  if (!r.bytes(len, &m)) return truncated("error", "message");
  out->message.assign(reinterpret_cast<const char*>(m), len);
  return finish(r, "error");
}

std::vector<uint8_t> encode_u64(uint64_t v) {
  std::vector<uint8_t> b;
  Writer(&b).u64(v);
  return b;
}

Status decode_u64(const uint8_t* p, size_t n, uint64_t* out) {
  Reader r(p, n);
  if (!r.u64(out)) return truncated("ping", "nonce");
  return finish(r, "ping");
}

std::vector<uint8_t> encode_ping(uint64_t nonce, uint32_t padding) {
  std::vector<uint8_t> b;
  b.reserve(8 + padding);
  Writer(&b).u64(nonce);
  b.resize(8 + size_t(padding), 0);
  return b;
}

Status decode_ping(const uint8_t* p, size_t n, uint64_t* nonce) {
  Reader r(p, n);
  if (!r.u64(nonce)) return truncated("ping", "nonce");
  return {};
}

}  // namespace libsplit::protocol
