// A nonlinear context model for a bottleneck's 8-bit codes (tables format 3): a small masked
// network (MADE: one hidden layer plus a direct path, each output reading only the codes before
// it) predicts every code of a sample and picks the calibrated table its residual is coded with.
// Integer arithmetic only (int16 weights, exact int32 block sums added in int64, shifts written
// as floor divisions), so every machine predicts alike; tools/libsplit_tools/context.py trains it
// and is the reference this code matches bit for bit.
//
// For a sample's codes c (P elements), z_j = c_j - 128, hidden units sorted by degree d_k:
//   h_k   = min(max(b1_k + sum_{j <= d_k} w1_kj z_j, 0) >> hidden_shift, kHiddenMax)
//   m_i   = bm_i + sum_{d_k < i} wm_ik h_k + sum_{j < i} vm_ij z_j,  s_i likewise (bs, ws, vs)
//   p_i   = clamp(round_q(m_i), 0, 255),  bin_i = clamp(round_q(s_i), 0, bins - 1)
//   round_q(v) = floor((v + 2^(q-1)) / 2^q), q = out_shift
//   symbol_i = (c_i - p_i + 128) mod 256, coded with table (i * groups / P) * bins + bin_i.
// Hidden unit k needs only the codes [0, d_k], so a decoder computes each unit once, as soon as
// the codes it reads are decoded: one pass of the network per sample, encoding or decoding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace libsplit::codec {

class ContextModel {
 public:
  static constexpr int64_t kHiddenMax = (int64_t(1) << 24) - 1;

  size_t elements = 0;  // P; 0: no context model
  uint32_t hidden = 0, bins = 0, groups = 0;
  uint32_t hidden_shift = 0, out_shift = 0;
  std::vector<uint32_t> degree;       // per hidden unit, non-decreasing, < P
  std::vector<int64_t> hidden_bias;   // per hidden unit
  std::vector<uint32_t> hidden_first; // per hidden unit: its first weight in hidden_weights
  std::vector<int16_t> hidden_weights;
  std::vector<uint32_t> visible;      // per element i: hidden units of degree < i (a prefix)
  std::vector<int64_t> out_bias;      // per element: mean bias, scale bias
  std::vector<size_t> out_first;      // per element: its first weight in out_weights
  // per element i: mean (visible[i] hidden weights, i code weights), then scale (same layout)
  std::vector<int16_t> out_weights;

  bool empty() const { return elements == 0; }
  size_t table_count() const { return size_t(groups) * bins; }

  // The running state of one sample: which hidden units are computed so far. Codes and hidden
  // values are kept as int16 so the sums run as int16 x int16 -> int32 multiply-adds (which
  // compilers vectorize), in blocks short enough that no int32 sum can overflow: a hidden value
  // (0 to 2^24 - 1) is kept as three 8-bit digits, each summed on its own and scaled back.
  struct Sample {
    std::vector<int16_t> h[3];  // digits of h: h = d0 + 2^8 d1 + 2^16 d2
    std::vector<int16_t> z;     // code - 128
    uint32_t ready = 0;
    int digits = 1;             // digits in use: 1 + (a computed h >= 2^8) + (one >= 2^16)
  };
  void begin(Sample* s) const;
  // Element i's prediction and table, given that codes [0, i) of the sample are in s->z (each
  // added with set_code as it becomes known).
  void predict(Sample* s, size_t i, uint8_t* prediction, uint32_t* table) const;
  static void set_code(Sample* s, size_t i, uint8_t code) { s->z[i] = int16_t(int32_t(code) - 128); }

  // Every element of n codes (whole samples): symbols and table indices, for the encoder.
  void to_symbols(const uint8_t* codes, size_t n, uint8_t* symbols, uint32_t* tables) const;
};

}  // namespace libsplit::codec
