// Sibling dynamic Linears: the qext::linear_dynamic calls of one method that
// read the same input with the same activation settings and no fused
// activation (a Transformer's Q, K and V projections) become one
// qext::linear_dynamic_group call, which quantizes the input once and runs
// the GEMMs in one parallel region. Every output keeps its bits.
#pragma once

#include <torch/csrc/jit/api/module.h>

namespace qext::passes {

// Rewrites every method of `root` in place; returns how many calls were
// merged into groups.
int64_t group_sibling_linears(torch::jit::Module& root);

}  // namespace qext::passes
