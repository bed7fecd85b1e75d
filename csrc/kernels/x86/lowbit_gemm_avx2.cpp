// AVX2 path of lowbit_gemm: a block's 16 columns in two ymm of int32 lanes, up
// to 4 rows per pass sharing each unpacked step. The kernel multiplies codes
// (0..15; the offset to the levels is corrected once per group), small enough
// to make vpmaddubsw exact (|pair sum| <= 2 * 255 * 15 < 2^15), so a step is
// vpmaddubsw + vpmaddwd by ones per half, no widening of the activations.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/isa_paths.h"

namespace qext::kernels::detail {

namespace {

constexpr int kRowsAvx2 = 4;

// Shift of dword d of half h (columns 8h .. 8h + 7): its bytes t = 32h + 4d ..
// hold codes at bit (t / (8 * BITS)) * BITS.
template <int BITS>
__m256i lowbit_shifts_avx2(int half) {
  alignas(32) int32_t s[8];
  for (int d = 0; d < 8; ++d) s[d] = ((32 * half + 4 * d) / (8 * BITS)) * BITS;
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(s));
}

// The step's bytes repeated to fill a ymm (a 4-bit step is exactly 32 bytes).
template <int BITS>
__m256i broadcast_step_avx2(const uint8_t* p) {
  if constexpr (BITS == 4) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (BITS == 2) return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  int64_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi64x(v);
}

template <int BITS>
__m256i codes_avx2(__m256i x, __m256i shifts) {
  return _mm256_and_si256(_mm256_srlv_epi32(x, shifts), _mm256_set1_epi8((1 << BITS) - 1));
}

template <int BITS, int MR>
void lowbit_tile_avx2(const LowBitGemmArgs& args, const LowBitWeights& w, const int32_t* row_sums, int64_t m0,
                      int64_t b) {
  const __m256i shift_lo = lowbit_shifts_avx2<BITS>(0), shift_hi = lowbit_shifts_avx2<BITS>(1);
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t steps_per_group = w.group_size() / 4, k_steps = w.k_padded() / 4, nbytes = 8 * BITS;
  const uint8_t* codes = w.block(b);
  const float* scales = w.block_scales(b);
  const int32_t* sums = w.block_code_sums(b);
  const uint8_t* a[MR];
  __m256 sum[MR][2];
  for (int r = 0; r < MR; ++r) {
    a[r] = args.a + (m0 + r) * args.lda;
    sum[r][0] = sum[r][1] = _mm256_setzero_ps();
  }
  for (int64_t g = 0; g < w.groups(); ++g) {
    __m256i acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    const int64_t s1 = std::min(k_steps, (g + 1) * steps_per_group);
    for (int64_t s = g * steps_per_group; s < s1; ++s) {
      const __m256i x = broadcast_step_avx2<BITS>(codes + s * nbytes);
      const __m256i lo = codes_avx2<BITS>(x, shift_lo), hi = codes_avx2<BITS>(x, shift_hi);
      for (int r = 0; r < MR; ++r) {
        int32_t a4;
        std::memcpy(&a4, a[r] + 4 * s, sizeof a4);
        const __m256i av = _mm256_set1_epi32(a4);
        acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(av, lo), ones));
        acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(av, hi), ones));
      }
    }
    for (int h = 0; h < 2; ++h) {
      const __m256i gs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sums + g * kLowBitBlockCols + 8 * h));
      const __m256 sc = _mm256_loadu_ps(scales + g * kLowBitBlockCols + 8 * h);
      for (int r = 0; r < MR; ++r) {
        // sum (a - za) * (mult * code - off) = mult * (sum a * code - za * code_sum) - off * (row_sum - za * len)
        const int32_t za = args.a_zero_point[m0 + r];
        __m256i exact = _mm256_sub_epi32(acc[r][h], _mm256_mullo_epi32(_mm256_set1_epi32(za), gs));
        if constexpr (BITS == 1) exact = _mm256_add_epi32(exact, exact);
        exact = _mm256_sub_epi32(exact, _mm256_set1_epi32(lowbit_code_offset(BITS) *
                                                          (row_sums[(m0 + r) * w.groups() + g] - za * static_cast<int32_t>(w.group_len(g)))));
        sum[r][h] = _mm256_add_ps(sum[r][h], _mm256_mul_ps(_mm256_cvtepi32_ps(exact), sc));
      }
    }
  }
  const int64_t n0 = b * kLowBitBlockCols;
  for (int h = 0; h < 2; ++h) {
    const int64_t lanes = std::min<int64_t>(8, w.n() - n0 - 8 * h);
    if (lanes <= 0) break;
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(lanes)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256 bias = args.bias ? _mm256_maskload_ps(args.bias + n0 + 8 * h, mask) : _mm256_setzero_ps();
    for (int r = 0; r < MR; ++r) {
      __m256 y = _mm256_mul_ps(sum[r][h], _mm256_set1_ps(args.row_scale[m0 + r]));
      if (args.bias) y = _mm256_add_ps(y, bias);
      y = _mm256_min_ps(_mm256_max_ps(y, _mm256_set1_ps(args.clamp_min)), _mm256_set1_ps(args.clamp_max));
      _mm256_maskstore_ps(args.c + (m0 + r) * args.ldc + n0 + 8 * h, mask, y);
    }
  }
}

template <int BITS>
void lowbit_rows_avx2(const LowBitGemmArgs& args, const LowBitWeights& w, const int32_t* row_sums, int64_t m_begin,
                      int64_t m_end, int64_t block_begin, int64_t block_end) {
  const int32_t* sums = row_sums - m_begin * w.groups();  // indexed by absolute row
  for (int64_t b = block_begin; b < block_end; ++b) {
    int64_t m = m_begin;
    for (; m + kRowsAvx2 <= m_end; m += kRowsAvx2) lowbit_tile_avx2<BITS, kRowsAvx2>(args, w, sums, m, b);
    for (; m < m_end; ++m) lowbit_tile_avx2<BITS, 1>(args, w, sums, m, b);
  }
}

}  // namespace

void lowbit_gemm_avx2(const LowBitGemmArgs& args, const LowBitWeights& w, const int32_t* row_sums, int64_t m_begin,
                      int64_t m_end, int64_t block_begin, int64_t block_end) {
  switch (w.bits()) {
    case 4: return lowbit_rows_avx2<4>(args, w, row_sums, m_begin, m_end, block_begin, block_end);
    case 2: return lowbit_rows_avx2<2>(args, w, row_sums, m_begin, m_end, block_begin, block_end);
    default: return lowbit_rows_avx2<1>(args, w, row_sums, m_begin, m_end, block_begin, block_end);
  }
}

}  // namespace qext::kernels::detail
