// The dynamic-quantization rewrite: float linear layers of every method of a
// module become qext::linear_dynamic with packed int8 weights.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include "passes/dynamic_embedding.h"
#include "qext/qext.h"

namespace qext::passes {

// Rewrites `root` in place (callers pass a private clone) and returns one
// report row per distinct candidate weight. Method graphs are inlined first, so
// every weight is reached as a GetAttr chain from self and named uniquely, even
// when several instances share one module class.
// A Linear whose weight is a quantized embedding table (`tables`, by the
// float weight's data pointer: a tied output layer) multiplies with that
// table's int8 (or low-bit) values, which the file then holds once.
std::vector<LayerReport> rewrite_dynamic_linears(torch::jit::Module& root, const DynamicConfig& config,
                                                 const EmbeddingTables& tables = {});

// The largest int8 weight value config.weight_bits allows (8: 127, 7: 63);
// weight_bits 4, 2, 1 are the low-bit formats instead.
int64_t int8_weight_qmax(const DynamicConfig& config);
bool uses_lowbit_weights(const DynamicConfig& config);

// Why the config keeps layer `name` (owned by `owner`, `weight_elements`
// weights) float: module_types, include, exclude, min_weight_elements; empty
// when it does not. Shared by the dynamic rewrites.
std::string config_skip_reason(const DynamicConfig& config, const torch::jit::Module& owner, const std::string& name,
                               int64_t weight_elements);

}  // namespace qext::passes
