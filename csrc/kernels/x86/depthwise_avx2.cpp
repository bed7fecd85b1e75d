// The depthwise kernel, AVX2 path: 32 channels in four ymm accumulators,
// uint8 x int16 products widened to int32 (exact; no 16-bit saturation).
#include <immintrin.h>

#include "kernels/depthwise_impl.h"

namespace qext::kernels::detail {

namespace {

constexpr int kBlock = 32;

void macs(const uint8_t* const* taps, int64_t count, const int16_t* w, int64_t w_stride, int64_t c0, int32_t* out) {
  __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
  for (int64_t t = 0; t < count; ++t) {
    const uint8_t* x = taps[t] + c0;
    const int16_t* wt = w + t * w_stride + c0;
    for (int v = 0; v < 4; ++v) {
      const __m256i xv = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + 8 * v)));
      const __m256i wv = _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wt + 8 * v)));
      acc[v] = _mm256_add_epi32(acc[v], _mm256_mullo_epi32(xv, wv));
    }
  }
  for (int v = 0; v < 4; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8 * v), acc[v]);
}

}  // namespace

void depthwise_u8_avx2(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  depthwise_rows<kBlock, macs, quantize_u8_avx2>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
