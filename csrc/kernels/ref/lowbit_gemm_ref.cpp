// Scalar reference of lowbit_gemm: the definition in lowbit_gemm.h, read
// through LowBitWeights::level (so it checks the packing as well).
#include <algorithm>

#include "kernels/isa_paths.h"

namespace qext::kernels::detail {

void lowbit_gemm_ref(const LowBitGemmArgs& args, const LowBitWeights& w, const int32_t* /*row_group_sums*/,
                     int64_t m_begin, int64_t m_end, int64_t block_begin, int64_t block_end) {
  const int64_t n_end = std::min(w.n(), block_end * kLowBitBlockCols);
  for (int64_t m = m_begin; m < m_end; ++m) {
    const uint8_t* a = args.a + m * args.lda;
    for (int64_t n = block_begin * kLowBitBlockCols; n < n_end; ++n) {
      const int64_t b = n / kLowBitBlockCols, col = n % kLowBitBlockCols;
      float sum = 0.0f;
      for (int64_t g = 0; g < w.groups(); ++g) {
        const int64_t k0 = g * w.group_size(), k1 = k0 + w.group_len(g);
        int32_t acc = 0;
        for (int64_t k = k0; k < k1; ++k) acc += (a[k] - args.a_zero_point[m]) * w.level(n, k);
        const float scaled = static_cast<float>(acc) * w.block_scales(b)[g * kLowBitBlockCols + col];
        sum = sum + scaled;
      }
      float y = sum * args.row_scale[m];
      if (args.bias) y = y + args.bias[n];
      y = y > args.clamp_min ? y : args.clamp_min;  // as vmaxps / vminps order their operands
      y = y < args.clamp_max ? y : args.clamp_max;
      args.c[m * args.ldc + n] = y;
    }
  }
}

}  // namespace qext::kernels::detail
