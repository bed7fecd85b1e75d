#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

#include "ops/packed_linear_weight.h"

namespace qext::ops {

// What every dynamic Linear op starts from: its input [..., k] and optional
// bias [n] checked, the bias contiguous (undefined when absent), the float32
// output [..., n] allocated, m rows, and (when m > 0) the input contiguous.
struct LinearCall {
  at::Tensor x, bias, out;
  int64_t m = 0;
};
LinearCall prepare_linear_call(const char* op, const at::Tensor& input, int64_t k, int64_t n,
                               const std::optional<at::Tensor>& bias);

// y = x W^T + b computed in int8: x [..., K] float32 is quantized to uint8 per
// tensor (or per row when per_row), in [0, 255] or, with activation_bits 7,
// [0, 127]; W is the packed int8 weight [N, K]; y is float32 [..., N],
// through ReLU (relu) or GELU (gelu, erf form: kernels/gelu_erf.h) when asked.
// Rows of x holding NaN or Inf give NaN rows in y; the other rows are
// unaffected.
at::Tensor linear_dynamic(const at::Tensor& input,
                          const c10::intrusive_ptr<PackedLinearWeight>& weight,
                          const std::optional<at::Tensor>& bias, bool per_row, bool relu,
                          int64_t activation_bits = 8, bool gelu = false);

// linear_dynamic of one input with several weights (a Transformer's Q, K and
// V projections): the input is quantized once and the GEMMs share one
// parallel region. Output i is bit for bit linear_dynamic(input, weights[i],
// biases[i], per_row, false, activation_bits); no fused activation.
std::vector<at::Tensor> linear_dynamic_group(const at::Tensor& input,
                                             const std::vector<c10::intrusive_ptr<PackedLinearWeight>>& weights,
                                             const std::vector<std::optional<at::Tensor>>& biases, bool per_row,
                                             int64_t activation_bits = 8);

// Throws unless there is at least one weight, none is None, and one bias (or
// None) per weight.
void check_group_arguments(const char* op, const std::vector<c10::intrusive_ptr<PackedLinearWeight>>& weights,
                           const std::vector<std::optional<at::Tensor>>& biases);

// Throws when both fused activations are asked for.
void check_one_activation(const char* op, bool relu, bool gelu);

// The largest activation value activation_bits (8 or 7) allows; throws for others.
int32_t activation_qmax(const char* op, int64_t activation_bits);

// The same, bit for bit, composed of ATen ops on the input's device (CUDA:
// the weight's device copy, at::_int_mm through qmatmul_int32_aten). The
// activations' ranges come to the host for the one qparams rule.
at::Tensor linear_dynamic_aten(const at::Tensor& input, const c10::intrusive_ptr<PackedLinearWeight>& weight,
                               const std::optional<at::Tensor>& bias, bool per_row, bool relu,
                               int64_t activation_bits = 8, bool gelu = false);

// linear_dynamic_group on the input's device, one linear_dynamic_aten per weight.
std::vector<at::Tensor> linear_dynamic_group_aten(const at::Tensor& input,
                                                  const std::vector<c10::intrusive_ptr<PackedLinearWeight>>& weights,
                                                  const std::vector<std::optional<at::Tensor>>& biases, bool per_row,
                                                  int64_t activation_bits = 8);

}  // namespace qext::ops
