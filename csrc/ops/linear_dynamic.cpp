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

void check_one_activation(const char* op, bool relu, bool gelu) {
  TORCH_CHECK(!(relu && gelu), op, ": relu and gelu are exclusive; got both");
}

int32_t activation_qmax(const char* op, int64_t activation_bits) {
  TORCH_CHECK(activation_bits == 8 || activation_bits == 7, op, ": activation_bits must be 8 or 7; got ",
              activation_bits);
  return (1 << activation_bits) - 1;
}

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
  const at::Tensor& b = call.bias;
  const at::Tensor& out = call.out;
  const float* xp = call.x.data_ptr<float>();
  const kernels::Isa isa = kernels::active_isa();

  const QuantizedRows rows = quantize_rows(xp, m, k, per_row, isa, k, qmax);

  kernels::Epilogue ep;
  ep.output = kernels::Epilogue::Output::Float;
  ep.row_scale = rows.scale.data();
  ep.col_scale = weight->scales().data_ptr<float>();
  ep.bias = b.defined() ? b.data_ptr<float>() : nullptr;
  if (relu) ep.clamp_min = 0.0f;
  ep.gelu = gelu;
  kernels::GemmArgs args;
  args.a = rows.q.data_ptr<uint8_t>();
  args.lda = k;
  args.a_zero_point = rows.zero_point.data();
  args.a_max = static_cast<uint8_t>(qmax);
  args.c = out.data_ptr<float>();
  args.ldc = n;
  parallel_qgemm(args, weight->packed(), ep, m);

  mark_nonfinite_rows(rows, out.data_ptr<float>(), m, n);
  return out;
}

}  // namespace qext::ops
