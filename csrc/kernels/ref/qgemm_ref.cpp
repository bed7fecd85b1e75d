// The scalar reference: the specification every fast path is tested against.
#include <algorithm>
#include <cmath>
#include <limits>

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

bool finite_min_max_ref(const float* x, int64_t n, float* min_out, float* max_out) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  const bool finite = ref::fold_finite_min_max(x, n, &lo, &hi);
  if (lo > hi) lo = hi = 0.0f;  // no finite value
  *min_out = lo;
  *max_out = hi;
  return finite;
}

void quantize_u8_ref(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                     int32_t qmax, uint8_t* q) {
  for (int64_t i = 0; i < n; ++i) {
    q[i] = static_cast<uint8_t>(ref::quantize_one(x[i], scale, zero_point, qmin, qmax));
  }
}

void add_requant_u8_ref(const uint8_t* a, float sa, int32_t za, const uint8_t* b, float sb,
                        int32_t zb, int64_t n, float so, int32_t zo, bool relu, uint8_t* out) {
  const float lo = relu ? 0.0f : -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) out[i] = ref::add_requant_one(a[i], sa, za, b[i], sb, zb, so, zo, lo);
}

uint8_t max_u8_ref(const uint8_t* x, int64_t n) {
  uint8_t m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

}  // namespace qext::kernels::detail
