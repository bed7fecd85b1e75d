#include "quant/low_rank.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>

namespace qext::quant {

int64_t rank_for_energy(const at::Tensor& singular_values, double energy) {
  const at::Tensor s2 = singular_values.to(at::kDouble).square();
  const double total = s2.sum().item<double>();
  if (total <= 0.0) return 1;
  const at::Tensor kept = s2.cumsum(0) / total;
  // The first prefix reaching the target (a hair under it, so energy = 1
  // does not fail on the last bit of rounding).
  const int64_t below = (kept < energy - 1e-12).sum().item<int64_t>();
  return std::min<int64_t>(below + 1, singular_values.size(0));
}

LowRankSplit low_rank_split(const at::Tensor& matrix, int64_t rank, double energy) {
  TORCH_CHECK(matrix.dim() == 2, "low-rank factorization: expected a 2-D matrix; got ", matrix.dim(), "-D");
  TORCH_CHECK(matrix.scalar_type() == at::kFloat, "low-rank factorization: expected float32; got ",
              matrix.scalar_type());
  TORCH_CHECK(matrix.numel() > 0, "low-rank factorization: the matrix is empty (", matrix.sizes(), ")");
  TORCH_CHECK((rank > 0) != (energy > 0.0), "low-rank factorization: give exactly one of rank (> 0) and energy "
              "(in (0, 1]); got rank=", rank, ", energy=", energy);
  TORCH_CHECK(rank >= 0, "low-rank factorization: rank must be positive; got ", rank);
  TORCH_CHECK(energy <= 1.0, "low-rank factorization: energy must be in (0, 1]; got ", energy);
  TORCH_CHECK(at::isfinite(matrix).all().item<bool>(), "low-rank factorization: the matrix holds NaN or Inf");

  // In double: float32's SVD loses the small singular values' directions,
  // which is where a rank cut decides.
  const auto [u, s, vh] = at::linalg_svd(matrix.to(at::kDouble), /*full_matrices=*/false);
  LowRankSplit out;
  out.rank = rank > 0 ? std::min<int64_t>(rank, s.size(0)) : rank_for_energy(s, energy);
  const at::Tensor s2 = s.square();
  const double total = s2.sum().item<double>();
  out.energy = total > 0.0 ? s2.narrow(0, 0, out.rank).sum().item<double>() / total : 1.0;
  const at::Tensor root = s.narrow(0, 0, out.rank).sqrt();
  out.left = (u.narrow(1, 0, out.rank) * root.unsqueeze(0)).to(at::kFloat).contiguous();
  out.right = (root.unsqueeze(1) * vh.narrow(0, 0, out.rank)).to(at::kFloat).contiguous();
  return out;
}

}  // namespace qext::quant
