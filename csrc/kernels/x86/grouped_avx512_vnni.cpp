// The grouped kernel, AVX-512 VNNI path: per tap, one 64-byte window of each
// pixel's input channels; vpermd gives each of the 16 output lanes the four
// inputs of its own group, vpdpbusd (u8 x s8, no saturation) accumulates
// them; four output pixels share each weight load.
#include <immintrin.h>

#include "kernels/grouped_impl.h"

namespace qext::kernels::detail {

// Named per path, outside the anonymous namespace: each_block<> of an
// anonymous template is a weak symbol whose name is the same in every ISA
// file, and the linker would keep one path's copy for all.
template <int kPixels>
struct BlockPixelsAvx512Vnni {
  static void run(const GroupedWeights& w, const int64_t* tap_offsets, const uint8_t* window, int64_t pixel_step,
                  int64_t b, int32_t* acc) {
    const int64_t padded = w.padded_channels(), steps = w.steps;
    const int32_t* words = w.words.data() + b * w.taps * steps * 16;
    const int32_t* lane_word = w.lane_word.data() + b * steps * 16;
    __m512i sum[kPixels];
    for (int p = 0; p < kPixels; ++p) sum[p] = _mm512_setzero_si512();
    for (int64_t t = 0; t < w.taps; ++t) {
      __m512i x[kPixels];
      for (int p = 0; p < kPixels; ++p) x[p] = _mm512_loadu_si512(window + tap_offsets[t] + p * pixel_step);
      for (int64_t s = 0; s < steps; ++s) {
        const __m512i index = _mm512_loadu_si512(lane_word + s * 16);
        const __m512i wv = _mm512_loadu_si512(words + (t * steps + s) * 16);
        for (int p = 0; p < kPixels; ++p) sum[p] = _mm512_dpbusd_epi32(sum[p], _mm512_permutexvar_epi32(index, x[p]), wv);
      }
    }
    for (int p = 0; p < kPixels; ++p) _mm512_storeu_si512(acc + p * padded + b * 16, sum[p]);
  }
};

void grouped_u8_avx512_vnni(const GroupedArgs& args, int64_t row_begin, int64_t row_end) {
  grouped_rows<each_block<BlockPixelsAvx512Vnni>, quantize_u8_avx512_vnni>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
