#include "quant/batch_norm_fold.h"

#include <ATen/ATen.h>

namespace qext::quant {

std::tuple<at::Tensor, at::Tensor> fold_batch_norm(const at::Tensor& weight,
                                                   const std::optional<at::Tensor>& bias,
                                                   const at::Tensor& bn_weight,
                                                   const at::Tensor& bn_bias,
                                                   const at::Tensor& running_mean,
                                                   const at::Tensor& running_var, double eps) {
  constexpr const char* op = "qext::fold_batch_norm";
  TORCH_CHECK(weight.dim() >= 2, op, ": expected a conv or linear weight (>= 2-D); got ", weight.dim(), "-D");
  const int64_t c = weight.size(0);
  for (const at::Tensor* t : {&bn_weight, &bn_bias, &running_mean, &running_var}) {
    TORCH_CHECK(t->dim() == 1 && t->size(0) == c, op, ": batch-norm parameters must have ", c,
                " elements (the weight's output channels); got shape ", t->sizes());
  }
  TORCH_CHECK(eps >= 0, op, ": eps must be >= 0; got ", eps);
  const at::Tensor inv_std = (running_var.to(at::kDouble) + eps).rsqrt() * bn_weight.to(at::kDouble);
  TORCH_CHECK(at::isfinite(inv_std).all().item<bool>(), op,
              ": running_var + eps is 0 or non-finite for some channel; cannot fold");
  std::vector<int64_t> shape(weight.dim(), 1);
  shape[0] = c;
  const at::Tensor w = (weight.to(at::kDouble) * inv_std.reshape(shape)).to(weight.scalar_type());
  const at::Tensor b0 = bias && bias->defined() ? bias->to(at::kDouble) : at::zeros({c}, at::kDouble);
  const at::Tensor b = ((b0 - running_mean.to(at::kDouble)) * inv_std + bn_bias.to(at::kDouble)).to(weight.scalar_type());
  return {w.contiguous(), b.contiguous()};
}

}  // namespace qext::quant
