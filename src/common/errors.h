// Internal helpers to build Status values with formatted messages.
#pragma once

#include <sstream>
#include <string>
#include <utility>

#include "libsplit/status.h"

namespace libsplit::detail {

template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
Status invalid_argument(Args&&... a) { return Status(StatusCode::kInvalidArgument, cat(std::forward<Args>(a)...)); }
template <typename... Args>
Status not_found(Args&&... a) { return Status(StatusCode::kNotFound, cat(std::forward<Args>(a)...)); }
template <typename... Args>
Status internal_error(Args&&... a) { return Status(StatusCode::kInternal, cat(std::forward<Args>(a)...)); }
template <typename... Args>
Status unavailable(Args&&... a) { return Status(StatusCode::kUnavailable, cat(std::forward<Args>(a)...)); }
template <typename... Args>
Status data_loss(Args&&... a) { return Status(StatusCode::kDataLoss, cat(std::forward<Args>(a)...)); }
template <typename... Args>
Status resource_exhausted(Args&&... a) { return Status(StatusCode::kResourceExhausted, cat(std::forward<Args>(a)...)); }
template <typename... Args>
Status deadline_exceeded(Args&&... a) { return Status(StatusCode::kDeadlineExceeded, cat(std::forward<Args>(a)...)); }
template <typename... Args>
Status failed_precondition(Args&&... a) { return Status(StatusCode::kFailedPrecondition, cat(std::forward<Args>(a)...)); }

#define LIBSPLIT_RETURN_IF_ERROR(expr)      \
  do {                                      \
    ::libsplit::Status _st = (expr);        \
    if (!_st.ok()) return _st;              \
  } while (0)

}  // namespace libsplit::detail
