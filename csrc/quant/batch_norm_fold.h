#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace qext::quant {

// Folds an eval-mode BatchNorm that follows a conv or linear into its weight
// (output channels first) and bias:
//   w' = w * gamma / sqrt(var + eps),  b' = (b - mean) * gamma / sqrt(var + eps) + beta
// computed in float64, returned in float32.
std::tuple<at::Tensor, at::Tensor> fold_batch_norm(const at::Tensor& weight,
                                                   const std::optional<at::Tensor>& bias,
                                                   const at::Tensor& bn_weight,
                                                   const at::Tensor& bn_bias,
                                                   const at::Tensor& running_mean,
                                                   const at::Tensor& running_var, double eps);

}  // namespace qext::quant
