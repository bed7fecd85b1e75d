// nn.LSTM / nn.GRU with int8 weights, activations quantized on the fly: the
// input projections of all time steps in one GEMM per layer and direction,
// then the recurrent projection per step (qext::linear_dynamic's kernels);
// gates in float. Same inputs and outputs as aten::lstm / aten::gru (eval
// mode: no dropout between layers).
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>
#include <vector>

#include "ops/packed_rnn_weight.h"

namespace qext::ops {

// input [T, B, I] ([B, T, I] when batch_first); hx = {h0, c0}, each
// [layers * directions, B, H]. Returns (output [T, B, D * H], h_n, c_n).
std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_dynamic(const at::Tensor& input, const std::vector<at::Tensor>& hx,
                                                            const c10::intrusive_ptr<PackedRnnWeight>& weight,
                                                            bool batch_first, bool per_row);

// As lstm_dynamic with hx = h0 alone; returns (output, h_n).
std::tuple<at::Tensor, at::Tensor> gru_dynamic(const at::Tensor& input, const at::Tensor& hx,
                                               const c10::intrusive_ptr<PackedRnnWeight>& weight, bool batch_first,
                                               bool per_row);

}  // namespace qext::ops
