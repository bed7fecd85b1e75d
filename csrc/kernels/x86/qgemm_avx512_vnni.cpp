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

// `quantize` is ep's uint8 requantization and `columns` the epilogue's
// per-block constants, both kept across the call's tiles.
template <int MR, int NB>
void tile(const GemmArgs& args, const PackedWeights& w, const Epilogue& ep, const Quantizer16& quantize,
          SharedU8Columns& columns, int64_t m0, int64_t block, int64_t n0, int64_t ncols) {
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

  store_rows(args, w, ep, quantize, m0, MR, n0, ncols, acc, 64, &columns);
}

using TileFn = void (*)(const GemmArgs&, const PackedWeights&, const Epilogue&, const Quantizer16&,
                        SharedU8Columns&, int64_t, int64_t, int64_t, int64_t);

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
  SharedU8Columns columns;
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
        tile_for(rows, nb)(args, w, ep, quantize, columns, m0, b, n0, ncols);
      }
    }
  }
}

}  // namespace qext::kernels::detail
