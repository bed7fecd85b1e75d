// AVX-512 VNNI path of lowbit_gemm: two blocks of 16 columns in zmm lanes and
// up to 8 rows per pass, sharing each unpacked step and each broadcast. A step (16 columns x 4 k) unpacks with one
// broadcast of its 8 * BITS bytes, one vpsrlvd and one mask into 64 codes
// (0..15); vpdpbusd multiplies them with the rows' uint8 activations exactly,
// and the codes' offset from the levels is corrected once per group.
// With fewer than 4 rows, each row sums into 4 / MR accumulators taken in turn
// (vpdpbusd's latency would otherwise bound the decode case, M = 1).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/isa_paths.h"

namespace qext::kernels::detail {

namespace {

constexpr int kRowsVnni = 8;

// Shift of dword d: its bytes t = 4d .. 4d + 3 hold codes at bit (t / (8 * BITS)) * BITS.
template <int BITS>
__m512i lowbit_shifts_vnni() {
  alignas(64) int32_t s[16];
  for (int d = 0; d < 16; ++d) s[d] = (4 * d / (8 * BITS)) * BITS;
  return _mm512_load_si512(s);
}

template <int BITS>
__m512i unpack_step_vnni(const uint8_t* p, __m512i shifts) {
  __m512i x;
  if constexpr (BITS == 4) {
    x = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  } else if constexpr (BITS == 2) {
    x = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    int64_t v;
    std::memcpy(&v, p, sizeof v);
    x = _mm512_set1_epi64(v);
  }
  return _mm512_and_si512(_mm512_srlv_epi32(x, shifts), _mm512_set1_epi8((1 << BITS) - 1));
}

// Four activation bytes in every dword lane.
inline __m512i broadcast_a4_vnni(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// sum over steps [s0, s1) of a * code for MR rows and NB blocks of 16
// columns (codes[j]: block j), stored to out[NB][MR][16]. Each unpacked step
// feeds MR rows, each broadcast NB blocks. With fewer than 4 accumulators the
// rows sum into several in turn, so vpdpbusd's latency does not bound the loop.
template <int BITS, int MR, int NB>
void accumulate_group_vnni(const uint8_t* const* a, const uint8_t* const* codes, int64_t s0, int64_t s1,
                           __m512i shifts, int32_t* out) {
  constexpr int kChains = MR * NB >= 4 ? 1 : 4 / (MR * NB);
  constexpr int64_t nbytes = 8 * BITS;
  __m512i acc[NB][MR][kChains];
#pragma GCC unroll 2
  for (int j = 0; j < NB; ++j)
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int u = 0; u < kChains; ++u) acc[j][r][u] = _mm512_setzero_si512();
  auto step = [&](int64_t s, int u) __attribute__((always_inline)) {
    __m512i lv[NB];
#pragma GCC unroll 2
    for (int j = 0; j < NB; ++j) lv[j] = unpack_step_vnni<BITS>(codes[j] + s * nbytes, shifts);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512i av = broadcast_a4_vnni(a[r] + 4 * s);
#pragma GCC unroll 2
      for (int j = 0; j < NB; ++j) acc[j][r][u] = _mm512_dpbusd_epi32(acc[j][r][u], av, lv[j]);
    }
  };
  int64_t s = s0;
  for (; s + kChains <= s1; s += kChains) {
#pragma GCC unroll 4
    for (int u = 0; u < kChains; ++u) step(s + u, u);
  }
  for (; s < s1; ++s) step(s, 0);
#pragma GCC unroll 2
  for (int j = 0; j < NB; ++j)
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
      for (int u = 1; u < kChains; ++u) acc[j][r][0] = _mm512_add_epi32(acc[j][r][0], acc[j][r][u]);
      _mm512_store_si512(out + (j * MR + r) * kLowBitBlockCols, acc[j][r][0]);
    }
}

