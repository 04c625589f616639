// Plain tensors and predictions exchanged with the library. No LibTorch types.
#pragma once

#include "libsplit/export.h"

#include <cstdint>
#include <string>
#include <vector>

LIBSPLIT_PUBLIC_BEGIN
namespace libsplit {

// A dense float32 tensor in row-major (C) order that owns its data.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;  // size == product of shape

  static int64_t element_count(const std::vector<int64_t>& shape);
  int64_t numel() const { return element_count(shape); }
};

// "[1,2,7,7]"
std::string shape_to_string(const std::vector<int64_t>& shape);

struct ClassScore {
  uint32_t index = 0;  // class index into the manifest's labels
  float score = 0;     // softmax probability in [0, 1]
};

// Top-k classes of a logits tensor [1, C] (or [C]) by softmax probability, best first.
std::vector<ClassScore> top_k(const Tensor& logits, int k);

}  // namespace libsplit
LIBSPLIT_PUBLIC_END
