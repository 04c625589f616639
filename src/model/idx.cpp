#include <zlib.h>

#include "common/errors.h"
#include "libsplit/preprocess.h"

namespace libsplit {

using detail::invalid_argument;

// gzopen reads both gzip-compressed and plain files.
Result<IdxFile> IdxFile::open(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return detail::not_found(path, ": cannot open IDX file");
  struct Closer {
    gzFile f;
    ~Closer() { gzclose(f); }
  } closer{f};
  unsigned char magic[4];
  if (gzread(f, magic, 4) != 4) return invalid_argument(path, ": too short for an IDX header");
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] == 0 || magic[3] > 4)
    return invalid_argument(path, ": not an unsigned-byte IDX file (magic ", int(magic[0]), " ", int(magic[1]), " ",
                            int(magic[2]), " ", int(magic[3]), ")");
  IdxFile idx;
  int64_t total = 1;
  for (int i = 0; i < magic[3]; ++i) {
    unsigned char b[4];
    if (gzread(f, b, 4) != 4) return invalid_argument(path, ": truncated IDX dimensions");
    const int64_t d = int64_t(b[0]) << 24 | int64_t(b[1]) << 16 | int64_t(b[2]) << 8 | b[3];
    if (d <= 0 || d > (int64_t(1) << 28) || total > (int64_t(1) << 32) / d)
      return invalid_argument(path, ": IDX dimension ", i, " = ", d, " is out of range");
    total *= d;
    idx.dims_.push_back(d);
  }
  idx.record_size_ = idx.dims_[0] == 0 ? 0 : total / idx.dims_[0];
  idx.data_.resize(size_t(total));
  size_t got = 0;
  while (got < idx.data_.size()) {
    const unsigned chunk = unsigned(std::min<size_t>(idx.data_.size() - got, 1u << 30));
    const int r = gzread(f, idx.data_.data() + got, chunk);
    if (r <= 0) break;
    got += size_t(r);
  }
  if (got != idx.data_.size())
    return invalid_argument(path, ": IDX data truncated: expected ", idx.data_.size(), " bytes, got ", got);
  return idx;
}

}  // namespace libsplit
