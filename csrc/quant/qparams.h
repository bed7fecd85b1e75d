// Scale and zero point from an observed float range: the affine mapping
//   real = scale * (q - zero_point),   q in [qmin, qmax].
// Torch-free, so the kernels' tests and the observers share one rule.
#pragma once

#include <cstdint>

namespace qext::quant {

struct QParams {
  float scale;
  int32_t zero_point;
};

// The smallest scale handed out: keeps x / scale finite for a zero-width range.
inline constexpr float kMinScale = 1.1920928955078125e-07f;  // float32 epsilon

// Asymmetric: [min, max] (widened to contain 0, so 0 is exact) maps onto
// [qmin, qmax]; zero_point = qmin - round_half_even(min / scale).
// Symmetric: zero_point is the middle of [qmin, qmax] (0 for int8, 128 for uint8)
// and scale = max(|min|, |max|) / ((qmax - qmin) / 2).
// Throws std::invalid_argument for a non-finite range or qmin >= qmax.
QParams choose_qparams(float min, float max, int32_t qmin, int32_t qmax, bool symmetric);

}  // namespace qext::quant
