// The dynamic-quantization rewrite of recurrent layers: aten::lstm / aten::gru
// over module weights (nn.LSTM, nn.GRU, scripted or traced) become
// qext::lstm_dynamic / qext::gru_dynamic with packed int8 weights.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include "qext/qext.h"

namespace qext::passes {

// Rewrites `root` in place (callers pass a private copy) and returns one
// report row per recurrent module, int8 or float with the reason.
std::vector<LayerReport> rewrite_dynamic_rnns(torch::jit::Module& root, const DynamicConfig& config);

}  // namespace qext::passes
