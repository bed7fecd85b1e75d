// A Linear weight of 4, 2 or 1 bits per value with one float scale per group
// of `group_size` inputs (kernels/lowbit_gemm.h). TorchScript sees it as
// __torch__.torch.classes.qext.LowBitLinearWeight. What it pickles is portable
// and small: format version, bits, group size, in_features, the codes packed
// row-major (bits per value, no padding between values) and the scales; the
// kernel layout is rebuilt on load.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/custom_class.h>

#include <mutex>
#include <tuple>

#include "kernels/lowbit_gemm.h"

namespace qext::ops {

class LowBitLinearWeight : public torch::CustomClassHolder {
 public:
  static constexpr int64_t kFormatVersion = 1;
  // (version, bits, group_size, in_features, codes uint8 [N, ceil(K * bits / 8)], scales float [N, groups])
  using State = std::tuple<int64_t, int64_t, int64_t, int64_t, at::Tensor, at::Tensor>;

  // levels: int8 [N, K] within the bits' levels; scales: float [N, groups].
  LowBitLinearWeight(const at::Tensor& levels, const at::Tensor& scales, int64_t bits, int64_t group_size);

  // Quantizes a float [N, K] weight per group of group_size inputs (0: one
  // group per row). 4 and 2 bits: symmetric, the group's largest magnitude
  // lands on the most negative level (scale = that value / level, so the
  // scale's sign may be negative; every level is used). 1 bit: sign(w) times
  // the group's mean |w| (the least-squares binary scale).
  static c10::intrusive_ptr<LowBitLinearWeight> from_float(const at::Tensor& weight, int64_t bits,
                                                           int64_t group_size);
  static c10::intrusive_ptr<LowBitLinearWeight> from_state(State state);

  State state() const;
  at::Tensor levels() const;  // int8 [N, K]
  const at::Tensor& scales() const { return scales_; }
  at::Tensor dequantized() const;  // float [N, K]: levels x their group's scale
  int64_t in_features() const { return packed_.k(); }
  int64_t out_features() const { return packed_.n(); }
  int64_t bits() const { return packed_.bits(); }
  int64_t group_size() const { return group_size_; }
  // Bytes of the saved codes (N x ceil(K * bits / 8)); the scales add scales().nbytes().
  int64_t saved_code_bytes() const { return out_features() * ((in_features() * bits() + 7) / 8); }
  const kernels::LowBitWeights& packed() const { return packed_; }

 private:
  at::Tensor scales_;
  int64_t group_size_;  // as given: 0 means one group per row
  kernels::LowBitWeights packed_;
  // The row-major codes of the saved state, made on the first save and kept:
  // an embedding and its tied Linear pickle the same tensor, so a file holds
  // it once.
  mutable at::Tensor saved_codes_;
  mutable std::mutex saved_codes_mutex_;
};

}  // namespace qext::ops
