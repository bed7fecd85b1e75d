#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "ops/lowbit_linear_weight.h"

namespace qext::ops {

// y = x W^T + b with a 4-, 2- or 1-bit weight (LowBitLinearWeight): x [..., K]
// float32 is quantized to uint8 per tensor (or per row), multiplied exactly
// per weight group, and scaled to float32 [..., N]. Rows of x holding NaN or
// Inf give NaN rows in y.
at::Tensor linear_lowbit(const at::Tensor& input, const c10::intrusive_ptr<LowBitLinearWeight>& weight,
                         const std::optional<at::Tensor>& bias, bool per_row, bool relu);

}  // namespace qext::ops
