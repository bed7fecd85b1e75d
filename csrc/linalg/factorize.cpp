// qext::linalg::factorize: quantized low-rank factors of a matrix, with the
// error of the product users will actually compute (qext's matmul).
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "qext/linalg.h"
#include "quant/low_rank.h"

namespace qext::linalg {

namespace {

int64_t stored_bytes(const QTensor& q) {
  return static_cast<int64_t>(q.data.nbytes() + q.scale.nbytes() + q.zero_point.nbytes());
}

}  // namespace

Factorization factorize(const at::Tensor& matrix, int64_t rank, double energy, QDtype dtype) {
  TORCH_CHECK(dtype != QDtype::Uint8, "qext::linalg::factorize: dtype must be int8 or int4 (the factors are "
              "symmetric); got uint8");
  const quant::LowRankSplit split = quant::low_rank_split(matrix, rank, energy);
  Factorization f;
  f.rank = split.rank;
  f.energy = split.energy;
  f.left = quantize(split.left, dtype, /*axis=*/0, /*symmetric=*/true);
  f.right = quantize(split.right, dtype, /*axis=*/1, /*symmetric=*/true);
  const at::Tensor product = matmul(f.left, f.right);
  const double norm = matrix.to(at::kDouble).norm().item<double>();
  const double err = (matrix.to(at::kDouble) - product.to(at::kDouble)).norm().item<double>();
  f.relative_error = norm > 0.0 ? err / norm : err;
  f.bytes = stored_bytes(f.left) + stored_bytes(f.right);
  f.float_bytes = static_cast<int64_t>(matrix.numel() * sizeof(float));
  return f;
}

}  // namespace qext::linalg
