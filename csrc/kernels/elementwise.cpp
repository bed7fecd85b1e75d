#include "kernels/elementwise.h"

#include "kernels/kernel_table.h"
#include "kernels/ref/scalar_rules.h"

namespace qext::kernels {

void add_requant_u8(const uint8_t* a, float sa, int32_t za, const uint8_t* b, float sb, int32_t zb,
                    int64_t n, float so, int32_t zo, bool relu, uint8_t* out, Isa isa) {
  kernel_table(isa).add_requant_u8(a, sa, za, b, sb, zb, n, so, zo, relu, out);
}

void requantize_u8(const uint8_t* in, int64_t n, float s_in, int32_t z_in, float s_out, int32_t z_out,
                   uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = static_cast<uint8_t>(ref::quantize_one(ref::dequantize_one(in[i], s_in, z_in), s_out, z_out, 0, 255));
  }
}

}  // namespace qext::kernels
