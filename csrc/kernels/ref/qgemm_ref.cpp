// The scalar reference: the specification every fast path is tested against.
#include <algorithm>

#include "kernels/isa_paths.h"
#include "kernels/ref/scalar_rules.h"

namespace qext::kernels::detail {

void qgemm_ref(const GemmArgs& args, const PackedWeights& w, const Epilogue& ep,
               int64_t m_begin, int64_t m_end, int64_t block_begin, int64_t block_end) {
  const int64_t bc = w.layout().block_cols;
  for (int64_t b = block_begin; b < block_end; ++b) {
    const auto* wb = reinterpret_cast<const int8_t*>(w.block(b));
    const int64_t n0 = b * bc, n1 = std::min(w.n(), n0 + bc);
    const int64_t width = n1 - n0;  // col_align 1, k_group 1: bytes run [k][column]
    const int64_t run = w.k() / (args.a_rows ? args.a_segments : 1);
    for (int64_t m = m_begin; m < m_end; ++m) {
      const ARow a = a_row(args, m);
      const int32_t zp = args.a_zero_point[m];
      for (int64_t n = n0; n < n1; ++n) {
        int32_t acc = 0;
        for (int64_t k = 0; k < w.k(); ++k) {
          const int32_t ak = a.run(k / run)[k % run];
          acc += (ak - zp) * static_cast<int32_t>(wb[k * width + (n - n0)]);
        }
        ref::store_one(ep, acc, m, n, args.c, args.ldc);
      }
    }
  }
}

}  // namespace qext::kernels::detail
