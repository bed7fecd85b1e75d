#include "kernels/elementwise.h"

#include "kernels/kernel_table.h"

namespace qext::kernels {

void add_requant_u8(const uint8_t* a, float sa, int32_t za, const uint8_t* b, float sb, int32_t zb,
                    int64_t n, float so, int32_t zo, bool relu, uint8_t* out, Isa isa) {
  kernel_table(isa).add_requant_u8(a, sa, za, b, sb, zb, n, so, zo, relu, out);
}

void mul_requant_u8(const uint8_t* a, float sa, int32_t za, const float* f, int64_t f_len, int64_t n,
                    float so, int32_t zo, uint8_t* out, Isa isa) {
  kernel_table(isa).mul_requant_u8(a, sa, za, f, f_len, n, so, zo, out);
}

uint8_t max_u8(const uint8_t* x, int64_t n, Isa isa) { return kernel_table(isa).max_u8(x, n); }

}  // namespace qext::kernels
