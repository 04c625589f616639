#include "protocol/frame_reader.h"

#include <cstring>

namespace libsplit::protocol {

uint8_t* FrameReader::space(size_t* n) {
  // Bytes the frame under way still needs, at least one read's worth.
  size_t want = chunk_;
  if (have_header_) want = std::max(want, size_t(header_.body_length) - std::min(buffered(), size_t(header_.body_length)));
  if (pos_ == end_) pos_ = end_ = 0;
  if (buf_.size() - end_ < want) {
    if (pos_ > 0) {  // slide the unfinished frame to the front
      std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
      end_ -= pos_;
      pos_ = 0;
    }
    if (buf_.size() - end_ < want) buf_.resize(end_ + want);
  } else if (buf_.size() > 4 * chunk_ && end_ == 0) {
    buf_.resize(chunk_);  // a large frame has passed: give the memory back
    buf_.shrink_to_fit();
  }
  *n = buf_.size() - end_;
  return buf_.data() + end_;
}

Result<bool> FrameReader::next(uint32_t max_body, Frame* out) {
  if (!have_header_) {
    if (buffered() < kHeaderSize) return false;
    Status st = decode_header(buf_.data() + pos_, kHeaderSize, max_body, &header_);
    if (!st.ok()) return st;
    pos_ += kHeaderSize;
    have_header_ = true;
  }
  if (buffered() < header_.body_length) return false;
  Status st = check_body(header_, buf_.data() + pos_, header_.body_length);
  if (!st.ok()) return st;
  out->header = header_;
  out->body = buf_.data() + pos_;
  pos_ += header_.body_length;
  have_header_ = false;
  return true;
}

}  // namespace libsplit::protocol
