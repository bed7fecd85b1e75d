// AVX-512 VNNI path (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq
// -mavx512vnni; only called when CPUID reports them).
//
// Micro-kernel: up to 6 rows x 64 columns held in 24 zmm accumulators. Weights
// are packed [k/4][column][4 bytes] so one 64-byte load feeds 16 columns x 4 k;
// vpdpbusd multiplies u8 x s8 and adds the four products straight into int32,
// so nothing saturates. The activation zero point is removed afterwards with
// the column sums: sum (a - za) w = sum a w - za sum w.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/x86/avx512_epilogue.h"
#include "kernels/x86/row_chunks.h"

namespace qext::kernels::detail {

namespace {

constexpr int kRows = 6;

// acc[r][c] = sum over `segments` runs of `groups` k groups each (run s of
// row r at a[r] + offsets[s]), for MR rows x NB*16 columns of one block,
// stored to `out` (row stride 64). Nothing else touches the accumulators, so
// GCC keeps them in registers (it spills an array of vectors that later code
// indexes).
template <int MR, int NB>
void accumulate(const uint8_t* const* a, const int64_t* offsets, int64_t segments, const uint8_t* wb,
                int64_t groups, int32_t* out) {
  __m512i acc[MR][NB];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_setzero_si512();
  for (int64_t s = 0; s < segments; ++s, wb += groups * NB * 64) {
    const uint8_t* as[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) as[r] = a[r] + offsets[s];
    for (int64_t g = 0; g < groups; ++g) {
      __m512i b[NB];
#pragma GCC unroll 4
      for (int j = 0; j < NB; ++j) b[j] = _mm512_load_si512(wb + (g * NB + j) * 64);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512i av = _mm512_set1_epi32(load_u32(as[r] + 4 * g));
#pragma GCC unroll 4
        for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, b[j]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NB; ++j) _mm512_store_si512(out + r * 64 + j * 16, acc[r][j]);
}

// Adds the last, partial k group (k % 4 bytes per row) to `out`.
template <int MR, int NB>
void accumulate_tail(const uint8_t* const* a, int64_t tail, const uint8_t* wg, int32_t* out) {
  for (int r = 0; r < MR; ++r) {
    const __m512i av = _mm512_set1_epi32(load_partial_u32(a[r], tail));
    for (int j = 0; j < NB; ++j) {
      int32_t* o = out + r * 64 + j * 16;
      _mm512_store_si512(o, _mm512_dpbusd_epi32(_mm512_load_si512(o), av, _mm512_load_si512(wg + j * 64)));
    }
  }
}

// `quantize` is ep's uint8 requantization, set up once per qgemm call.
template <int MR, int NB>
void tile(const GemmArgs& args, const PackedWeights& w, const Epilogue& ep, const Quantizer16& quantize,
          int64_t m0, int64_t block, int64_t n0, int64_t ncols) {
  const uint8_t* a[MR];
  for (int r = 0; r < MR; ++r) a[r] = a_row(args, m0 + r).base;
  alignas(64) int32_t acc[MR * 64];
  static constexpr int64_t kNoOffset[1] = {0};
  if (args.a_rows && args.a_segment_offsets) {  // implicit im2col: runs are whole k groups
    const int64_t segments = args.a_segments;
    accumulate<MR, NB>(a, args.a_segment_offsets, segments, w.block(block), w.k() / 4 / segments, acc);
  } else {
    accumulate<MR, NB>(a, kNoOffset, 1, w.block(block), w.k() / 4, acc);
  }
  const int64_t full_groups = w.k() / 4, tail = w.k() % 4;
  if (tail) {  // (never with several runs: each is a multiple of 4)
    const uint8_t* a_tail[MR];
    for (int r = 0; r < MR; ++r) a_tail[r] = a[r] + 4 * full_groups;
    accumulate_tail<MR, NB>(a_tail, tail, w.block(block) + full_groups * NB * 64, acc);
  }

  store_rows(args, w, ep, quantize, m0, MR, n0, ncols, acc, 64);
}

using TileFn = void (*)(const GemmArgs&, const PackedWeights&, const Epilogue&, const Quantizer16&,
                        int64_t, int64_t, int64_t, int64_t);

template <int MR>
constexpr TileFn tile_for_cols(int nb) {
  return nb == 1 ? tile<MR, 1> : nb == 2 ? tile<MR, 2> : nb == 3 ? tile<MR, 3> : tile<MR, 4>;
}

TileFn tile_for(int rows, int nb) {
  switch (rows) {
    case 1: return tile_for_cols<1>(nb);
    case 2: return tile_for_cols<2>(nb);
    case 3: return tile_for_cols<3>(nb);
    case 4: return tile_for_cols<4>(nb);
    case 5: return tile_for_cols<5>(nb);
    default: return tile_for_cols<6>(nb);
  }
}

}  // namespace

void qgemm_avx512_vnni(const GemmArgs& args, const PackedWeights& w, const Epilogue& ep,
                       int64_t m_begin, int64_t m_end, int64_t block_begin, int64_t block_end) {
  const int64_t bc = w.layout().block_cols;
  const Quantizer16 quantize(ep.out_scale, ep.out_zero_point, 0, 255, ep.clamp_min, ep.clamp_max);
  // Rows in L2-sized chunks (row_chunk); inside a chunk, one block's weights
  // stay in L1/L2 while the chunk's row tiles use them.
  const int64_t chunk = row_chunk(m_end - m_begin, w.k(), kRows);
  for (int64_t c0 = m_begin; c0 < m_end; c0 += chunk) {
    const int64_t c1 = std::min(m_end, c0 + chunk);
    for (int64_t b = block_begin; b < block_end; ++b) {
      const int64_t n0 = b * bc, ncols = std::min(bc, w.n() - n0);
      const int nb = static_cast<int>((ncols + kVecCols - 1) / kVecCols);
      for (int64_t m0 = c0; m0 < c1; m0 += kRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kRows, c1 - m0));
        tile_for(rows, nb)(args, w, ep, quantize, m0, b, n0, ncols);
      }
    }
  }
}

