// quantize / dequantize / choose_qparams for tensors on other devices (CUDA),
// composed of ATen ops that follow kernels/ref/scalar_rules.h to the bit:
// q = clamp(round_half_even(x / scale) + zero_point) with NaN -> qmin, and the
// one qparams rule (quant/qparams.h) applied to the ranges found on the device.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace qext::ops {

std::tuple<at::Tensor, at::Tensor> choose_qparams_aten(const at::Tensor& x, std::optional<int64_t> axis,
                                                       int64_t qmin, int64_t qmax, bool symmetric);
at::Tensor quantize_aten(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                         std::optional<int64_t> axis, int64_t qmin, int64_t qmax);
at::Tensor dequantize_aten(const at::Tensor& q, const at::Tensor& scale, const at::Tensor& zero_point,
                           std::optional<int64_t> axis);

}  // namespace qext::ops
