// qext::linear_dynamic for tensors on other devices (CUDA): the CPU op's
// arithmetic in ATen ops, so both give the same floats -- the activations'
// qparams from the one host rule, quantize_aten's rounding, the exact int32
// product of qmatmul_int32_aten, then float(acc) * (row_scale * col_scale)
// + bias and the clamps written as the kernels' epilogue has them.
#include <ATen/ATen.h>

#include <limits>

#include "ops/device_quantize.h"
#include "ops/linear_dynamic.h"
#include "ops/qmatmul.h"
#include "quant/qparams.h"

namespace qext::ops {

namespace {

constexpr const char* kOp = "qext::linear_dynamic";

// Per row (or one for all finite rows, as quantize_rows does), from the rows'
// finite ranges brought to the host. Rows that are not finite get the shared
// or their own zero-row parameters; their outputs become NaN anyway.
std::pair<at::Tensor, at::Tensor> row_qparams(const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& finite,
                                              bool per_row) {
  const at::Tensor lo_h = lo.cpu().contiguous(), hi_h = hi.cpu().contiguous();
  const at::Tensor finite_h = finite.cpu().contiguous();
  const int64_t m = lo_h.numel();
  const float* l = lo_h.data_ptr<float>();
  const float* h = hi_h.data_ptr<float>();
  const bool* f = finite_h.data_ptr<bool>();
  at::Tensor scale = at::empty({m}, at::kFloat), zp = at::empty({m}, at::kInt);
  quant::QParams shared{};
  if (!per_row) {
    float all_lo = 0.0f, all_hi = 0.0f;
    for (int64_t i = 0; i < m; ++i) {
      if (!f[i]) continue;
      all_lo = std::min(all_lo, l[i]);
      all_hi = std::max(all_hi, h[i]);
    }
    shared = quant::choose_qparams(all_lo, all_hi, 0, 255, false);
  }
  for (int64_t i = 0; i < m; ++i) {
    const quant::QParams p = per_row ? quant::choose_qparams(l[i], h[i], 0, 255, false) : shared;
    scale.data_ptr<float>()[i] = p.scale;
    zp.data_ptr<int32_t>()[i] = p.zero_point;
  }
  return {scale.to(lo.device()), zp.to(lo.device())};
}

}  // namespace

at::Tensor linear_dynamic_aten(const at::Tensor& input, const c10::intrusive_ptr<PackedLinearWeight>& weight,
                               const std::optional<at::Tensor>& bias, bool per_row, bool relu) {
  TORCH_CHECK(weight, kOp, ": weight is None");
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

  const at::Tensor finite = at::isfinite(x).all(/*dim=*/1);
  const at::Tensor clean = at::where(finite.unsqueeze(1), x, at::zeros({}, x.options()));
  const auto [lo, hi] = at::aminmax(clean, /*dim=*/1);
  const auto [scale, zp] = row_qparams(lo, hi, finite, per_row);
  const at::Tensor q = quantize_aten(clean, scale, zp, /*axis=*/0, 0, 255);
  const auto [w_t, w_scale] = weight->on_device(input.device());
  const at::Tensor acc = qmatmul_int32_aten(q, zp, w_t, at::zeros({n}, zp.options()));

  at::Tensor y = acc.to(at::kFloat) * (scale.unsqueeze(1) * w_scale.unsqueeze(0));
  if (has_bias) y = y + *bias;
  // The epilogue's clamps: v > lo ? v : lo, then v < hi ? v : hi (NaN -> lo).
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor lo_clamp = at::full({}, relu ? 0.0f : -inf, y.options());
  y = at::where(y > lo_clamp, y, lo_clamp);
  const at::Tensor hi_clamp = at::full({}, inf, y.options());
  y = at::where(y < hi_clamp, y, hi_clamp);
  y = at::where(finite.unsqueeze(1), y, at::full({}, std::numeric_limits<float>::quiet_NaN(), y.options()));
  return y.reshape(out_shape);
}

}  // namespace qext::ops
