// What the ColumnQuads walks on 256-bit vectors share (AVX2's, and the
// AVX-512 path's half-width one for a last block of at most 32 channels):
// interleaving four image rows' bytes, and putting the sums back in channel
// order. Internal linkage, like avx512_epilogue.h: each ISA file compiles its
// own copy with its own flags.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace qext::kernels::detail {

namespace {

// 4 rows' bytes -> out[k]: in 128-bit lane l, channels 16l+4k..16l+4k+3,
// the 4 rows' bytes of each (byte, then word unpacks).
inline void interleave_quads_256(const __m256i* x, __m256i* out) {
  const __m256i lo01 = _mm256_unpacklo_epi8(x[0], x[1]), hi01 = _mm256_unpackhi_epi8(x[0], x[1]);
  const __m256i lo23 = _mm256_unpacklo_epi8(x[2], x[3]), hi23 = _mm256_unpackhi_epi8(x[2], x[3]);
  _mm256_store_si256(out + 0, _mm256_unpacklo_epi16(lo01, lo23));
  _mm256_store_si256(out + 1, _mm256_unpackhi_epi16(lo01, lo23));
  _mm256_store_si256(out + 2, _mm256_unpacklo_epi16(hi01, hi23));
  _mm256_store_si256(out + 3, _mm256_unpackhi_epi16(hi01, hi23));
}

// sum[k] holds channels 4k..4k+3 in its low 128-bit lane and 16+4k..16+4k+3
// in its high one: channels 0-15 are the low lanes in order, 16-31 the high.
inline void store_quad_sums_256(const __m256i* sum, int64_t stored, int32_t* out) {
  auto store = [&](int64_t at, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + at), v); };
  store(0, _mm256_permute2x128_si256(sum[0], sum[1], 0x20));
  store(8, _mm256_permute2x128_si256(sum[2], sum[3], 0x20));
  if (stored > 16) {
    store(16, _mm256_permute2x128_si256(sum[0], sum[1], 0x31));
    store(24, _mm256_permute2x128_si256(sum[2], sum[3], 0x31));
  }
}

}  // namespace

}  // namespace qext::kernels::detail
