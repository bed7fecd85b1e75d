// qext::layer_norm_int8: LayerNorm with uint8 input and output, so int8
// flows through a transformer block's norms (static quantization).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

namespace qext::ops {

// y = quantize(layer_norm(dequantize(x))) over the last dimensions
// (normalized_shape), with per-row statistics from exact integer sums:
// mean_q = sum(q - zp) / D and var_q = sum((q - zp)^2) / D - mean_q^2 in
// float64, so the scale only enters through eps (eps / scale^2). Then, per
// value in float: ((q - zp) - mean_q) * rstd * weight + bias, rounded by the
// scalar quantize rule. Weight and bias: float32 of normalized_shape, or None.
at::Tensor layer_norm_int8(const at::Tensor& x, double x_scale, int64_t x_zero_point,
                           const std::vector<int64_t>& normalized_shape, const std::optional<at::Tensor>& weight,
                           const std::optional<at::Tensor>& bias, double eps, double out_scale,
                           int64_t out_zero_point);

}  // namespace qext::ops