namespace {

// The careful pass: skips NaN/inf lane by lane (one masked chain, slow).
bool finite_min_max_skipping(const float* x, int64_t n, float* min_out, float* max_out) {
  const float inf = std::numeric_limits<float>::infinity();
  __m512 lo = _mm512_set1_ps(inf), hi = _mm512_set1_ps(-inf);
  __mmask16 bad = 0;
  for (int64_t i = 0; i < n; i += kVecCols) {
    const __mmask16 mask = lanes_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
    // v - v is 0 for finite values and NaN for NaN and +-inf.
    const __mmask16 finite =
        _mm512_mask_cmp_ps_mask(mask, _mm512_sub_ps(v, v), _mm512_setzero_ps(), _CMP_EQ_OQ);
    bad |= static_cast<__mmask16>(mask & ~finite);
    lo = _mm512_mask_min_ps(lo, finite, lo, v);
    hi = _mm512_mask_max_ps(hi, finite, hi, v);
  }
  float l = _mm512_reduce_min_ps(lo), h = _mm512_reduce_max_ps(hi);
  if (l > h) l = h = 0.0f;
  *min_out = l;
  *max_out = h;
  return bad == 0;
}

}  // namespace

// Rows are finite nearly always: four independent min/max chains and an OR of
// v - v (0 when finite, NaN bits otherwise) run at load speed; a row with any
// NaN/inf is redone by the careful pass.
bool finite_min_max_avx512_vnni(const float* x, int64_t n, float* min_out, float* max_out) {
  constexpr int64_t kStep = 4 * kVecCols;
  if (n < kStep) return finite_min_max_skipping(x, n, min_out, max_out);
  __m512 lo[4], hi[4];
  __m512i bad = _mm512_setzero_si512();
  for (int j = 0; j < 4; ++j) lo[j] = hi[j] = _mm512_loadu_ps(x + j * kVecCols);
  int64_t i = 0;
  for (; i + kStep <= n; i += kStep) {
    for (int j = 0; j < 4; ++j) {
      const __m512 v = _mm512_loadu_ps(x + i + j * kVecCols);
      bad = _mm512_or_si512(bad, _mm512_castps_si512(_mm512_sub_ps(v, v)));
      lo[j] = _mm512_min_ps(lo[j], v);
      hi[j] = _mm512_max_ps(hi[j], v);
    }
  }
  for (; i < n; i += kVecCols) {
    const __mmask16 mask = lanes_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
    bad = _mm512_or_si512(bad, _mm512_castps_si512(_mm512_sub_ps(v, v)));  // masked lanes are 0
    lo[0] = _mm512_mask_min_ps(lo[0], mask, lo[0], v);
    hi[0] = _mm512_mask_max_ps(hi[0], mask, hi[0], v);
  }
  if (_mm512_test_epi32_mask(bad, bad) != 0) return finite_min_max_skipping(x, n, min_out, max_out);
  *min_out = _mm512_reduce_min_ps(_mm512_min_ps(_mm512_min_ps(lo[0], lo[1]), _mm512_min_ps(lo[2], lo[3])));
  *max_out = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(hi[0], hi[1]), _mm512_max_ps(hi[2], hi[3])));
  return true;
}

void quantize_u8_avx512_vnni(const float* x, int64_t n, float scale, int32_t zero_point,
                             int32_t qmin, int32_t qmax, uint8_t* q) {
  const Quantizer16 quantize(scale, zero_point, qmin, qmax);
  for (int64_t i = 0; i < n; i += kVecCols) {
    const __mmask16 mask = lanes_mask(n - i);
    store_u8x16(q + i, mask, quantize(_mm512_maskz_loadu_ps(mask, x + i)));
  }
}

void add_requant_u8_avx512_vnni(const uint8_t* a, float sa, int32_t za, const uint8_t* b, float sb,
                                int32_t zb, int64_t n, float so, int32_t zo, bool relu, uint8_t* out) {
  const __m512 vsa = _mm512_set1_ps(sa), vsb = _mm512_set1_ps(sb);
  const __m512i vza = _mm512_set1_epi32(za), vzb = _mm512_set1_epi32(zb);
  // ReLU is the quantizer's lower clamp (NaN -> 0, as the reference's v > lo ? v : lo).
  const Quantizer16 quantize(so, zo, 0, 255, relu ? 0.0f : -std::numeric_limits<float>::infinity());
  const auto requant16 = [&](__m128i a16, __m128i b16) {
    const __m512i ai = _mm512_cvtepu8_epi32(a16), bi = _mm512_cvtepu8_epi32(b16);
    return quantize(_mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(ai, vza)), vsa),
                                  _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(bi, vzb)), vsb)));
  };
  const auto load16 = [](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    store_u8x64(out + i, requant16(load16(a + i), load16(b + i)), requant16(load16(a + i + 16), load16(b + i + 16)),
                requant16(load16(a + i + 32), load16(b + i + 32)), requant16(load16(a + i + 48), load16(b + i + 48)));
  }
  for (; i < n; i += kVecCols) {
    const __mmask16 mask = lanes_mask(n - i);
    store_u8x16(out + i, mask, requant16(_mm_maskz_loadu_epi8(mask, a + i), _mm_maskz_loadu_epi8(mask, b + i)));
  }
}

}  // namespace qext::kernels::detail
