#include "protocol/wire.h"

namespace libsplit::protocol {

void Writer::str8(const std::string& s) {
  const size_t n = s.size() > 255 ? 255 : s.size();
  u8(uint8_t(n));
  bytes(reinterpret_cast<const uint8_t*>(s.data()), n);
}

bool Reader::get(int n, uint64_t* v) {
  if (remaining() < size_t(n)) return false;
  uint64_t x = 0;
  for (int i = 0; i < n; ++i) x |= uint64_t(p_[pos_ + size_t(i)]) << (8 * i);
  pos_ += size_t(n);
  *v = x;
  return true;
}

bool Reader::u8(uint8_t* v) {
  uint64_t x;
  if (!get(1, &x)) return false;
  *v = uint8_t(x);
  return true;
}
bool Reader::u16(uint16_t* v) {
  uint64_t x;
  if (!get(2, &x)) return false;
  *v = uint16_t(x);
  return true;
}
bool Reader::u32(uint32_t* v) {
  uint64_t x;
  if (!get(4, &x)) return false;
  *v = uint32_t(x);
  return true;
}
bool Reader::u64(uint64_t* v) { return get(8, v); }
bool Reader::f32(float* v) {
  uint32_t b;
  if (!u32(&b)) return false;
  std::memcpy(v, &b, 4);
  return true;
}
bool Reader::str8(std::string* s) {
  uint8_t n;
  if (remaining() < 1) return false;
  const size_t save = pos_;
  u8(&n);
  const uint8_t* p;
  if (!bytes(n, &p)) {
    pos_ = save;
    return false;
  }
  s->assign(reinterpret_cast<const char*>(p), n);
  return true;
}
bool Reader::bytes(size_t n, const uint8_t** p) {
  if (remaining() < n) return false;
  *p = p_ + pos_;
  pos_ += n;
  return true;
}

}  // namespace libsplit::protocol
