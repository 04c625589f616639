// Reassembles frames from a byte stream: the transport reads whatever the socket has into
// space(), commits it, then takes every complete frame with next(). One read usually carries
// a whole request (header and body), so a frame costs one receive, not one per part.
// No I/O and no Asio here; the limits are checked before the buffer grows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "libsplit/status.h"
#include "protocol/frames.h"

namespace libsplit::protocol {

struct Frame {
  FrameHeader header;
  const uint8_t* body = nullptr;  // valid until the next space() call
  size_t size() const { return header.body_length; }
};

class FrameReader {
 public:
  // `chunk`: bytes offered to each read when no large frame is pending.
  explicit FrameReader(size_t chunk = 16 * 1024) : chunk_(chunk) {}

  // Where the next read may write, and how much: at least one byte, and enough for the whole
  // declared frame once its header is known. Moves buffered bytes to the front when needed.
  uint8_t* space(size_t* n);
  void commit(size_t n) { end_ += n; }

  // The next complete frame, whose body is at most `max_body` bytes: true and *out filled;
  // false when more bytes are needed; an error status for a bad header or a CRC mismatch
  // (the stream cannot be trusted after that: close it).
  Result<bool> next(uint32_t max_body, Frame* out);

  // Some bytes of an unfinished frame are buffered.
  bool mid_frame() const { return end_ > pos_; }
  size_t buffered() const { return end_ - pos_; }

 private:
  size_t chunk_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0, end_ = 0;
  bool have_header_ = false;
  FrameHeader header_;
};

}  // namespace libsplit::protocol
