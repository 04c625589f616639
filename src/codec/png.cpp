#include "codec/png.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include <zlib.h>

#include "common/errors.h"

namespace libsplit::codec::png {

namespace {

constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
constexpr int kMaxSide = 1 << 14;

void put_u32(std::vector<uint8_t>* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(uint8_t(v >> s));
}
uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

void put_chunk(std::vector<uint8_t>* out, const char type[4], const uint8_t* data, size_t n) {
  put_u32(out, uint32_t(n));
  const size_t start = out->size();
  out->insert(out->end(), type, type + 4);
  if (n) out->insert(out->end(), data, data + n);
  const uLong crc = crc32(0L, out->data() + start, uInt(4 + n));
  put_u32(out, uint32_t(crc));
}

int paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

// The prediction of filter `f` for byte i of a row (`row`'s bytes before i already final; `prev`
// the row above, null for the first), bpp bytes per pixel.
int predict(int f, const uint8_t* row, const uint8_t* prev, size_t i, size_t bpp) {
  const int a = i >= bpp ? row[i - bpp] : 0;
  const int b = prev ? prev[i] : 0;
  switch (f) {
    case 1: return a;
    case 2: return b;
    case 3: return (a + b) / 2;
    case 4: return paeth(a, b, prev && i >= bpp ? prev[i - bpp] : 0);
    default: return 0;
  }
}

// Filters one row of `n` bytes (bpp bytes per pixel) with filter `f` into out.
void filter_row(int f, const uint8_t* row, const uint8_t* prev, size_t n, int bpp, uint8_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = uint8_t(row[i] - predict(f, row, prev, i, size_t(bpp)));
}

Status fail(const std::string& what) { return detail::invalid_argument("codec png: ", what); }

}  // namespace

Status encode(const uint8_t* planar, int channels, int height, int width, std::vector<uint8_t>* out) {
  if (channels != 1 && channels != 3) return fail("only 1 or 3 channels can be coded, got " + std::to_string(channels));
  if (height < 1 || width < 1 || height > kMaxSide || width > kMaxSide)
    return fail("image size " + std::to_string(height) + "x" + std::to_string(width) + " is outside 1.." +
                std::to_string(kMaxSide));
  const size_t row_bytes = size_t(width) * size_t(channels);
  const size_t plane = size_t(width) * size_t(height);
  std::vector<uint8_t> rows(row_bytes * size_t(height));  // interleaved
  for (size_t y = 0; y < size_t(height); ++y)
    for (size_t x = 0; x < size_t(width); ++x)
      for (size_t c = 0; c < size_t(channels); ++c)
        rows[y * row_bytes + x * size_t(channels) + c] = planar[c * plane + y * size_t(width) + x];
  // Per row, the filter whose output has the smallest sum of absolute signed bytes.
  std::vector<uint8_t> filtered((row_bytes + 1) * size_t(height));
  std::vector<uint8_t> trial(row_bytes);
  for (size_t y = 0; y < size_t(height); ++y) {
    const uint8_t* row = &rows[y * row_bytes];
    const uint8_t* prev = y ? &rows[(y - 1) * row_bytes] : nullptr;
    uint8_t* dst = &filtered[y * (row_bytes + 1)];
    uint64_t best = UINT64_MAX;
    for (int f = 0; f < 5; ++f) {
      filter_row(f, row, prev, row_bytes, channels, trial.data());
      uint64_t sum = 0;
      for (uint8_t v : trial) sum += uint64_t(std::abs(int(int8_t(v))));
      if (sum < best) {
        best = sum;
        dst[0] = uint8_t(f);
        std::memcpy(dst + 1, trial.data(), row_bytes);
      }
    }
  }
  uLongf zlen = compressBound(uLong(filtered.size()));
  std::vector<uint8_t> z(zlen);
  if (compress2(z.data(), &zlen, filtered.data(), uLong(filtered.size()), 6) != Z_OK)
    return detail::internal_error("codec png: zlib compression failed");
  out->clear();
  out->reserve(8 + 25 + 12 + zlen + 12);
  out->insert(out->end(), kSignature, kSignature + 8);
  uint8_t ihdr[13];
  for (int i = 0; i < 4; ++i) {
    ihdr[i] = uint8_t(uint32_t(width) >> (24 - 8 * i));
    ihdr[4 + i] = uint8_t(uint32_t(height) >> (24 - 8 * i));
  }
  ihdr[8] = 8;                         // bit depth
  ihdr[9] = channels == 1 ? 0 : 2;     // greyscale or truecolour
  ihdr[10] = ihdr[11] = ihdr[12] = 0;  // deflate, adaptive filtering, no interlace
  put_chunk(out, "IHDR", ihdr, 13);
  put_chunk(out, "IDAT", z.data(), zlen);
  put_chunk(out, "IEND", nullptr, 0);
  return {};
}

Status decode(const uint8_t* data, size_t size, int channels, int height, int width, uint8_t* planar) {
  if (size < 8 || std::memcmp(data, kSignature, 8) != 0) return fail("the payload does not start with the PNG signature");
  size_t pos = 8;
  bool have_header = false, have_end = false;
  std::vector<uint8_t> idat;
  const size_t row_bytes = size_t(width) * size_t(channels);
  const size_t raw_size = (row_bytes + 1) * size_t(height);
  while (pos < size) {
    if (size - pos < 12) return fail("truncated chunk at byte " + std::to_string(pos));
    const uint32_t len = get_u32(data + pos);
    if (len > size - pos - 12) return fail("chunk at byte " + std::to_string(pos) + " claims " + std::to_string(len) +
                                           " bytes, only " + std::to_string(size - pos - 12) + " remain");
    const uint8_t* type = data + pos + 4;
    const uint8_t* body = data + pos + 8;
    const uint32_t crc = get_u32(body + len);
    if (uint32_t(crc32(0L, type, uInt(4 + len))) != crc)
      return detail::data_loss("codec png: CRC mismatch in chunk at byte ", pos);
    const std::string name(reinterpret_cast<const char*>(type), 4);
    if (!have_header && name != "IHDR") return fail("the first chunk is " + name + ", not IHDR");
    if (name == "IHDR") {
      if (have_header) return fail("a second IHDR chunk");
      if (len != 13) return fail("IHDR has " + std::to_string(len) + " bytes, not 13");
      const uint32_t w = get_u32(body), h = get_u32(body + 4);
      if (body[8] != 8) return fail("bit depth " + std::to_string(body[8]) + " (only 8 is accepted)");
      const int want_type = channels == 1 ? 0 : 2;
      if (body[9] != want_type)
        return fail("colour type " + std::to_string(body[9]) + ", the model takes " + std::to_string(channels) +
                    " channel(s) (type " + std::to_string(want_type) + ")");
      if (body[10] != 0 || body[11] != 0) return fail("unknown compression or filter method");
      if (body[12] != 0) return fail("interlaced images are not accepted");
      if (w != uint32_t(width) || h != uint32_t(height))
        return fail("image is " + std::to_string(w) + "x" + std::to_string(h) + ", the model takes " +
                    std::to_string(width) + "x" + std::to_string(height));
      have_header = true;
    } else if (name == "IDAT") {
      if (idat.size() + len > raw_size + raw_size / 2 + 1024) return fail("IDAT data far larger than the image");
      idat.insert(idat.end(), body, body + len);
    } else if (name == "IEND") {
      have_end = true;
      break;
    } else if (!(type[0] & 0x20)) {
      return fail("unknown critical chunk " + name);
    }
    pos += 12 + size_t(len);
  }
  if (!have_end) return fail("no IEND chunk");
  if (idat.empty()) return fail("no IDAT chunk");
  std::vector<uint8_t> raw(raw_size + 1);  // one spare byte: more data than the image is an error
  uLongf got = uLongf(raw.size());
  const int zr = uncompress(raw.data(), &got, idat.data(), uLong(idat.size()));
  if (zr != Z_OK && zr != Z_BUF_ERROR) return detail::data_loss("codec png: corrupt image data (zlib ", zr, ")");
  if (zr == Z_BUF_ERROR || got != raw_size)
    return fail("image data inflates to " + std::string(zr == Z_BUF_ERROR ? "more than " : "") + std::to_string(got) +
                " bytes, " + std::to_string(raw_size) + " expected");
  std::vector<uint8_t> rows(row_bytes * size_t(height));
  const size_t bpp = size_t(channels);
  for (size_t y = 0; y < size_t(height); ++y) {
    const uint8_t* src = &raw[y * (row_bytes + 1)];
    const int f = src[0];
    if (f > 4) return fail("row " + std::to_string(y) + " has filter type " + std::to_string(f));
    ++src;
    uint8_t* row = &rows[y * row_bytes];
    const uint8_t* prev = y ? &rows[(y - 1) * row_bytes] : nullptr;
    for (size_t i = 0; i < row_bytes; ++i) row[i] = uint8_t(src[i] + predict(f, row, prev, i, bpp));
  }
  const size_t plane = size_t(width) * size_t(height);
  for (size_t y = 0; y < size_t(height); ++y)
    for (size_t x = 0; x < size_t(width); ++x)
      for (size_t c = 0; c < bpp; ++c) planar[c * plane + y * size_t(width) + x] = rows[y * row_bytes + x * bpp + c];
  return {};
}

}  // namespace libsplit::codec::png
