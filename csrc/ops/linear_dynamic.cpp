// qext::linear_dynamic: float in, float out, int8 inside. Activations are
// quantized on the fly to uint8 (asymmetric, per tensor or per row) and
// multiplied with the packed int8 weight; dequantize, bias and ReLU are fused
// into the GEMM's epilogue.
#include "ops/linear_dynamic.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "ops/parallel_qgemm.h"
#include "ops/quantize_rows.h"

namespace qext::ops {

namespace {

constexpr const char* kOp = "qext::linear_dynamic";

}  // namespace

LinearCall prepare_linear_call(const char* op, const at::Tensor& input, int64_t k, int64_t n,
                               const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(input.scalar_type() == at::kFloat, op, ": expected a float32 input; got ", input.scalar_type());
  TORCH_CHECK(input.device().is_cpu(), op, ": expected a CPU input; got ", input.device());
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == k, op, ": expected input [..., ", k,
              "] for a weight of shape [", n, ", ", k, "]; got input of shape ", input.sizes());
  LinearCall call;
  if (bias && bias->defined()) {
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->dim() == 1 && bias->size(0) == n, op,
                ": expected a float32 bias of shape [", n, "]; got ", bias->scalar_type(), " of shape ",
                bias->sizes());
    call.bias = bias->contiguous();
  }
  std::vector<int64_t> out_shape = input.sizes().vec();
  out_shape.back() = n;
  call.m = input.numel() / k;
  call.out = at::empty(out_shape, input.options());
  if (call.m > 0) call.x = input.contiguous();
  return call;
}

void check_group_arguments(const char* op, const std::vector<c10::intrusive_ptr<PackedLinearWeight>>& weights,
                           const std::vector<std::optional<at::Tensor>>& biases) {
  TORCH_CHECK(!weights.empty(), op, ": expected at least one weight");
  TORCH_CHECK(biases.size() == weights.size(), op, ": expected one bias (or None) per weight; got ", biases.size(),
              " biases for ", weights.size(), " weights");
  for (const auto& w : weights) TORCH_CHECK(w, op, ": a weight is None");
}

void check_one_activation(const char* op, bool relu, bool gelu) {
  TORCH_CHECK(!(relu && gelu), op, ": relu and gelu are exclusive; got both");
}

int32_t activation_qmax(const char* op, int64_t activation_bits) {
  TORCH_CHECK(activation_bits == 8 || activation_bits == 7, op, ": activation_bits must be 8 or 7; got ",
              activation_bits);
  return (1 << activation_bits) - 1;
}

namespace {

// The GEMM of one weight over quantized rows: dequantize, bias and the fused
// activation in its epilogue, float rows into out.
GemmJob linear_job(const QuantizedRows& rows, int32_t qmax, const PackedLinearWeight& weight, const at::Tensor& bias,
                   const at::Tensor& out, bool relu, bool gelu) {
  GemmJob job{{}, &weight.packed(), {}};
  kernels::Epilogue& ep = job.ep;
  ep.output = kernels::Epilogue::Output::Float;
  ep.row_scale = rows.scale.data();
  ep.col_scale = weight.scales().data_ptr<float>();
  ep.bias = bias.defined() ? bias.data_ptr<float>() : nullptr;
  if (relu) ep.clamp_min = 0.0f;
  ep.gelu = gelu;
  kernels::GemmArgs& args = job.args;
  args.a = rows.q.data_ptr<uint8_t>();
  args.lda = weight.in_features();
  args.a_zero_point = rows.zero_point.data();
  args.a_max = static_cast<uint8_t>(qmax);
  args.c = out.data_ptr<float>();
  args.ldc = weight.out_features();
  return job;
}

}  // namespace

at::Tensor linear_dynamic(const at::Tensor& input,
                          const c10::intrusive_ptr<PackedLinearWeight>& weight,
                          const std::optional<at::Tensor>& bias, bool per_row, bool relu, int64_t activation_bits,
                          bool gelu) {
  TORCH_CHECK(weight, kOp, ": weight is None");
  check_one_activation(kOp, relu, gelu);
  const int32_t qmax = activation_qmax(kOp, activation_bits);
  const int64_t k = weight->in_features(), n = weight->out_features();
  const LinearCall call = prepare_linear_call(kOp, input, k, n, bias);
  const int64_t m = call.m;
  if (m == 0) return call.out;
  const QuantizedRows rows = quantize_rows(call.x.data_ptr<float>(), m, k, per_row, kernels::active_isa(), k, qmax);
  parallel_qgemm_group({linear_job(rows, qmax, *weight, call.bias, call.out, relu, gelu)}, m);
  mark_nonfinite_rows(rows, call.out.data_ptr<float>(), m, n);
  return call.out;
}

std::vector<at::Tensor> linear_dynamic_group(const at::Tensor& input,
                                             const std::vector<c10::intrusive_ptr<PackedLinearWeight>>& weights,
                                             const std::vector<std::optional<at::Tensor>>& biases, bool per_row,
                                             int64_t activation_bits) {
  constexpr const char* op = "qext::linear_dynamic_group";
  check_group_arguments(op, weights, biases);
  const int32_t qmax = activation_qmax(op, activation_bits);
  const int64_t k = weights[0]->in_features();
  const at::Tensor x = input.contiguous();  // once for all the calls
  std::vector<LinearCall> calls;
  for (size_t i = 0; i < weights.size(); ++i) {
    TORCH_CHECK(weights[i]->in_features() == k, op, ": every weight must take ", k, " input features; weight ", i,
                " takes ", weights[i]->in_features());
    calls.push_back(prepare_linear_call(op, x, k, weights[i]->out_features(), biases[i]));
  }
  std::vector<at::Tensor> outs;
  for (const LinearCall& c : calls) outs.push_back(c.out);
  const int64_t m = calls[0].m;
  if (m == 0) return outs;
  const QuantizedRows rows = quantize_rows(calls[0].x.data_ptr<float>(), m, k, per_row, kernels::active_isa(), k, qmax);
  std::vector<GemmJob> jobs;
  for (size_t i = 0; i < weights.size(); ++i)
    jobs.push_back(linear_job(rows, qmax, *weights[i], calls[i].bias, calls[i].out, false, false));
  parallel_qgemm_group(jobs, m);
  for (size_t i = 0; i < weights.size(); ++i)
    mark_nonfinite_rows(rows, outs[i].data_ptr<float>(), m, weights[i]->out_features());
  return outs;
}

}  // namespace qext::ops
