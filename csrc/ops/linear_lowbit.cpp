// qext::linear_lowbit: float in, float out; low-bit weights unpacked in
// registers by the kernel, activations quantized on the fly as for
// linear_dynamic.
#include "ops/linear_lowbit.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "ops/linear_dynamic.h"
#include "ops/quantize_rows.h"

namespace qext::ops {

at::Tensor linear_lowbit(const at::Tensor& input, const c10::intrusive_ptr<LowBitLinearWeight>& weight,
                         const std::optional<at::Tensor>& bias, bool per_row, bool relu) {
  constexpr const char* kOp = "qext::linear_lowbit";
  TORCH_CHECK(weight, kOp, ": weight is None");
  const kernels::LowBitWeights& w = weight->packed();
  const int64_t k = w.k(), n = w.n();
  const LinearCall call = prepare_linear_call(kOp, input, k, n, bias);
  const int64_t m = call.m;
  if (m == 0) return call.out;
  const at::Tensor& b = call.bias;
  const at::Tensor& out = call.out;
  const kernels::Isa isa = kernels::active_isa();
  const QuantizedRows rows = quantize_rows(call.x.data_ptr<float>(), m, k, per_row, isa, w.k_padded());

  kernels::LowBitGemmArgs args;
  args.a = rows.q.data_ptr<uint8_t>();
  args.lda = w.k_padded();
  args.a_zero_point = rows.zero_point.data();
  args.row_scale = rows.scale.data();
  args.bias = b.defined() ? b.data_ptr<float>() : nullptr;
  if (relu) args.clamp_min = 0.0f;
  args.c = out.data_ptr<float>();
  args.ldc = n;
  // Column blocks split across threads, ~8k steps of 4 k per chunk: every
  // thread streams only its share of the weights, which bounds the small-M
  // (decode) case; a row over K = 2048 still splits 128 blocks into 8 chunks.
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, m * (k / 4)));
  at::parallel_for(0, w.num_blocks(), grain, [&](int64_t b0, int64_t b1) {
    kernels::lowbit_gemm(args, w, 0, m, b0, b1, isa);
  });
  mark_nonfinite_rows(rows, out.data_ptr<float>(), m, n);
  return out;
}

}  // namespace qext::ops
