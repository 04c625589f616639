// libsplit wire protocol, version 1.0. Byte-level specification: src/protocol/PROTOCOL.md.
// Pure functions over byte spans: no I/O, no LibTorch, no Asio. Every decoder validates every
// field and length before it allocates, and returns kInvalidArgument/kDataLoss on bad input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "libsplit/codec.h"
#include "libsplit/status.h"
#include "libsplit/tensor.h"

namespace libsplit::protocol {

constexpr uint8_t kFrameMagic0 = 'L';
constexpr uint8_t kFrameMagic1 = 'S';
constexpr uint32_t kHelloMagic = 0x4C50534Cu;  // bytes "LSPL"
constexpr uint16_t kVersionMajor = 1;
constexpr uint16_t kVersionMinor = 2;  // 1.1: entropy-coded codecs (ids 5, 6, 7); 1.2: png (8), padded pings
constexpr size_t kHeaderSize = 12;
constexpr uint16_t kSplitFull = 0xFFFF;   // request index meaning "the full model" (offload)
constexpr size_t kMaxDims = 8;
constexpr uint32_t kMaxDim = 1u << 24;
constexpr uint64_t kMaxCodedElements = 1u << 24;  // elements of one entropy-coded tensor
constexpr uint32_t kDefaultMaxFrame = 4u << 20;  // 4 MiB, gRPC's default
constexpr uint32_t kMaxHelloBody = 4096;         // before the handshake only tiny frames pass

// Capability bits exchanged in the handshake.
constexpr uint32_t kCapTopK = 1u << 0;
constexpr uint32_t kCapTensorResult = 1u << 1;

enum class FrameType : uint8_t {
  kHello = 1,
  kHelloReply = 2,
  kRequest = 3,
  kResponse = 4,
  kError = 5,
  kPing = 6,
  kPong = 7,
  kDrain = 8,
};

struct FrameHeader {
  FrameType type = FrameType::kHello;
  uint8_t flags = 0;
  uint32_t body_length = 0;
  uint32_t crc = 0;  // CRC-32C of the body
};

// Checks magic, type, flags and the body length against `max_body`.
Status decode_header(const uint8_t* p, size_t n, uint32_t max_body, FrameHeader* out);
// Verifies the body's CRC against the header.
Status check_body(const FrameHeader& h, const uint8_t* body, size_t n);
// Appends header + body to `out`.
void append_frame(FrameType type, const std::vector<uint8_t>& body, std::vector<uint8_t>* out);

struct Hello {
  uint16_t major = kVersionMajor;
  uint16_t minor = kVersionMinor;
  uint32_t capabilities = kCapTopK | kCapTensorResult;
  uint32_t max_frame = kDefaultMaxFrame;  // largest body this peer accepts
  std::string model;    // bundle name
  std::string version;  // "" = the newest the server has
  std::string split;    // "" = every split of the model
  std::string token;    // pre-shared token, "" when none
};

struct SplitInfo {
  uint16_t index = 0;  // what requests carry
  std::string id;
  CodecSpec codec;
  std::vector<int64_t> bottleneck_shape;
};

struct HelloReply {
  uint16_t major = kVersionMajor;
  uint16_t minor = kVersionMinor;
  uint32_t capabilities = kCapTopK | kCapTensorResult;
  uint32_t max_frame = kDefaultMaxFrame;
  std::string model;
  std::string version;
  std::vector<int64_t> input_shape;
  std::vector<SplitInfo> splits;
};

struct Request {
  uint64_t id = 0;
  uint32_t deadline_us = 0;  // relative budget from arrival; 0 = the server's default
  uint16_t split = 0;        // index from HelloReply, or kSplitFull
  uint8_t top_k = 5;         // 0 = answer with the whole output tensor
  EncodedTensor tensor;
};

struct Response {
  uint64_t id = 0;
  uint32_t queue_us = 0;  // server time between arrival and the start of the tail
  uint32_t tail_us = 0;   // server compute time of the tail (or full model)
  std::vector<ClassScore> top;
  bool has_tensor = false;
  Tensor output;
};

struct ErrorFrame {
  uint64_t id = 0;  // 0 = about the connection, not one request
  StatusCode code = StatusCode::kInternal;
  std::string message;
};

std::vector<uint8_t> encode_hello(const Hello& h);
std::vector<uint8_t> encode_hello_reply(const HelloReply& r);
std::vector<uint8_t> encode_request(const Request& r);
std::vector<uint8_t> encode_response(const Response& r);
std::vector<uint8_t> encode_error(const ErrorFrame& e);
std::vector<uint8_t> encode_u64(uint64_t v);  // ping/pong bodies
// A ping: the nonce, then (protocol 1.2) `padding` zero bytes that probe the uplink's rate.
std::vector<uint8_t> encode_ping(uint64_t nonce, uint32_t padding);
// Reads a ping's nonce; padding after it is ignored.
Status decode_ping(const uint8_t* p, size_t n, uint64_t* nonce);

// Decoders take the body only (after the header and CRC check).
Status decode_hello(const uint8_t* p, size_t n, Hello* out);
Status decode_hello_reply(const uint8_t* p, size_t n, HelloReply* out);
Status decode_request(const uint8_t* p, size_t n, Request* out);
Status decode_response(const uint8_t* p, size_t n, Response* out);
Status decode_error(const uint8_t* p, size_t n, ErrorFrame* out);
Status decode_u64(const uint8_t* p, size_t n, uint64_t* out);

// Size in bytes of the request frame (header included) that encode_request would produce.
size_t request_frame_size(const Request& r);

}  // namespace libsplit::protocol
