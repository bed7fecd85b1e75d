// The int8 weight of one Linear layer, packed for this CPU's GEMM path.
// TorchScript sees it as __torch__.torch.classes.qext.PackedLinearWeight. What it
// pickles is portable: format version, int8 weight [N, K] and float scales [N];
// loading re-packs for whatever CPU loads it.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/custom_class.h>

#include <mutex>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/qgemm.h"

namespace qext::ops {

class PackedLinearWeight : public torch::CustomClassHolder {
 public:
  // Version 2 holds the same fields for a weight packed for 7-bit
  // activations whose values are not narrow (|w| > 64 somewhere: the hint
  // changes the AVX2 packing); others are written as version 1, which
  // earlier qext versions read too.
  static constexpr int64_t kFormatVersion = 1;
  static constexpr int64_t kFormatVersionSevenBitActivations = 2;
  using State = std::tuple<int64_t, at::Tensor, at::Tensor>;

  // weight: int8 [N, K] (symmetric, zero point 0); scales: float32 [N], > 0;
  // activation_bits: what linear_dynamic will mostly be called with (8 or
  // 7; kernels::PackedWeights): 7 lets AVX2 multiply 8-bit weights with
  // vpmaddubsw. Any activations still give exact results.
  PackedLinearWeight(const at::Tensor& weight, const at::Tensor& scales, int64_t activation_bits = 8);

  // Quantizes a float [N, K] weight: symmetric [-qmax, qmax] (127: int8;
  // smaller for lower-bit weights), one scale per output channel (or one
  // shared scale when per_channel is false).
  static c10::intrusive_ptr<PackedLinearWeight> from_float(const at::Tensor& weight, bool per_channel,
                                                           int64_t qmax = 127, int64_t activation_bits = 8);
  static c10::intrusive_ptr<PackedLinearWeight> from_state(State state);

  State state() const;
  at::Tensor weight() const;  // int8 [N, K], unpacked
  const at::Tensor& scales() const { return scales_; }
  int64_t in_features() const { return packed_.k(); }
  int64_t out_features() const { return packed_.n(); }
  const kernels::PackedWeights& packed() const { return packed_; }
  // Pickle `weight` (equal to this one's int8 weight, e.g. a tied embedding
  // table's) instead of an unpacked copy, so a file holds the values once.
  void share_pickled_weight(const at::Tensor& weight) { shared_weight_ = weight; }
  // The int8 weight as [K, N] (a column-major view) and the scales on another
  // device (CUDA), made on first use and kept with this object (never pickled).
  std::pair<at::Tensor, at::Tensor> on_device(const c10::Device& device) const;

 private:
  int64_t activation_bits_;
  kernels::PackedWeights packed_;
  at::Tensor scales_;
  at::Tensor shared_weight_;
  mutable std::mutex device_mutex_;
  mutable std::vector<std::pair<at::Tensor, at::Tensor>> device_copies_;
};

}  // namespace qext::ops
