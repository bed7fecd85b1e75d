// Low-rank splits of a float matrix: the truncated SVD with the square roots
// of the kept singular values in both factors, so the two have the same
// dynamic range (which suits quantizing each one per row or per column).
// Used by qext::linalg::factorize and by the dynamic pass's low-rank Linear.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace qext::quant {

struct LowRankSplit {
  at::Tensor left;   // [M, rank]: U * sqrt(S)
  at::Tensor right;  // [rank, N]: sqrt(S) * Vh
  int64_t rank = 0;
  double energy = 0.0;  // sum of the kept S^2 over the sum of all S^2 (1 for a zero matrix)
};

// The smallest rank whose singular values hold `energy` (in (0, 1]) of the
// squared total, given S in descending order.
int64_t rank_for_energy(const at::Tensor& singular_values, double energy);

// matrix ~= left @ right. Exactly one of `rank` (> 0; more than min(M, N) is
// capped) and `energy` (in (0, 1]) chooses the rank. `matrix` must be a
// finite, non-empty 2-D float32 tensor. Throws c10::Error with the reason.
LowRankSplit low_rank_split(const at::Tensor& matrix, int64_t rank, double energy);

}  // namespace qext::quant
