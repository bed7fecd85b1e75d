// qext::linear_dynamic: float in, float out, int8 inside. Activations are
// quantized on the fly to uint8 (asymmetric, per tensor or per row) and
// multiplied with the packed int8 weight; dequantize, bias and ReLU are fused
// into the GEMM's epilogue.
#include "ops/linear_dynamic.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <limits>
#include <vector>

#include "kernels/quantize.h"
#include "ops/parallel_qgemm.h"
#include "quant/qparams.h"

namespace qext::ops {

namespace {

constexpr const char* kOp = "qext::linear_dynamic";

// Quantizes x [m, k] to uint8 rows, one (scale, zero point) per row or one for
// all; rows holding NaN/Inf are left out of the shared range and flagged.
struct QuantizedRows {
  at::Tensor q;
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
  std::vector<uint8_t> finite;
};

QuantizedRows quantize_rows(const float* x, int64_t m, int64_t k, bool per_row, kernels::Isa isa) {
  QuantizedRows r{at::empty({m, k}, at::kByte), std::vector<float>(m), std::vector<int32_t>(m),
                  std::vector<uint8_t>(m)};
  uint8_t* q = r.q.data_ptr<uint8_t>();
  std::vector<float> lo(m), hi(m);
  const int64_t grain = std::max<int64_t>(1, 16384 / k);
  // Per row, each row is quantized right after its range, while still in L1.
  at::parallel_for(0, m, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      r.finite[i] = kernels::finite_min_max(x + i * k, k, &lo[i], &hi[i], isa);
      if (!per_row) continue;
      const quant::QParams p = quant::choose_qparams(lo[i], hi[i], 0, 255, false);
      r.scale[i] = p.scale;
      r.zero_point[i] = p.zero_point;
      kernels::quantize_u8(x + i * k, k, p.scale, p.zero_point, 0, 255, q + i * k, isa);
    }
  });
  if (per_row) return r;
  float all_lo = 0.0f, all_hi = 0.0f;
  for (int64_t i = 0; i < m; ++i) {
    if (!r.finite[i]) continue;
    all_lo = std::min(all_lo, lo[i]);
    all_hi = std::max(all_hi, hi[i]);
  }
  const quant::QParams p = quant::choose_qparams(all_lo, all_hi, 0, 255, false);
  std::fill(r.scale.begin(), r.scale.end(), p.scale);
  std::fill(r.zero_point.begin(), r.zero_point.end(), p.zero_point);
  at::parallel_for(0, m, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      kernels::quantize_u8(x + i * k, k, p.scale, p.zero_point, 0, 255, q + i * k, isa);
    }
  });
  return r;
}

}  // namespace

at::Tensor linear_dynamic(const at::Tensor& input,
                          const c10::intrusive_ptr<PackedLinearWeight>& weight,
                          const std::optional<at::Tensor>& bias, bool per_row, bool relu) {
  TORCH_CHECK(weight, kOp, ": weight is None");
  const int64_t k = weight->in_features(), n = weight->out_features();
  TORCH_CHECK(input.scalar_type() == at::kFloat, kOp, ": expected a float32 input; got ",
              input.scalar_type());
  TORCH_CHECK(input.device().is_cpu(), kOp, ": expected a CPU input; got ", input.device());
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == k, kOp, ": expected input [..., ", k,
              "] for a weight of shape [", n, ", ", k, "]; got input of shape ", input.sizes());
  at::Tensor b;
  if (bias && bias->defined()) {
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->dim() == 1 && bias->size(0) == n,
                kOp, ": expected a float32 bias of shape [", n, "]; got ", bias->scalar_type(),
                " of shape ", bias->sizes());
    b = bias->contiguous();
  }

  std::vector<int64_t> out_shape = input.sizes().vec();
  out_shape.back() = n;
  const int64_t m = input.numel() / k;
  at::Tensor out = at::empty(out_shape, input.options());
  if (m == 0) return out;

  const at::Tensor x = input.contiguous();
  const float* xp = x.data_ptr<float>();
  const kernels::Isa isa = kernels::active_isa();

  const QuantizedRows rows = quantize_rows(xp, m, k, per_row, isa);

  kernels::Epilogue ep;
  ep.output = kernels::Epilogue::Output::Float;
  ep.row_scale = rows.scale.data();
  ep.col_scale = weight->scales().data_ptr<float>();
  ep.bias = b.defined() ? b.data_ptr<float>() : nullptr;
  if (relu) ep.clamp_min = 0.0f;
  kernels::GemmArgs args;
  args.a = rows.q.data_ptr<uint8_t>();
  args.lda = k;
  args.a_zero_point = rows.zero_point.data();
  args.c = out.data_ptr<float>();
  args.ldc = n;
  parallel_qgemm(args, weight->packed(), ep, m);

  float* op = out.data_ptr<float>();
  for (int64_t i = 0; i < m; ++i) {
    if (!rows.finite[i]) std::fill(op + i * n, op + (i + 1) * n, std::numeric_limits<float>::quiet_NaN());
  }
  return out;
}

}  // namespace qext::ops
