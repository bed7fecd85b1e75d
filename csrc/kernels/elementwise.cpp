#include "kernels/elementwise.h"

#include "kernels/isa_paths.h"

namespace qext::kernels {

void add_requant_u8(const uint8_t* a, float sa, int32_t za, const uint8_t* b, float sb, int32_t zb,
                    int64_t n, float so, int32_t zo, bool relu, uint8_t* out, Isa isa) {
  switch (isa) {
    case Isa::Ref: return detail::add_requant_u8_ref(a, sa, za, b, sb, zb, n, so, zo, relu, out);
    case Isa::Avx2: return detail::add_requant_u8_avx2(a, sa, za, b, sb, zb, n, so, zo, relu, out);
    case Isa::Avx512Vnni:
      return detail::add_requant_u8_avx512_vnni(a, sa, za, b, sb, zb, n, so, zo, relu, out);
  }
}

}  // namespace qext::kernels
