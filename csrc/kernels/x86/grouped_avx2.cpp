// The grouped kernel, AVX2 path: per tap, 16 of each pixel's input channels
// widened to int16; vpermd gives each of the 8 output lanes a pair of inputs
// of its own group, vpmaddwd (exact: no 16-bit saturation) multiplies them
// with int16 weight pairs; four output pixels share each weight load.
// Narrow weights (|w| <= 64, packed 4 per word): 32 input channels as bytes,
// vpermd hands each lane 4 inputs, vpmaddubsw (pair sums at most
// 255 * 64 * 2: exact) + vpmaddwd by ones -- half the permutes per
// multiply-add, nothing widened.
#include <immintrin.h>

#include "kernels/grouped_impl.h"
#include "kernels/x86/avx2_epilogue.h"

namespace qext::kernels::detail {

// Named per path, outside the anonymous namespace: each_block<> of an
// anonymous template is a weak symbol whose name is the same in every ISA
// file, and the linker would keep one path's copy for all.

// What both AVX2 chains share: 8 output lanes of int32 words.
struct Avx2Lanes {
  using Vec = __m256i;
  static constexpr int64_t kLanes = 8;
  static Vec zero() { return _mm256_setzero_si256(); }
  static Vec words(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static Vec permute(Vec x, Vec index) { return _mm256_permutevar8x32_epi32(x, index); }
  static void store(int32_t* p, Vec v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
};

// Any int8 weights: 16 input channels widened to int16, one pair per lane.
struct Avx2PairChain : Avx2Lanes {
  static Vec load(const uint8_t* p) { return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static Vec mac(Vec sum, Vec x, Vec wv) { return _mm256_add_epi32(sum, _mm256_madd_epi16(x, wv)); }
};

// Weights within +-64: 32 input channels as bytes, four per lane.
struct Avx2ByteChain : Avx2Lanes {
  static Vec load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static Vec mac(Vec sum, Vec x, Vec wv) {
    return _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(x, wv), _mm256_set1_epi16(1)));
  }
};

void grouped_u8_avx2(const GroupedArgs& args, int64_t row_begin, int64_t row_end) {
  if (args.weights->step == 4)
    grouped_rows<each_block<BlockPixels<Avx2ByteChain>::Run>, VectorRowRequantizer<Avx2RowLanes>>(args, row_begin, row_end);
  else
    grouped_rows<each_block<BlockPixels<Avx2PairChain>::Run>, VectorRowRequantizer<Avx2RowLanes>>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
