// Errors as values. Every fallible libsplit call returns a Status or a Result<T>; no exception
// crosses the public API. Status and Result are plain values: copy them freely, any thread.
#pragma once

#include "libsplit/export.h"

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

LIBSPLIT_PUBLIC_BEGIN
namespace libsplit {

// Codes are stable: they travel in the wire protocol's error frames (one byte).
enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument = 1,     // bad input: shape, size, flag, malformed bytes
  kNotFound = 2,            // a file, model, version or split that does not exist
  kDeadlineExceeded = 3,    // the request's deadline passed before it completed
  kResourceExhausted = 4,   // a queue, a connection or a size limit is full
  kUnavailable = 5,         // the peer cannot be reached or is going away
  kInternal = 6,            // a bug or an unexpected failure inside libsplit or LibTorch
  kDataLoss = 7,            // corrupt bytes: CRC mismatch, truncated stream
  kFailedPrecondition = 8,  // the call does not fit the current state (e.g. not connected)
  kUnauthenticated = 9,     // missing or wrong credentials
};

// Short stable name of a code, e.g. "invalid_argument".
const char* status_code_name(StatusCode code);

class Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid_argument: <message>", or "ok".
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-OK Status. Accessing value() of an error is a programming error.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}           // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}    // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<1>(v_);
  }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace libsplit
LIBSPLIT_PUBLIC_END
