#pragma once

#include <ATen/core/Tensor.h>

#include "ops/lowbit_linear_weight.h"

namespace qext::ops {

// Rows of a low-bit table (a LowBitLinearWeight of [rows, dim]) looked up and
// dequantized: float32 [*indices.shape, dim]. A tied output Linear runs on the
// same object, so a saved model holds the table once.
at::Tensor embedding_lowbit(const at::Tensor& indices, const c10::intrusive_ptr<LowBitLinearWeight>& table);

}  // namespace qext::ops
