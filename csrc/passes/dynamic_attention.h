// Attention in dynamically quantized models: every
// aten::scaled_dot_product_attention without dropout becomes qext::attention
// (ops/attention.h), the float attention between a Transformer's int8
// Linears on qext's kernel (same result within float rounding; ATen runs the
// calls the kernel does not take).
#pragma once

#include <torch/csrc/jit/api/module.h>

namespace qext::passes {

// Rewrites every method of `root` in place; returns how many calls it rewrote.
int64_t rewrite_attention(torch::jit::Module& root);

}  // namespace qext::passes
