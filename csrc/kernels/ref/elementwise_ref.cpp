// The scalar reference element-wise kernels: the specification the fast paths
// are tested against.
#include <algorithm>
#include <limits>

#include "kernels/isa_paths.h"
#include "kernels/ref/scalar_rules.h"

namespace qext::kernels::detail {

void add_requant_u8_ref(const uint8_t* a, float sa, int32_t za, const uint8_t* b, float sb,
                        int32_t zb, int64_t n, float so, int32_t zo, bool relu, uint8_t* out) {
  const float lo = relu ? 0.0f : -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) out[i] = ref::add_requant_one(a[i], sa, za, b[i], sb, zb, so, zo, lo);
}

void mul_requant_u8_ref(const uint8_t* a, float sa, int32_t za, const float* f, int64_t f_len, int64_t n,
                        float so, int32_t zo, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = ref::mul_requant_one(a[i], sa, za, f[i % f_len], so, zo);
}

uint8_t max_u8_ref(const uint8_t* x, int64_t n) {
  uint8_t m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

}  // namespace qext::kernels::detail
