// The depthwise kernel, AVX2 path: two taps' uint8 values packed as int16
// pairs against interleaved weights, vpmaddwd into int32 (exact: no 16-bit
// saturation); up to 64 channels in eight ymm accumulators.
#include <immintrin.h>

#include "kernels/depthwise_impl.h"

namespace qext::kernels::detail {

namespace {

// kVectors x 8 channels starting at c.
template <int kVectors>
inline void channel_block(const uint8_t* const* taps, int64_t pairs, const int32_t* w, int64_t padded, int64_t c,
                          int32_t* acc) {
  __m256i sum[kVectors];
  for (int v = 0; v < kVectors; ++v) sum[v] = _mm256_setzero_si256();
  for (int64_t p = 0; p < pairs; ++p) {
    const uint8_t *x0 = taps[2 * p] + c, *x1 = taps[2 * p + 1] + c;
    const int32_t* wp = w + p * padded + c;
    for (int v = 0; v < kVectors; ++v) {
      const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x0 + 8 * v)));
      const __m256i hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x1 + 8 * v)));
      const __m256i x = _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16));
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + 8 * v));
      sum[v] = _mm256_add_epi32(sum[v], _mm256_madd_epi16(x, wv));
    }
  }
  for (int v = 0; v < kVectors; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + c + 8 * v), sum[v]);
}

void macs(const uint8_t* const* taps, int64_t pairs, const int32_t* w, int64_t padded, int32_t* acc) {
  int64_t c = 0;
  for (; c + 64 <= padded; c += 64) channel_block<8>(taps, pairs, w, padded, c, acc);
  switch ((padded - c) / 16) {  // padded is a multiple of 16
    case 3: return channel_block<6>(taps, pairs, w, padded, c, acc);
    case 2: return channel_block<4>(taps, pairs, w, padded, c, acc);
    case 1: return channel_block<2>(taps, pairs, w, padded, c, acc);
    default: return;
  }
}

}  // namespace

void depthwise_u8_avx2(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  depthwise_rows<macs, quantize_u8_avx2>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
