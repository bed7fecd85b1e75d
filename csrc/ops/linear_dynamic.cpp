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

struct RowRanges {
  std::vector<float> min, max;
  std::vector<uint8_t> finite;
};

RowRanges row_ranges(const float* x, int64_t m, int64_t k, kernels::Isa isa) {
  RowRanges r{std::vector<float>(m), std::vector<float>(m), std::vector<uint8_t>(m)};
  at::parallel_for(0, m, std::max<int64_t>(1, 16384 / k), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      r.finite[i] = kernels::finite_min_max(x + i * k, k, &r.min[i], &r.max[i], isa);
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

  // Activation qparams from each row's finite range; rows holding NaN/Inf are
  // left out of the per-tensor range and come out as NaN.
  const RowRanges ranges = row_ranges(xp, m, k, isa);
  std::vector<float> row_scale(m);
  std::vector<int32_t> row_zp(m);
  if (per_row) {
    for (int64_t i = 0; i < m; ++i) {
      const quant::QParams p = quant::choose_qparams(ranges.min[i], ranges.max[i], 0, 255, false);
      row_scale[i] = p.scale;
      row_zp[i] = p.zero_point;
    }
  } else {
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < m; ++i) {
      if (!ranges.finite[i]) continue;
      lo = std::min(lo, ranges.min[i]);
      hi = std::max(hi, ranges.max[i]);
    }
    const quant::QParams p = quant::choose_qparams(lo, hi, 0, 255, false);
    std::fill(row_scale.begin(), row_scale.end(), p.scale);
    std::fill(row_zp.begin(), row_zp.end(), p.zero_point);
  }

  at::Tensor q = at::empty({m, k}, input.options().dtype(at::kByte));
  uint8_t* qp = q.data_ptr<uint8_t>();
  at::parallel_for(0, m, std::max<int64_t>(1, 16384 / k), [&](int64_t b0, int64_t e0) {
    for (int64_t i = b0; i < e0; ++i) {
      kernels::quantize_u8(xp + i * k, k, row_scale[i], row_zp[i], 0, 255, qp + i * k, isa);
    }
  });

  kernels::Epilogue ep;
  ep.output = kernels::Epilogue::Output::Float;
  ep.row_scale = row_scale.data();
  ep.col_scale = weight->scales().data_ptr<float>();
  ep.bias = b.defined() ? b.data_ptr<float>() : nullptr;
  if (relu) ep.clamp_min = 0.0f;
  kernels::GemmArgs args;
  args.a = qp;
  args.lda = k;
  args.a_zero_point = row_zp.data();
  args.c = out.data_ptr<float>();
  args.ldc = n;
  parallel_qgemm(args, weight->packed(), ep, m);

  float* op = out.data_ptr<float>();
  for (int64_t i = 0; i < m; ++i) {
    if (!ranges.finite[i]) std::fill(op + i * n, op + (i + 1) * n, std::numeric_limits<float>::quiet_NaN());
  }
  return out;
}

}  // namespace qext::ops
