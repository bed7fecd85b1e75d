// nn.TransformerEncoderLayer and nn.MultiheadAttention carry a fused native
// "fast path" (aten::_transformer_encoder_layer_fwd,
// aten::_native_multi_head_attention) chosen at run time in eval mode. It reads
// the float weights directly, so after quantization it would silently run the
// float model. This pass pins those ifs to their slow, op-by-op branch, whose
// linears qext has rewritten.
#pragma once

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <set>
#include <string>

namespace qext::passes {

// Returns how many fast paths were disabled: those reading any weight in
// `quantized` (qualified attribute names).
int disable_native_fast_paths(const torch::jit::Module& root, torch::jit::Graph& graph,
                              const std::set<std::string>& quantized);

}  // namespace qext::passes
