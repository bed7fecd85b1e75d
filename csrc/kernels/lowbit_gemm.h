// Low-bit weight GEMM: uint8 activations x 4-, 2- or 1-bit weights with one
// float scale per group of `group_size` weights along K; float output. For
// weight-only-style compression of Linear layers (LLM decode: M = 1..8).
//
//   acc_g[m, n] = sum_{k in group g} (a[m, k] - a_zero_point[m]) * v[n, k]   (exact int32)
//   y[m, n]     = clamp((sum_g float(acc_g[m, n]) * scale[n, g]) * row_scale[m] + bias[n])
//
// Weight levels v: 4-bit [-8, 7], 2-bit [-2, 1], 1-bit {-1, +1} (binary). The
// float sum runs over groups in order, one multiply and one add per group, on
// every path: all paths give the same bits. Torch-free, like qgemm.h.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/aligned_buffer.h"
#include "kernels/isa.h"

namespace qext::kernels {

// Columns per packed block: one zmm (AVX-512) or two ymm (AVX2) of int32 lanes.
constexpr int64_t kLowBitBlockCols = 16;

inline int lowbit_min_level(int bits) { return bits == 1 ? -1 : -(1 << (bits - 1)); }
inline int lowbit_max_level(int bits) { return bits == 1 ? 1 : (1 << (bits - 1)) - 1; }
// True for the bit widths this kernel packs (1, 2, 4).
inline bool lowbit_supported(int64_t bits) { return bits == 1 || bits == 2 || bits == 4; }
// The group size in effect for K inputs: `group_size` (a multiple of 4), or
// all of K rounded up to whole steps of 4 when it is 0 or larger than that.
inline int64_t lowbit_group_size(int64_t group_size, int64_t k) {
  const int64_t k_padded = (k + 3) / 4 * 4;
  return group_size == 0 || group_size > k_padded ? k_padded : group_size;
}
// A level's unsigned code and back: level + 8 (4-bit), level + 2 (2-bit),
// (level + 1) / 2 (1-bit).
inline int lowbit_code(int level, int bits) { return bits == 1 ? (level + 1) / 2 : level - lowbit_min_level(bits); }
inline int lowbit_level(int code, int bits) { return bits == 1 ? 2 * code - 1 : code + lowbit_min_level(bits); }
// level = multiplier * code - offset: the vector paths multiply the codes
// (0..15, no unpacking arithmetic) and fold the offset into the zero-point
// correction with each row's activation sum over the group.
inline int lowbit_code_multiplier(int bits) { return bits == 1 ? 2 : 1; }
inline int lowbit_code_offset(int bits) { return bits == 1 ? 1 : -lowbit_min_level(bits); }

// Weights packed in blocks of 16 columns (move-only); K runs in steps of 4 (padded), and
// each step's 64 levels (column c, k offset j: t = 4c + j) take 8 * bits
// bytes: level t's code sits in byte t % (8 * bits) at bit (t / (8 * bits)) *
// bits (codes: lowbit_code). A vector unpacks a step with one broadcast, one variable shift and one mask.
class LowBitWeights {
 public:
  // levels: int8 [N, K] within the bits' level range; scales: float [N, groups]
  // where groups = ceil(K / group_size). group_size is a multiple of 4, or 0
  // for one group over the whole row. Throws std::invalid_argument otherwise.
  LowBitWeights(const int8_t* levels, const float* scales, int64_t n, int64_t k, int bits, int64_t group_size);

  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int bits() const { return bits_; }
  int64_t group_size() const { return group_size_; }  // in k; a multiple of 4
  int64_t groups() const { return groups_; }
  // K rounded up to whole steps of 4: how far the kernels read each A row.
  int64_t k_padded() const { return k_steps_ * 4; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t step_bytes() const { return 8 * bits_; }
  const uint8_t* block(int64_t b) const { return codes_.data() + b * k_steps_ * step_bytes(); }
  // [groups][16] per block: each group's scale, and the sum of its codes
  // (padding included) for the activation zero-point correction.
  const float* block_scales(int64_t b) const { return scales_.data() + b * groups_ * kLowBitBlockCols; }
  const int32_t* block_code_sums(int64_t b) const { return code_sums_.data() + b * groups_ * kLowBitBlockCols; }
  // k values of group g, padding included (the last group may be shorter).
  int64_t group_len(int64_t g) const { return std::min(k_padded(), (g + 1) * group_size_) - g * group_size_; }

  // The level of w[n, k] (k < k_padded(); padding reads the filler level).
  int level(int64_t n, int64_t k) const;
  // Row n dequantized: out[k] = level(n, k) * its group's scale, k < K (an
  // embedding lookup).
  void dequantize_row(int64_t n, float* out) const;

 private:
  int64_t n_, k_;
  int bits_;
  int64_t group_size_, groups_, k_steps_, num_blocks_;
  AlignedBuffer<uint8_t> codes_;  // 64-byte aligned: a step never straddles two cache lines
  std::vector<float> scales_;
  std::vector<int32_t> code_sums_;
};

struct LowBitGemmArgs {
  // [M, lda] activations, lda >= k_padded(); entries k in [K, k_padded()) of
  // row m must equal a_zero_point[m] (they then add nothing).
  const uint8_t* a = nullptr;
  int64_t lda = 0;
  const int32_t* a_zero_point = nullptr;  // [M]
  const float* row_scale = nullptr;       // [M]
  const float* bias = nullptr;            // [N] or nullptr
  float clamp_min = -std::numeric_limits<float>::infinity();
  float clamp_max = std::numeric_limits<float>::infinity();
  float* c = nullptr;  // [M, ldc]
  int64_t ldc = 0;
};

// Rows [m_begin, m_end), columns of blocks [block_begin, block_end), on `isa`'s path.
void lowbit_gemm(const LowBitGemmArgs& args, const LowBitWeights& w, int64_t m_begin, int64_t m_end,
                 int64_t block_begin, int64_t block_end, Isa isa);

}  // namespace qext::kernels
