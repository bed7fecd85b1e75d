#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace qext::ops {

// scaled_dot_product_attention without dropout, on qext's kernel
// (kernels/attention.h) for float32 CPU tensors of 2 to 4 dimensions with the
// same leading dimensions, a float or bool mask broadcastable to [..., L, S],
// no gradient asked for, and heads short enough to keep a score row per query
// in cache; anything else runs at::scaled_dot_product_attention (which also
// gives ATen's errors for malformed calls).
at::Tensor attention(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                     const std::optional<at::Tensor>& attn_mask, bool is_causal, std::optional<double> scale);

}  // namespace qext::ops
