// The int8 weight of one Conv2d layer with its geometry, packed per group for
// this CPU. TorchScript: __torch__.torch.classes.qext.PackedConvWeight. Pickled
// portably as (format version, int8 weight [Cout, Cin/groups, KH, KW], float
// scales [Cout], stride, padding, dilation, groups).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/custom_class.h>

#include <array>
#include <optional>
#include <vector>

#include "kernels/depthwise.h"
#include "kernels/grouped.h"
#include "kernels/qgemm.h"

namespace qext::ops {

class PackedConvWeight : public torch::CustomClassHolder {
 public:
  static constexpr int64_t kFormatVersion = 1;
  using State = std::tuple<int64_t, at::Tensor, at::Tensor, std::vector<int64_t>,
                           std::vector<int64_t>, std::vector<int64_t>, int64_t>;

  PackedConvWeight(const at::Tensor& weight, const at::Tensor& scales, std::vector<int64_t> stride,
                   std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups);
  // Symmetric [-qmax, qmax] per output channel from a float weight (qmax
  // 127 for int8; smaller for lower-bit weights, still stored as int8).
  static c10::intrusive_ptr<PackedConvWeight> from_float(const at::Tensor& weight,
                                                         std::vector<int64_t> stride,
                                                         std::vector<int64_t> padding,
                                                         std::vector<int64_t> dilation,
                                                         int64_t groups, int64_t qmax = 127);
  static c10::intrusive_ptr<PackedConvWeight> from_state(State state);

  State state() const;
  at::Tensor weight() const;  // int8 [Cout, Cin/groups, KH, KW]
  const at::Tensor& scales() const { return scales_; }
  int64_t out_channels() const { return out_channels_; }
  int64_t in_channels() const { return in_per_group_ * groups_; }
  int64_t groups() const { return groups_; }
  int64_t kh() const { return kh_; }
  int64_t kw() const { return kw_; }
  const std::array<int64_t, 2>& stride() const { return stride_; }
  const std::array<int64_t, 2>& padding() const { return padding_; }
  const std::array<int64_t, 2>& dilation() const { return dilation_; }
  // True when each kernel row of a window is one contiguous run of an NHWC
  // image (groups == 1, no horizontal dilation): conv2d_int8 then multiplies
  // straight from the image, without gathering patches.
  bool direct() const { return groups_ == 1 && dilation_[1] == 1; }
  // Terms in one output's dot product as the kernels sum them, kernel rows
  // padded to whole 4-byte groups: KH * round_up(KW * Cin/groups, 4). Must
  // not exceed kernels::kMaxGemmK (the passes keep longer convs float).
  static int64_t reduction_length(int64_t kh, int64_t kw, int64_t in_per_group) {
    return kh * ((kw * in_per_group + 3) / 4 * 4);
  }
  // GEMM K bytes per kernel row: KW*Cin/groups, rounded up to a multiple of 4
  // (zero weights) when direct(), as the kernels read whole 4-byte groups.
  int64_t kernel_row_bytes() const { return kernel_row_bytes_; }
  // GEMM weights of group g: [Cout/groups, KH*kernel_row_bytes()] in (kh, kw, c) order.
  const kernels::PackedWeights& group(int64_t g) const { return packed_[g]; }

  // One filter per channel (groups == Cin == Cout): packed for the depthwise
  // kernel instead of one GEMM per group, which would have a single column.
  bool depthwise() const { return depthwise_; }
  const kernels::DepthwiseWeights& depthwise_weights() const { return dw_weights_; }
  // A few channels per group (Cin/groups == Cout/groups, and this path's
  // window covers them): packed for the grouped kernel instead.
  bool grouped() const { return grouped_.has_value(); }
  const kernels::GroupedWeights& grouped_weights() const { return *grouped_; }
  kernels::Isa isa() const { return isa_; }  // the path chosen at pack time

 private:
  int64_t out_channels_, in_per_group_, kh_, kw_, groups_, kernel_row_bytes_;
  std::array<int64_t, 2> stride_, padding_, dilation_;
  bool depthwise_;
  kernels::Isa isa_;
  std::vector<kernels::PackedWeights> packed_;
  kernels::DepthwiseWeights dw_weights_;
  std::optional<kernels::GroupedWeights> grouped_;
  at::Tensor plain_weight_;  // the int8 weight as given, for state(), when not in GEMM packs
  at::Tensor scales_;
};

}  // namespace qext::ops
