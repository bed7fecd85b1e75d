// The scalar reference quantize kernels: the specification the fast paths are
// tested against.
#include <limits>

#include "kernels/isa_paths.h"
#include "kernels/ref/scalar_rules.h"

namespace qext::kernels::detail {

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

}  // namespace qext::kernels::detail
