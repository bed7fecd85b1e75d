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

namespace qext::kernels::detail {

// Named per path, outside the anonymous namespace: each_block<> of an
// anonymous template is a weak symbol whose name is the same in every ISA
// file, and the linker would keep one path's copy for all.

// Any int8 weights: 16 input channels widened to int16, one pair per lane.
struct Avx2PairChain {
  static __m256i load(const uint8_t* p) {
    return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static __m256i mac(__m256i sum, __m256i x, __m256i wv) { return _mm256_add_epi32(sum, _mm256_madd_epi16(x, wv)); }
};

// Weights within +-64: 32 input channels as bytes, four per lane.
struct Avx2ByteChain {
  static __m256i load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static __m256i mac(__m256i sum, __m256i x, __m256i wv) {
    return _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(x, wv), _mm256_set1_epi16(1)));
  }
};

template <class Chain>
struct BlockPixelsAvx2 {
  template <int kPixels>
  struct Run {
    static void run(const GroupedWeights& w, const int64_t* tap_offsets, const uint8_t* window, int64_t pixel_step,
                    int64_t b, int32_t* acc) {
      const int64_t padded = w.padded_channels(), steps = w.steps;
      const int32_t* words = w.words.data() + b * w.taps * steps * 8;
      const int32_t* lane_word = w.lane_word.data() + b * steps * 8;
      __m256i sum[kPixels];
      for (int p = 0; p < kPixels; ++p) sum[p] = _mm256_setzero_si256();
      for (int64_t t = 0; t < w.taps; ++t) {
        __m256i x[kPixels];
        for (int p = 0; p < kPixels; ++p) x[p] = Chain::load(window + tap_offsets[t] + p * pixel_step);
        for (int64_t s = 0; s < steps; ++s) {
          const __m256i index = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lane_word + s * 8));
          const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words + (t * steps + s) * 8));
          for (int p = 0; p < kPixels; ++p) sum[p] = Chain::mac(sum[p], _mm256_permutevar8x32_epi32(x[p], index), wv);
        }
      }
      for (int p = 0; p < kPixels; ++p)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + p * padded + b * 8), sum[p]);
    }
  };
};

void grouped_u8_avx2(const GroupedArgs& args, int64_t row_begin, int64_t row_end) {
  if (args.weights->step == 4)
    grouped_rows<each_block<BlockPixelsAvx2<Avx2ByteChain>::Run>, quantize_u8_avx2>(args, row_begin, row_end);
  else
    grouped_rows<each_block<BlockPixelsAvx2<Avx2PairChain>::Run>, quantize_u8_avx2>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
