// Accuracy tools of static quantization, as tensor arithmetic on float
// weights: cross-layer equalization and bias correction (Nagel et al.,
// "Data-Free Quantization Through Weight Equalization and Bias Correction",
// 2019). The passes decide where they apply; this file only does the maths.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace qext::quant {

// Cross-layer equalization of y = W2 f(W1 x + b1) with f positively
// homogeneous (identity, ReLU): f(x / s) = f(x) / s for s > 0, so
// W1 / s (rows), b1 / s and W2 * s (input channels) compute the same
// function. s_c = sqrt(r1_c / r2_c), with r1_c the largest |weight| of
// W1's output channel c and r2_c that of W2's input channel c, makes both
// ranges sqrt(r1_c r2_c): neither layer has a channel far smaller than its
// largest. A channel with a zero range keeps s_c = 1.
// w1: [C, ...]; w2: [O, C / groups2, ...] (any conv or linear weight).
at::Tensor equalization_scales(const at::Tensor& w1, const at::Tensor& w2, int64_t groups2);

// (w1 / s, b1 / s, w2 * s) for the scales s of equalization_scales.
std::tuple<at::Tensor, std::optional<at::Tensor>, at::Tensor> apply_equalization(
    const at::Tensor& w1, const std::optional<at::Tensor>& b1, const at::Tensor& w2, int64_t groups2,
    const at::Tensor& s);

// Bias correction: the mean shift that quantizing a weight adds to each
// output channel, E[(Wq - W) x] = (Wq - W) E[x], for per-input-channel means
// E[x] measured on calibration data (a conv's spatial taps all read their
// channel's mean; zero padding at borders is ignored). Subtract it from the
// bias. w, w_quantized: [O, C / groups, ...] float (w_quantized dequantized);
// input_mean: [C]. Returns [O] float32.
at::Tensor quantization_bias_shift(const at::Tensor& w, const at::Tensor& w_quantized, const at::Tensor& input_mean,
                                   int64_t groups);

}  // namespace qext::quant
