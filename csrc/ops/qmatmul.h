// qext::qmatmul_int32: the exact int32 product of two quantized matrices,
//
//   out[..., m, n] = sum_k (a[..., m, k] - za[m]) * (b[..., k, n] - zb[n])
//
// a and b are int8 or uint8; zero points are per tensor ([]) or per row of a
// ([M]) and per column of b ([N]). b is [K, N] (shared by every batch) or has
// a's batch dimensions. Two implementations give the same integers: qext's
// kernels (CPU) and a composition of ATen ops around at::_int_mm (CUDA).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace qext::ops {

// The longest reduction whose result always fits int32: 255 * 255 * K < 2^31.
constexpr int64_t kMaxExactMatmulK = 33025;

// Checked operands, batch dimensions flattened; zero points as int64 [M] / [N]
// on the operands' device.
struct MatmulOperands {
  at::Tensor a;             // [batch, M, K]
  at::Tensor b;             // [1 or batch, K, N]
  at::Tensor a_zero_point;  // int64 [M]
  at::Tensor b_zero_point;  // int64 [N]
  int64_t m, k, n;
  std::vector<int64_t> out_sizes;  // [..., M, N]
};

MatmulOperands matmul_operands(const char* op, const at::Tensor& a, const at::Tensor& a_zero_point,
                               const at::Tensor& b, const at::Tensor& b_zero_point);

// CPU: qext's GEMM kernels on the active ISA path.
at::Tensor qmatmul_int32(const at::Tensor& a, const at::Tensor& a_zero_point, const at::Tensor& b,
                         const at::Tensor& b_zero_point);

// Any device: int8 x int8 -> int32 by at::_int_mm (cuBLASLt on CUDA) plus the
// zero-point corrections. Registered for CUDA; tested against the CPU path.
at::Tensor qmatmul_int32_aten(const at::Tensor& a, const at::Tensor& a_zero_point, const at::Tensor& b,
                              const at::Tensor& b_zero_point);
// Its arithmetic on operands already checked (or built valid, as the CUDA
// linear_dynamic does): no argument checks, so no host synchronisation.
at::Tensor qmatmul_int32_aten_unchecked(const MatmulOperands& o);

// Float result: float(acc) * (a_scale[m] * b_scale[n]) + bias[n], the GEMM
// epilogue's arithmetic, on whichever device the operands live.
at::Tensor qmatmul(const at::Tensor& a, const at::Tensor& a_scale, const at::Tensor& a_zero_point,
                   const at::Tensor& b, const at::Tensor& b_scale, const at::Tensor& b_zero_point,
                   const std::optional<at::Tensor>& bias);

}  // namespace qext::ops
