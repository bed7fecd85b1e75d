// Static-quantization ops: uint8 activations in and out, with one (scale, zero
// point) per tensor known ahead of time (from calibration). Bias, ReLU and the
// requantization to the output's qparams are fused into the GEMM epilogue.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "ops/packed_conv_weight.h"
#include "ops/packed_linear_weight.h"

namespace qext::ops {

// float32 -> uint8 with one (scale, zero point), and back; memory format kept.
// These are the boundaries static quantization inserts around int8 regions.
at::Tensor quantize_per_tensor(const at::Tensor& x, double scale, int64_t zero_point);
at::Tensor dequantize_per_tensor(const at::Tensor& q, double scale, int64_t zero_point);
// Returns x; raises when x holds NaN or Inf (inserted before the quantize at
// each float -> int8 boundary unless StaticConfig::check_finite is off).
at::Tensor check_finite(const at::Tensor& x);

// x: uint8 [N, C, H, W] (any memory format); returns uint8 [N, Cout, OH, OW] in
// channels-last memory format. relu / clamp_min / clamp_max clamp the float
// result before requantizing (fused ReLU, ReLU6, Hardtanh, clamp).
at::Tensor conv2d_int8(const at::Tensor& x, double x_scale, int64_t x_zero_point,
                       const c10::intrusive_ptr<PackedConvWeight>& weight,
                       const std::optional<at::Tensor>& bias, double out_scale,
                       int64_t out_zero_point, bool relu,
                       std::optional<double> clamp_min = std::nullopt,
                       std::optional<double> clamp_max = std::nullopt);

// a + b for two uint8 tensors with their own qparams, requantized to
// (out_scale, out_zero_point); optional fused ReLU. Keeps a's memory format.
// Same shapes run the int8 kernel; broadcasting goes through float.
// a * b of two uint8 tensors (broadcasting), requantized to the output's
// qparams: quantize(dequantize(a) * dequantize(b)) by the scalar rules.
at::Tensor mul_int8(const at::Tensor& a, double a_scale, int64_t a_zero_point, const at::Tensor& b,
                    double b_scale, int64_t b_zero_point, double out_scale, int64_t out_zero_point);

// y = table[x] elementwise (uint8 -> uint8, layout kept): an elementwise
// function with its input and output quantization folded into 256 entries.
// A [C, 256] table holds one per channel (dimension 1): an eval BatchNorm,
// a per-channel affine map, with its fused activation.
at::Tensor lut_u8(const at::Tensor& x, const at::Tensor& table);

at::Tensor add_int8(const at::Tensor& a, double a_scale, int64_t a_zero_point, const at::Tensor& b,
                    double b_scale, int64_t b_zero_point, double out_scale, int64_t out_zero_point,
                    bool relu);

// torch.cat of uint8 tensors with their own qparams, each requantized to
// (out_scale, out_zero_point) first (copied as is when its qparams are those).
at::Tensor cat_int8(const std::vector<at::Tensor>& xs, std::vector<double> scales,
                    std::vector<int64_t> zero_points, int64_t dim, double out_scale, int64_t out_zero_point);

// x: uint8 [..., K]; returns uint8 [..., N].
at::Tensor linear_int8(const at::Tensor& x, double x_scale, int64_t x_zero_point,
                       const c10::intrusive_ptr<PackedLinearWeight>& weight,
                       const std::optional<at::Tensor>& bias, double out_scale,
                       int64_t out_zero_point, bool relu,
                       std::optional<double> clamp_min = std::nullopt,
                       std::optional<double> clamp_max = std::nullopt);

}  // namespace qext::ops
