// The depthwise kernel, AVX-512 path: 64 channels in four zmm accumulators,
// uint8 x int16 products widened to int32 (exact).
#include <immintrin.h>

#include "kernels/depthwise_impl.h"

namespace qext::kernels::detail {

namespace {

constexpr int kBlock = 64;

void macs(const uint8_t* const* taps, int64_t count, const int16_t* w, int64_t w_stride, int64_t c0, int32_t* out) {
  __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
  for (int64_t t = 0; t < count; ++t) {
    const uint8_t* x = taps[t] + c0;
    const int16_t* wt = w + t * w_stride + c0;
    for (int v = 0; v < 4; ++v) {
      const __m512i xv = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 16 * v)));
      const __m512i wv = _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wt + 16 * v)));
      acc[v] = _mm512_add_epi32(acc[v], _mm512_mullo_epi32(xv, wv));
    }
  }
  for (int v = 0; v < 4; ++v) _mm512_storeu_si512(out + 16 * v, acc[v]);
}

}  // namespace

void depthwise_u8_avx512_vnni(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  depthwise_rows<kBlock, macs, quantize_u8_avx512_vnni>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
