// Quantize / dequantize / fake-quantize whole tensors, per tensor or per channel
// along any axis, with the one rounding rule of kernels/quantize.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace qext::quant {

// Scale (float32) and zero point (int32) from x's range: shape [] per tensor,
// [x.size(axis)] per channel. Errors on NaN/Inf or an empty tensor.
std::tuple<at::Tensor, at::Tensor> tensor_qparams(const at::Tensor& x, std::optional<int64_t> axis,
                                                  int64_t qmin, int64_t qmax, bool symmetric);

// The storage type of [qmin, qmax]: uint8 when qmin >= 0, else int8; errors
// on a range that fits neither.
at::ScalarType quantized_dtype(const char* op, int64_t qmin, int64_t qmax);

// uint8 output when qmin >= 0, else int8.
at::Tensor quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                    std::optional<int64_t> axis, int64_t qmin, int64_t qmax);

at::Tensor dequantize(const at::Tensor& q, const at::Tensor& scale, const at::Tensor& zero_point,
                      std::optional<int64_t> axis);

at::Tensor fake_quantize(const at::Tensor& x, const at::Tensor& scale,
                         const at::Tensor& zero_point, std::optional<int64_t> axis, int64_t qmin,
                         int64_t qmax);

}  // namespace qext::quant
