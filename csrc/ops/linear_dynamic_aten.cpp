// qext::linear_dynamic for tensors on other devices (CUDA): the CPU op's
// arithmetic in ATen ops, so both give the same floats -- the activations'
// qparams by the one rule (quant::choose_qparams, written in tensor ops),
// quantize_aten's rounding, the exact int32 product of qmatmul_int32_aten,
// then float(acc) * (row_scale * col_scale) + bias and the clamps written as
// the kernels' epilogue has them. One host synchronisation per call (the
// check that every scale is finite, where the CPU op throws too).
#include <ATen/ATen.h>

#include <limits>

#include "kernels/gelu_erf.h"
#include "ops/device_quantize.h"
#include "ops/linear_dynamic.h"
#include "ops/qmatmul.h"
#include "quant/qparams.h"

namespace qext::ops {

namespace {

constexpr const char* kOp = "qext::linear_dynamic";

// quant::choose_qparams(lo, hi, 0, qmax, asymmetric) in ATen ops on the
// device, per element of lo / hi: the same float operations in the same
// order (divisions by a device tensor, which PyTorch does not turn into a
// multiplication by the reciprocal, as it may for a scalar).
std::pair<at::Tensor, at::Tensor> uint8_qparams(at::Tensor lo, at::Tensor hi, int32_t qmax) {
  const auto scalar = [&](float v) { return at::full({}, v, lo.options()); };
  lo = at::minimum(lo, scalar(0.0f));
  hi = at::maximum(hi, scalar(0.0f));
  const at::Tensor scale = at::maximum((hi - lo) / scalar(static_cast<float>(qmax)), scalar(quant::kMinScale));
  TORCH_CHECK(at::isfinite(scale).all().item<bool>(), kOp, ": an input row's range is too wide for a float32 "
              "scale over the uint8 levels; check the data for overflowed values");
  const at::Tensor zp = at::clamp(scalar(0.0f) - at::round(lo / scale), 0.0, qmax).to(at::kInt);
  return {scale, zp};
}

// kernels::gelu::gelu_erf's arithmetic on tensors: one ATen op per float
// operation (none fused), constants as 0-dim tensors on the device, the
// comparisons written as the kernels' a > b ? a : b.
struct TensorOps {
  at::TensorOptions options;
  at::Tensor splat(float v) const { return at::full({}, v, options); }
  static at::Tensor mul(const at::Tensor& a, const at::Tensor& b) { return a * b; }
  static at::Tensor add(const at::Tensor& a, const at::Tensor& b) { return a + b; }
  static at::Tensor div(const at::Tensor& a, const at::Tensor& b) { return a / b; }
  static at::Tensor max(const at::Tensor& a, const at::Tensor& b) { return at::where(a > b, a, b); }
  static at::Tensor min(const at::Tensor& a, const at::Tensor& b) { return at::where(a < b, a, b); }
};

}  // namespace

at::Tensor linear_dynamic_aten(const at::Tensor& input, const c10::intrusive_ptr<PackedLinearWeight>& weight,
                               const std::optional<at::Tensor>& bias, bool per_row, bool relu,
                               int64_t activation_bits, bool gelu) {
  TORCH_CHECK(weight, kOp, ": weight is None");
  check_one_activation(kOp, relu, gelu);
  const int32_t qmax = activation_qmax(kOp, activation_bits);
  const int64_t k = weight->in_features(), n = weight->out_features();
  TORCH_CHECK(input.scalar_type() == at::kFloat, kOp, ": expected a float32 input; got ", input.scalar_type());
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == k, kOp, ": expected input [..., ", k,
              "] for a weight of shape [", n, ", ", k, "]; got input of shape ", input.sizes());
  const bool has_bias = bias && bias->defined();
  if (has_bias) {
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->dim() == 1 && bias->size(0) == n, kOp,
                ": expected a float32 bias of shape [", n, "]; got ", bias->scalar_type(), " of shape ", bias->sizes());
    TORCH_CHECK(bias->device() == input.device(), kOp, ": bias is on ", bias->device(), ", input on ",
                input.device());
  }
  std::vector<int64_t> out_shape = input.sizes().vec();
  out_shape.back() = n;
  const at::Tensor x = input.reshape({-1, k});
  const int64_t m = x.size(0);
  if (m == 0) return at::empty(out_shape, input.options());

  // Rows holding NaN / Inf are zeroed (their outputs become NaN below) and,
  // per tensor, left out of the shared range -- as quantize_rows does.
  const at::Tensor finite = at::isfinite(x).all(/*dim=*/1);
  const at::Tensor clean = at::where(finite.unsqueeze(1), x, at::zeros({}, x.options()));
  auto [lo, hi] = at::aminmax(clean, /*dim=*/1);
  if (!per_row) {
    lo = lo.amin().expand({m});
    hi = hi.amax().expand({m});
  }
  const auto [scale, zp] = uint8_qparams(lo.contiguous(), hi.contiguous(), qmax);
  const at::Tensor q = quantize_aten(clean, scale, zp, /*axis=*/0, 0, qmax);
  const auto [w_t, w_scale] = weight->on_device(input.device());
  MatmulOperands o;
  o.a = q.reshape({1, m, k});
  o.b = w_t.unsqueeze(0);
  o.a_zero_point = zp.to(at::kLong);
  o.b_zero_point = at::zeros({n}, o.a_zero_point.options());
  o.m = m;
  o.k = k;
  o.n = n;
  o.out_sizes = {m, n};
  const at::Tensor acc = qmatmul_int32_aten_unchecked(o);

  at::Tensor y = acc.to(at::kFloat) * (scale.unsqueeze(1) * w_scale.unsqueeze(0));
  if (has_bias) y = y + *bias;
  // The epilogue's clamps: v > lo ? v : lo, then v < hi ? v : hi (NaN -> lo).
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor lo_clamp = at::full({}, relu ? 0.0f : -inf, y.options());
  y = at::where(y > lo_clamp, y, lo_clamp);
  const at::Tensor hi_clamp = at::full({}, inf, y.options());
  y = at::where(y < hi_clamp, y, hi_clamp);
  if (gelu) y = kernels::gelu::gelu_erf(TensorOps{y.options()}, y);
  y = at::where(finite.unsqueeze(1), y, at::full({}, std::numeric_limits<float>::quiet_NaN(), y.options()));
  return y.reshape(out_shape);
}

std::vector<at::Tensor> linear_dynamic_group_aten(const at::Tensor& input,
                                                  const std::vector<c10::intrusive_ptr<PackedLinearWeight>>& weights,
                                                  const std::vector<std::optional<at::Tensor>>& biases, bool per_row,
                                                  int64_t activation_bits) {
  check_group_arguments("qext::linear_dynamic_group", weights, biases);
  // One call per weight: the same values; the input is quantized each time.
  std::vector<at::Tensor> outs;
  for (size_t i = 0; i < weights.size(); ++i)
    outs.push_back(linear_dynamic_aten(input, weights[i], biases[i], per_row, false, activation_bits, false));
  return outs;
}

}  // namespace qext::ops
