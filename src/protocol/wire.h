// Little-endian, bounds-checked byte writing and reading. No struct is ever memcpy'd to the wire.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace libsplit::protocol {

class Writer {
 public:
  explicit Writer(std::vector<uint8_t>* out) : out_(out) {}
  void u8(uint8_t v) { out_->push_back(v); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void f32(float v) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    u32(b);
  }
  // A string of at most 255 bytes with a one-byte length (longer ones are cut: callers validate).
  void str8(const std::string& s);
  void bytes(const uint8_t* p, size_t n) { out_->insert(out_->end(), p, p + n); }
  size_t size() const { return out_->size(); }

 private:
  void put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_->push_back(uint8_t(v >> (8 * i)));
  }
  std::vector<uint8_t>* out_;
};

// Every read returns false (and reads nothing) when fewer bytes remain than it needs.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool u8(uint8_t* v);
  bool u16(uint16_t* v);
  bool u32(uint32_t* v);
  bool u64(uint64_t* v);
  bool f32(float* v);
  bool str8(std::string* s);
  bool bytes(size_t n, const uint8_t** p);
  size_t remaining() const { return n_ - pos_; }
  size_t position() const { return pos_; }

 private:
  bool get(int n, uint64_t* v);
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

}  // namespace libsplit::protocol
