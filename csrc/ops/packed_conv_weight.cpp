#include "ops/packed_conv_weight.h"

#include <ATen/ATen.h>

#include "kernels/depthwise.h"
#include "quant/tensor_quant.h"

namespace qext::ops {

namespace {

constexpr const char* kClass = "qext::PackedConvWeight";

// Geometry may come from a file: bounded so the window arithmetic stays far
// from int64 overflow.
constexpr int64_t kMaxGeometry = int64_t{1} << 20;

// Wider groups have GEMM-sized columns: one GEMM per group is as fast.
constexpr int64_t kMaxGroupedWidth = 64;

std::array<int64_t, 2> pair_of(const std::vector<int64_t>& v, const char* what, int64_t min) {
  TORCH_CHECK(v.size() == 1 || v.size() == 2, kClass, ": ", what, " needs 1 or 2 values; got ", v.size());
  std::array<int64_t, 2> p{v[0], v.size() == 2 ? v[1] : v[0]};
  TORCH_CHECK(p[0] >= min && p[1] >= min && p[0] <= kMaxGeometry && p[1] <= kMaxGeometry, kClass, ": ", what,
              " must be in [", min, ", ", kMaxGeometry, "]; got ", v);
  return p;
}

}  // namespace

PackedConvWeight::PackedConvWeight(const at::Tensor& weight, const at::Tensor& scales,
                                   std::vector<int64_t> stride, std::vector<int64_t> padding,
                                   std::vector<int64_t> dilation, int64_t groups)
    : groups_(groups),
      stride_(pair_of(stride, "stride", 1)),
      padding_(pair_of(padding, "padding", 0)),
      dilation_(pair_of(dilation, "dilation", 1)),
      scales_(scales.to(at::kFloat).contiguous().clone()) {
  TORCH_CHECK(weight.dim() == 4 && weight.scalar_type() == at::kChar, kClass,
              ": expected an int8 weight [Cout, Cin/groups, KH, KW]; got ", weight.scalar_type(),
              " of shape ", weight.sizes());
  TORCH_CHECK(weight.numel() > 0, kClass, ": the weight must not be empty; got shape ", weight.sizes());
  TORCH_CHECK(groups >= 1 && weight.size(0) % groups == 0, kClass, ": groups=", groups,
              " must divide Cout=", weight.size(0));
  out_channels_ = weight.size(0);
  in_per_group_ = weight.size(1);
  kh_ = weight.size(2);
  kw_ = weight.size(3);
  TORCH_CHECK(scales_.dim() == 1 && scales_.numel() == out_channels_, kClass, ": expected ",
              out_channels_, " scales; got shape ", scales.sizes());
  TORCH_CHECK(at::all(at::isfinite(scales_) & (scales_ > 0)).item<bool>(), kClass,
              ": scales must be finite and > 0");
  isa_ = kernels::active_isa();
  depthwise_ = in_per_group_ == 1 && groups == out_channels_;
  const int64_t per_group = out_channels_ / groups, row_bytes = kw_ * in_per_group_;
  TORCH_CHECK(reduction_length(kh_, kw_, in_per_group_) <= kernels::kMaxGemmK, kClass, ": a ", kh_, "x", kw_, "x",
              in_per_group_, " window sums more terms than the int32 accumulator holds exactly (",
              kernels::kMaxGemmK, ")");
  if (depthwise_) {
    kernel_row_bytes_ = row_bytes;
    const at::Tensor w = weight.contiguous();
    dw_weights_ = kernels::depthwise_pack_weights(w.data_ptr<int8_t>(), out_channels_, kh_, kw_, isa_);
    plain_weight_ = w.clone();
    return;
  }
  if (groups > 1 && per_group == in_per_group_ && per_group <= kMaxGroupedWidth) {
    const at::Tensor w = weight.contiguous();
    grouped_ = kernels::grouped_pack_weights(w.data_ptr<int8_t>(), out_channels_, per_group, kh_ * kw_, isa_);
    if (grouped_) {
      kernel_row_bytes_ = row_bytes;
      plain_weight_ = w.clone();
      return;
    }
  }
  // GEMM layout per group: rows = output channels, columns in (kh, kw, c) order
  // to match channels-last activations, each kernel row padded to
  // kernel_row_bytes_.
  kernel_row_bytes_ = direct() ? (row_bytes + 3) / 4 * 4 : row_bytes;
  const at::Tensor gemm_w =
      at::constant_pad_nd(weight.permute({0, 2, 3, 1}).reshape({out_channels_, kh_, row_bytes}),
                          {0, kernel_row_bytes_ - row_bytes})
          .reshape({out_channels_, -1});
  for (int64_t g = 0; g < groups; ++g) {
    const at::Tensor wg = gemm_w.narrow(0, g * per_group, per_group).contiguous();
    packed_.emplace_back(wg.data_ptr<int8_t>(), per_group, wg.size(1), isa_);
  }
}

c10::intrusive_ptr<PackedConvWeight> PackedConvWeight::from_float(const at::Tensor& weight,
                                                                  std::vector<int64_t> stride,
                                                                  std::vector<int64_t> padding,
                                                                  std::vector<int64_t> dilation,
                                                                  int64_t groups, int64_t qmax) {
  TORCH_CHECK(weight.dim() == 4 && weight.scalar_type() == at::kFloat,
              "qext::quantize_conv_weight: expected a float32 weight [Cout, Cin/groups, KH, KW]; got ",
              weight.scalar_type(), " of shape ", weight.sizes());
  TORCH_CHECK(qmax >= 1 && qmax <= 127, "qext::quantize_conv_weight: qmax must be in [1, 127]; got ", qmax);
  auto [scale, zp] = quant::tensor_qparams(weight, 0, -qmax, qmax, /*symmetric=*/true);
  const at::Tensor q = quant::quantize(weight, scale, zp, 0, -qmax, qmax);
  return c10::make_intrusive<PackedConvWeight>(q, scale, std::move(stride), std::move(padding),
                                               std::move(dilation), groups);
}

at::Tensor PackedConvWeight::weight() const {
  if (plain_weight_.defined()) return plain_weight_;
  const int64_t per_group = out_channels_ / groups_;
  at::Tensor gemm_w = at::empty({out_channels_, kh_ * kernel_row_bytes_}, at::kChar);
  for (int64_t g = 0; g < groups_; ++g) {
    packed_[g].unpack(gemm_w.data_ptr<int8_t>() + g * per_group * gemm_w.size(1));
  }
  return gemm_w.reshape({out_channels_, kh_, kernel_row_bytes_})
      .narrow(2, 0, kw_ * in_per_group_)
      .reshape({out_channels_, kh_, kw_, in_per_group_})
      .permute({0, 3, 1, 2})
      .contiguous();
}

PackedConvWeight::State PackedConvWeight::state() const {
  return {kFormatVersion, weight(), scales_, {stride_[0], stride_[1]}, {padding_[0], padding_[1]},
          {dilation_[0], dilation_[1]}, groups_};
}

c10::intrusive_ptr<PackedConvWeight> PackedConvWeight::from_state(State s) {
  TORCH_CHECK(std::get<0>(s) == kFormatVersion, kClass, ": saved with format version ",
              std::get<0>(s), ", this qext reads version ", kFormatVersion,
              "; re-quantize the model with this qext version");
  return c10::make_intrusive<PackedConvWeight>(std::get<1>(s), std::get<2>(s), std::get<3>(s),
                                               std::get<4>(s), std::get<5>(s), std::get<6>(s));
}

}  // namespace qext::ops
