// The depthwise kernel, AVX2 path, on either weight layout:
// - TapQuads (weights within +-64): four taps' pixel bytes interleaved by
//   byte unpacks, vpmaddubsw (pair sums of at most 255 * 64 * 2: exact, no
//   saturation) + vpmaddwd by ones into int32: 32 multiply-adds in two
//   multiplies and four shuffles, 32 channels in four ymm accumulators;
// - TapPairs (any int8 weights): two taps' bytes widened to int16 pairs,
//   vpmaddwd into int32 (exact); up to 64 channels in eight ymm accumulators.
#include <immintrin.h>

#include "kernels/depthwise_impl.h"

namespace qext::kernels::detail {

namespace {

inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// Channels [c, c + stored) (stored 16 or 32) of the 32-channel block at c.
void quad_block(const uint8_t* const* taps, int64_t quads, const int32_t* w, int64_t stride, int64_t c,
                int64_t stored, int32_t* acc) {
  const __m256i ones = _mm256_set1_epi16(1);
  // sum[k]: channels 4k..4k+3 in the low 128-bit lane, 16+4k..16+4k+3 in the high one.
  __m256i sum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
  for (int64_t p = 0; p < quads; ++p) {
    const uint8_t* const* t = taps + 4 * p;
    const __m256i x0 = load32(t[0] + c), x1 = load32(t[1] + c), x2 = load32(t[2] + c), x3 = load32(t[3] + c);
    const __m256i lo01 = _mm256_unpacklo_epi8(x0, x1), hi01 = _mm256_unpackhi_epi8(x0, x1);
    const __m256i lo23 = _mm256_unpacklo_epi8(x2, x3), hi23 = _mm256_unpackhi_epi8(x2, x3);
    const __m256i q[4] = {_mm256_unpacklo_epi16(lo01, lo23), _mm256_unpackhi_epi16(lo01, lo23),
                          _mm256_unpacklo_epi16(hi01, hi23), _mm256_unpackhi_epi16(hi01, hi23)};
    const int32_t* wp = w + p * stride + c;
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + 8 * k));
      sum[k] = _mm256_add_epi32(sum[k], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], wv), ones));
    }
  }
  auto store = [&](int64_t at, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + c + at), v); };
  store(0, _mm256_permute2x128_si256(sum[0], sum[1], 0x20));
  store(8, _mm256_permute2x128_si256(sum[2], sum[3], 0x20));
  if (stored == 32) {
    store(16, _mm256_permute2x128_si256(sum[0], sum[1], 0x31));
    store(24, _mm256_permute2x128_si256(sum[2], sum[3], 0x31));
  }
}

void quad_macs(const uint8_t* const* taps, int64_t quads, const int32_t* w, int64_t stride, int64_t padded,
               int32_t* acc) {
  for (int64_t c = 0; c < padded; c += 32) quad_block(taps, quads, w, stride, c, padded - c < 32 ? 16 : 32, acc);
}

// kVectors x 8 channels starting at c.
template <int kVectors>
inline void pair_block(const uint8_t* const* taps, int64_t pairs, const int32_t* w, int64_t stride, int64_t c,
                       int32_t* acc) {
  __m256i sum[kVectors];
  for (int v = 0; v < kVectors; ++v) sum[v] = _mm256_setzero_si256();
  for (int64_t p = 0; p < pairs; ++p) {
    const uint8_t *x0 = taps[2 * p] + c, *x1 = taps[2 * p + 1] + c;
    const int32_t* wp = w + p * stride + c;
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

void pair_macs(const uint8_t* const* taps, int64_t pairs, const int32_t* w, int64_t stride, int64_t padded,
               int32_t* acc) {
  int64_t c = 0;
  for (; c + 64 <= padded; c += 64) pair_block<8>(taps, pairs, w, stride, c, acc);
  switch ((padded - c) / 16) {  // padded is a multiple of 16
    case 3: return pair_block<6>(taps, pairs, w, stride, c, acc);
    case 2: return pair_block<4>(taps, pairs, w, stride, c, acc);
    case 1: return pair_block<2>(taps, pairs, w, stride, c, acc);
    default: return;
  }
}

}  // namespace

void depthwise_u8_avx2(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  if (args.weights->layout() == DepthwiseLayout::TapQuads)
    depthwise_rows<4, quad_macs, quantize_u8_avx2>(args, row_begin, row_end);
  else
    depthwise_rows<2, pair_macs, quantize_u8_avx2>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
