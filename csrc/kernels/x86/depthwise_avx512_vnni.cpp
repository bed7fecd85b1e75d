// The depthwise kernel, AVX-512 VNNI path: two taps' uint8 values packed as
// int16 pairs against interleaved weights, vpdpwssd into int32 (exact: the
// non-saturating form); up to 64 channels in four zmm accumulators.
#include <immintrin.h>

#include "kernels/depthwise_impl.h"

namespace qext::kernels::detail {

namespace {

// kVectors x 16 channels starting at c.
template <int kVectors>
inline void channel_block(const uint8_t* const* taps, int64_t pairs, const int32_t* w, int64_t padded, int64_t c,
                          int32_t* acc) {
  __m512i sum[kVectors];
  for (int v = 0; v < kVectors; ++v) sum[v] = _mm512_setzero_si512();
  for (int64_t p = 0; p < pairs; ++p) {
    const uint8_t *x0 = taps[2 * p] + c, *x1 = taps[2 * p + 1] + c;
    const int32_t* wp = w + p * padded + c;
    for (int v = 0; v < kVectors; ++v) {
      const __m512i lo = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x0 + 16 * v)));
      const __m512i hi = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x1 + 16 * v)));
      const __m512i x = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
      sum[v] = _mm512_dpwssd_epi32(sum[v], x, _mm512_loadu_si512(wp + 16 * v));
    }
  }
  for (int v = 0; v < kVectors; ++v) _mm512_storeu_si512(acc + c + 16 * v, sum[v]);
}

void macs(const uint8_t* const* taps, int64_t pairs, const int32_t* w, int64_t padded, int32_t* acc) {
  int64_t c = 0;
  for (; c + 64 <= padded; c += 64) channel_block<4>(taps, pairs, w, padded, c, acc);
  switch ((padded - c) / 16) {  // padded is a multiple of 16
    case 3: return channel_block<3>(taps, pairs, w, padded, c, acc);
    case 2: return channel_block<2>(taps, pairs, w, padded, c, acc);
    case 1: return channel_block<1>(taps, pairs, w, padded, c, acc);
    default: return;
  }
}

}  // namespace

void depthwise_u8_avx512_vnni(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  depthwise_rows<macs, quantize_u8_avx512_vnni>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
