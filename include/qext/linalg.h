// qext::linalg -- quantized tensors and the linear algebra on them.
//
// A QTensor is integer data with a float scale and an integer zero point per
// tensor or per slice along one axis: real = scale * (q - zero_point). Data is
// int8, uint8 or int4 (two values per byte along the last dimension). Every
// function runs the qext ops (torch.ops.qext.*) through the dispatcher, so
// CPU tensors use qext's kernels and CUDA tensors the ATen/cuBLASLt path, with
// the same integers on both.
//
//   auto a = qext::linalg::quantize(x, qext::linalg::QDtype::Uint8);
//   auto b = qext::linalg::quantize(w.t(), qext::linalg::QDtype::Int8, /*axis=*/1, /*symmetric=*/true);
//   at::Tensor acc = qext::linalg::matmul_int32(a, b);   // exact
//   at::Tensor y = qext::linalg::matmul(a, b);           // float
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace qext::linalg {

enum class QDtype { Int8, Uint8, Int4 };

const char* qdtype_name(QDtype dtype);
// "int8", "uint8", "int4"; throws std::invalid_argument on anything else.
QDtype qdtype_from_name(const std::string& name);

struct QTensor {
  at::Tensor data;        // int8 / uint8; int4: uint8 bytes holding two values each
  at::Tensor scale;       // float32: [] per tensor, [size(axis)] per axis
  at::Tensor zero_point;  // int32, the scale's shape
  std::optional<int64_t> axis;  // the per-axis dimension (non-negative), or none
  QDtype dtype = QDtype::Int8;
  int64_t int4_last_dim = 0;    // int4 only: the unpacked length of the last dimension

  std::vector<int64_t> sizes() const;
  int64_t dim() const { return data.dim(); }
  // The integer values as int8 / uint8 (int4 unpacked to int8).
  at::Tensor int_repr() const;
};

// Scale and zero point from x's range (the qext rule, as for activations);
// symmetric puts the zero point in the middle of the range.
QTensor quantize(const at::Tensor& x, QDtype dtype = QDtype::Int8, std::optional<int64_t> axis = std::nullopt,
                 bool symmetric = false);
// With given parameters.
QTensor quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point, QDtype dtype,
                 std::optional<int64_t> axis = std::nullopt);
at::Tensor dequantize(const QTensor& q);

// sum_k (a - za)(b - zb), exact int32. a [..., M, K] may be per-row (axis -2),
// b [..., K, N] or [K, N] per-column (axis -1); a scale along K cannot be
// factored out of the sum and is refused.
at::Tensor matmul_int32(const QTensor& a, const QTensor& b);
// float(acc) * a_scale * b_scale (+ bias).
at::Tensor matmul(const QTensor& a, const QTensor& b, const std::optional<at::Tensor>& bias = std::nullopt);

// Element-wise, broadcasting: dequantize, operate in float.
at::Tensor add(const QTensor& a, const QTensor& b);
at::Tensor mul(const QTensor& a, const QTensor& b);

// Swaps two dimensions (data and the per-axis parameters' axis).
QTensor transpose(const QTensor& q, int64_t dim0, int64_t dim1);

// The k keys with the largest dot product with each query: queries [Q, D]
// (per tensor or per row), keys [N, D] (per tensor or per key). Returns
// (scores [Q, k] float, indices [Q, k] int64), best first.
std::tuple<at::Tensor, at::Tensor> topk_dot(const QTensor& queries, const QTensor& keys, int64_t k);

// A float matrix [M, N] as the product of two quantized low-rank factors,
// matrix ~= matmul(left, right): the truncated SVD with sqrt(S) in each
// factor, left [M, r] quantized per row (axis 0) and right [r, N] per column
// (axis 1), both symmetric -- the operand forms matmul takes.
struct Factorization {
  QTensor left;
  QTensor right;
  int64_t rank = 0;
  double energy = 0.0;          // the kept singular values' share of sum S^2
  double relative_error = 0.0;  // ||matrix - matmul(left, right)||_F / ||matrix||_F
  int64_t bytes = 0;            // both factors' values (int4: half a byte each), scales and zero points
  int64_t float_bytes = 0;      // the float32 matrix's
};
// Exactly one of rank (> 0; capped at min(M, N)) and energy (in (0, 1]: the
// smallest rank keeping that share) chooses the rank. dtype: Int8 or Int4.
Factorization factorize(const at::Tensor& matrix, int64_t rank = 0, double energy = 0.0,
                        QDtype dtype = QDtype::Int8);

}  // namespace qext::linalg
