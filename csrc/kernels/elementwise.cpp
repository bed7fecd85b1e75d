// Scalar code written for GCC's auto-vectoriser (-O3); compiled with the other
// kernels under -ffp-contract=off, so results do not depend on the ISA.
#include "kernels/elementwise.h"

#include <limits>

#include "kernels/ref/scalar_rules.h"

namespace qext::kernels {

void add_requant_u8(const uint8_t* a, float sa, int32_t za, const uint8_t* b, float sb, int32_t zb,
                    int64_t n, float so, int32_t zo, bool relu, uint8_t* out) {
  const float lo = relu ? 0.0f : -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    float v = static_cast<float>(a[i] - za) * sa + static_cast<float>(b[i] - zb) * sb;
    v = v > lo ? v : lo;
    out[i] = static_cast<uint8_t>(ref::quantize_one(v, so, zo, 0, 255));
  }
}

}  // namespace qext::kernels