// Rows [m0, m0 + MR) of blocks [b, b + NB).
template <int BITS, int MR, int NB>
void lowbit_tile_vnni(const LowBitGemmArgs& args, const LowBitWeights& w, const int32_t* row_sums, int64_t m0,
                      int64_t b) {
  const __m512i shifts = lowbit_shifts_vnni<BITS>();
  const int64_t steps_per_group = w.group_size() / 4, k_steps = w.k_padded() / 4;
  const uint8_t* codes[NB];
  for (int j = 0; j < NB; ++j) codes[j] = w.block(b + j);
  const uint8_t* a[MR];
  __m512 sum[NB][MR];
  for (int r = 0; r < MR; ++r) {
    a[r] = args.a + (m0 + r) * args.lda;
    for (int j = 0; j < NB; ++j) sum[j][r] = _mm512_setzero_ps();
  }
  alignas(64) int32_t group_acc[NB * MR * kLowBitBlockCols];
  for (int64_t g = 0; g < w.groups(); ++g) {
    const int64_t s0 = g * steps_per_group, s1 = std::min(k_steps, (g + 1) * steps_per_group);
    accumulate_group_vnni<BITS, MR, NB>(a, codes, s0, s1, shifts, group_acc);
    for (int j = 0; j < NB; ++j) {
      const __m512i gs = _mm512_loadu_si512(w.block_code_sums(b + j) + g * kLowBitBlockCols);
      const __m512 sc = _mm512_loadu_ps(w.block_scales(b + j) + g * kLowBitBlockCols);
      for (int r = 0; r < MR; ++r) {
        // sum (a - za) * (mult * code - off) = mult * (sum a * code - za * code_sum) - off * (row_sum - za * len)
        const int32_t za = args.a_zero_point[m0 + r];
        __m512i exact = _mm512_sub_epi32(_mm512_load_si512(group_acc + (j * MR + r) * kLowBitBlockCols),
                                         _mm512_mullo_epi32(_mm512_set1_epi32(za), gs));
        if constexpr (BITS == 1) exact = _mm512_add_epi32(exact, exact);
        exact = _mm512_sub_epi32(exact, _mm512_set1_epi32(lowbit_code_offset(BITS) *
                                                          (row_sums[(m0 + r) * w.groups() + g] - za * static_cast<int32_t>(w.group_len(g)))));
        sum[j][r] = _mm512_add_ps(sum[j][r], _mm512_mul_ps(_mm512_cvtepi32_ps(exact), sc));
      }
    }
  }
  for (int j = 0; j < NB; ++j) {
    const int64_t n0 = (b + j) * kLowBitBlockCols, lanes = std::min<int64_t>(kLowBitBlockCols, w.n() - n0);
    const __mmask16 mask = static_cast<__mmask16>((1u << lanes) - 1);
    const __m512 bias = args.bias ? _mm512_maskz_loadu_ps(mask, args.bias + n0) : _mm512_setzero_ps();
    for (int r = 0; r < MR; ++r) {
      __m512 y = _mm512_mul_ps(sum[j][r], _mm512_set1_ps(args.row_scale[m0 + r]));
      if (args.bias) y = _mm512_add_ps(y, bias);
      y = _mm512_min_ps(_mm512_max_ps(y, _mm512_set1_ps(args.clamp_min)), _mm512_set1_ps(args.clamp_max));
      _mm512_mask_storeu_ps(args.c + (m0 + r) * args.ldc + n0, mask, y);
    }
  }
}

template <int BITS, int NB>
void lowbit_blocks_vnni(const LowBitGemmArgs& args, const LowBitWeights& w, const int32_t* sums, int64_t m_begin,
                        int64_t m_end, int64_t b) {
  int64_t m = m_begin;
  for (; m + kRowsVnni <= m_end; m += kRowsVnni) lowbit_tile_vnni<BITS, kRowsVnni, NB>(args, w, sums, m, b);
  for (; m + 4 <= m_end; m += 4) lowbit_tile_vnni<BITS, 4, NB>(args, w, sums, m, b);
  for (; m + 2 <= m_end; m += 2) lowbit_tile_vnni<BITS, 2, NB>(args, w, sums, m, b);
  for (; m < m_end; ++m) lowbit_tile_vnni<BITS, 1, NB>(args, w, sums, m, b);
}

template <int BITS>
void lowbit_rows_vnni(const LowBitGemmArgs& args, const LowBitWeights& w, const int32_t* row_sums, int64_t m_begin,
                      int64_t m_end, int64_t block_begin, int64_t block_end) {
  const int32_t* sums = row_sums - m_begin * w.groups();  // indexed by absolute row
  int64_t b = block_begin;
  for (; b + 2 <= block_end; b += 2) lowbit_blocks_vnni<BITS, 2>(args, w, sums, m_begin, m_end, b);
  for (; b < block_end; ++b) lowbit_blocks_vnni<BITS, 1>(args, w, sums, m_begin, m_end, b);
}

}  // namespace

void lowbit_gemm_avx512_vnni(const LowBitGemmArgs& args, const LowBitWeights& w, const int32_t* row_sums,
                             int64_t m_begin, int64_t m_end, int64_t block_begin, int64_t block_end) {
  switch (w.bits()) {
    case 4: return lowbit_rows_vnni<4>(args, w, row_sums, m_begin, m_end, block_begin, block_end);
    case 2: return lowbit_rows_vnni<2>(args, w, row_sums, m_begin, m_end, block_begin, block_end);
    default: return lowbit_rows_vnni<1>(args, w, row_sums, m_begin, m_end, block_begin, block_end);
  }
}

}  // namespace qext::kernels::detail
