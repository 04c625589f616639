#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "libsplit/status.h"
#include "libsplit/tensor.h"

namespace libsplit {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kDeadlineExceeded: return "deadline_exceeded";
    case StatusCode::kResourceExhausted: return "resource_exhausted";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kInternal: return "internal";
    case StatusCode::kDataLoss: return "data_loss";
    case StatusCode::kFailedPrecondition: return "failed_precondition";
    case StatusCode::kUnauthenticated: return "unauthenticated";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(status_code_name(code_)) + ": " + message_;
}

int64_t Tensor::element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? "," : "") << shape[i];
  os << ']';
  return os.str();
}

std::vector<ClassScore> top_k(const Tensor& logits, int k) {
  const auto& v = logits.data;
  if (v.empty() || k <= 0) return {};
  float mx = *std::max_element(v.begin(), v.end());
  std::vector<double> p(v.size());
  double sum = 0;
  for (size_t i = 0; i < v.size(); ++i) sum += (p[i] = std::exp(double(v[i]) - mx));
  std::vector<uint32_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0u);
  size_t n = std::min<size_t>(size_t(k), v.size());
  // Ties keep the lower index first, like argmax.
  std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), [&](uint32_t a, uint32_t b) {
    return v[a] > v[b] || (v[a] == v[b] && a < b);
  });
  std::vector<ClassScore> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = {idx[i], float(p[idx[i]] / sum)};
  return out;
}

}  // namespace libsplit
