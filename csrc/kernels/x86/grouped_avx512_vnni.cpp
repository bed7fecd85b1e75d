// The grouped kernel, AVX-512 VNNI path: per tap, one 64-byte window of each
// pixel's input channels; vpermd gives each of the 16 output lanes the four
// inputs of its own group, vpdpbusd (u8 x s8, no saturation) accumulates
// them; four output pixels share each weight load.
#include <immintrin.h>

#include "kernels/grouped_impl.h"
#include "kernels/x86/avx512_epilogue.h"

namespace qext::kernels::detail {

// Named per path, outside the anonymous namespace: each_block<> of an
// anonymous template is a weak symbol whose name is the same in every ISA
// file, and the linker would keep one path's copy for all.
struct Avx512VnniChain {
  using Vec = __m512i;
  static constexpr int64_t kLanes = 16;
  static Vec zero() { return _mm512_setzero_si512(); }
  static Vec load(const uint8_t* p) { return _mm512_loadu_si512(p); }
  static Vec words(const int32_t* p) { return _mm512_loadu_si512(p); }
  static Vec permute(Vec x, Vec index) { return _mm512_permutexvar_epi32(index, x); }
  static Vec mac(Vec sum, Vec x, Vec wv) { return _mm512_dpbusd_epi32(sum, x, wv); }
  static void store(int32_t* p, Vec v) { _mm512_storeu_si512(p, v); }
};

void grouped_u8_avx512_vnni(const GroupedArgs& args, int64_t row_begin, int64_t row_end) {
  grouped_rows<each_block<BlockPixels<Avx512VnniChain>::Run>, VectorRowRequantizer<Avx512RowLanes>>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
