// Dynamic activation quantization shared by the dynamic Linear ops: float rows
// to uint8, one (scale, zero point) per row or one for all.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "kernels/isa.h"

namespace qext::ops {

struct QuantizedRows {
  at::Tensor q;                     // uint8 [m, row_bytes]
  std::vector<float> scale;         // [m]
  std::vector<int32_t> zero_point;  // [m]
  std::vector<uint8_t> finite;      // [m]; rows holding NaN/Inf are left out of a shared range
};

// Quantizes x [m, k] to uint8 rows of `row_bytes` >= k bytes, values in
// [0, qmax] (255, or 127 for 7-bit activations); bytes past k hold the row's
// zero point (they add nothing to a zero-point-corrected dot).
QuantizedRows quantize_rows(const float* x, int64_t m, int64_t k, bool per_row, kernels::Isa isa,
                            int64_t row_bytes, int32_t qmax = 255);

// Sets the output rows [m, n] whose input row was not finite to NaN.
void mark_nonfinite_rows(const QuantizedRows& rows, float* out, int64_t m, int64_t n);

}  // namespace qext::ops
