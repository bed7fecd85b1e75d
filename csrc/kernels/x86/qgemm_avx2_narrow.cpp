// AVX2 path for weights packed as bytes (PackedWeights::bytes()): narrow
// weights, every |w| <= 64 as 7-bit weights are, or any int8 weights packed
// for 7-bit activations (compiled with -mavx2 -mfma; only called when CPUID
// reports them).
//
// vpmaddubsw multiplies u8 activations by s8 weights and sums each pair into
// int16, saturating. A pair sum is exact when it cannot pass 32767: with
// |w| <= 64 it is at most 255 * 64 * 2 = 32640, and with activations <= 127
// (GemmArgs::a_max) at most 127 * 128 * 2 = 32512 for any int8 weight. Then
// the result is bit for bit what the other paths compute. vpmaddwd by ones
// adds the two pairs of a 4-k group into int32 -- vpdpbusd in two
// instructions plus an add, on the VNNI layout ([k/4][column][4 bytes], 8
// columns per vector). Against the int16 path (qgemm_avx2.cpp) neither
// operand is widened, and 32 multiply-adds take one add instead of two.
//
// Which chain a call takes (Chain):
//   Paired -- narrow weights and activations <= 127: 4 products of at most
//     127 * 64 sum to 32512, so two vpmaddubsw results are added with vpaddw
//     before the one vpmaddwd widening -- 5 instructions per 64 multiply-adds
//     instead of 6, and still exact;
//   Pairs  -- narrow weights, or activations <= 127: one group per widening;
//   Split  -- full-range weights with activations up to 255 (a call the
//     packing was not made for): each byte a = 128 * (a >> 7) + (a & 127),
//     both parts multiplied exactly and recombined in int32. Twice the
//     multiplies, the same integers.
//
// Micro-kernel: up to 4 rows x 24 columns in 12 ymm accumulators (3 rows when
// paired: two broadcasts and two products more are live, and 16 registers do
// not hold 4 rows without spilling accumulators; 1 when split, which keeps two
// accumulators per column vector); rows are read in place (4-byte
// broadcasts), like the VNNI kernel.
#include <immintrin.h>

#include <algorithm>

#include "kernels/x86/avx2_epilogue.h"
#include "kernels/x86/output_prefetch.h"
#include "kernels/x86/row_chunks.h"

namespace qext::kernels::detail {

namespace {

enum class Chain { Pairs, Paired, Split };

constexpr int kRows = 4, kPairedRows = 3, kSplitRows = 1;
constexpr int64_t kVecBytes = 32;

// vpdpbusd's sum for 8 columns: acc + sum over the 4 bytes of each lane of
// a x w, exact because every pair sum fits int16.
inline __m256i dot4(__m256i acc, __m256i a, const uint8_t* w, __m256i ones) {
  const __m256i pairs = _mm256_maddubs_epi16(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(w)));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
}

// Two consecutive k groups (a0 with w, a1 with w + 1 group), exact when every
// a <= 127: the int16 sums of 4 products stay within 4 * 127 * 64.
inline __m256i dot8(__m256i acc, __m256i a0, __m256i a1, const uint8_t* w, int64_t group_stride, __m256i ones) {
  const __m256i p0 = _mm256_maddubs_epi16(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(w)));
  const __m256i p1 = _mm256_maddubs_epi16(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(w + group_stride)));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_add_epi16(p0, p1), ones));
}

// One k group of one row into its NB column vectors: `low` gathers a x w
// (Split: (a & 127) x w) and, for Split only, `top` gathers (a >> 7) x w.
template <int NB, Chain C>
inline void group(__m256i* low, __m256i* top, __m256i a, const uint8_t* wg, __m256i ones) {
  if constexpr (C == Chain::Split) {
    const __m256i lo = _mm256_and_si256(a, _mm256_set1_epi8(0x7f));
    // each byte's top bit shifted to bit 0 of the same byte; the bits that
    // crossed in from the next byte are masked off
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi32(a, 7), _mm256_set1_epi8(1));
#pragma GCC unroll 3
    for (int j = 0; j < NB; ++j) {
      low[j] = dot4(low[j], lo, wg + j * kVecBytes, ones);
      top[j] = dot4(top[j], hi, wg + j * kVecBytes, ones);
    }
  } else {
#pragma GCC unroll 3
    for (int j = 0; j < NB; ++j) low[j] = dot4(low[j], a, wg + j * kVecBytes, ones);
  }
}

// acc[r][c] = sum over `segments` runs of `groups` k groups each (run s of row
// r at a[r] + offsets[s]) for MR rows x NB*8 columns of one block; the tail
// (k % 4 bytes, single run only) is read without passing the row's end.
// Stored to `out` with row stride kBlockCols.
template <int MR, int NB, Chain C>
void accumulate(const uint8_t* const* a, const int64_t* offsets, int64_t segments, const uint8_t* wb,
                int64_t groups, int64_t tail, int32_t* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[MR][NB], top[MR][NB];  // top: Split only (otherwise never read, and dropped)
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 3
    for (int j = 0; j < NB; ++j) acc[r][j] = top[r][j] = _mm256_setzero_si256();
  for (int64_t s = 0; s < segments; ++s, wb += groups * NB * kVecBytes) {
    const uint8_t* as[MR];
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) as[r] = a[r] + offsets[s];
    int64_t g = 0;
    if constexpr (C == Chain::Paired) {
      constexpr int64_t kGroupStride = NB * kVecBytes;
      for (; g + 1 < groups; g += 2) {
        const uint8_t* wg = wb + g * kGroupStride;
#pragma GCC unroll 4
        for (int r = 0; r < MR; ++r) {
          const __m256i a0 = _mm256_set1_epi32(load_u32(as[r] + 4 * g));
          const __m256i a1 = _mm256_set1_epi32(load_u32(as[r] + 4 * g + 4));
#pragma GCC unroll 3
          for (int j = 0; j < NB; ++j) acc[r][j] = dot8(acc[r][j], a0, a1, wg + j * kVecBytes, kGroupStride, ones);
        }
      }
    }
    for (; g < groups; ++g) {
      const uint8_t* wg = wb + g * NB * kVecBytes;
#pragma GCC unroll 4
      for (int r = 0; r < MR; ++r)
        group<NB, C>(acc[r], top[r], _mm256_set1_epi32(load_u32(as[r] + 4 * g)), wg, ones);
    }
  }
  if (tail) {
    // (one run only: wb now points at the group after the last whole one)
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const __m256i av = _mm256_set1_epi32(load_partial_u32(a[r] + offsets[0] + 4 * groups, tail));
      group<NB, C == Chain::Paired ? Chain::Pairs : C>(acc[r], top[r], av, wb, ones);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 3
    for (int j = 0; j < NB; ++j) {
      // Split: low + 128 * top, the exact sum (within int32 for K <= kMaxGemmK)
      if constexpr (C == Chain::Split) acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_slli_epi32(top[r][j], 7));
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + r * kBlockCols + j * kVecCols), acc[r][j]);
    }
}

using AccumulateFn = void (*)(const uint8_t* const*, const int64_t*, int64_t, const uint8_t*, int64_t, int64_t,
                              int32_t*);

template <int MR, Chain C>
constexpr AccumulateFn accumulate_for_cols(int nb) {
  return nb == 1 ? accumulate<MR, 1, C> : nb == 2 ? accumulate<MR, 2, C> : accumulate<MR, 3, C>;
}

AccumulateFn accumulate_for(Chain chain, int rows, int nb) {
  if (chain == Chain::Split) return accumulate_for_cols<kSplitRows, Chain::Split>(nb);
  if (chain == Chain::Paired) {
    switch (rows) {
      case 1: return accumulate_for_cols<1, Chain::Paired>(nb);
      case 2: return accumulate_for_cols<2, Chain::Paired>(nb);
      default: return accumulate_for_cols<kPairedRows, Chain::Paired>(nb);
    }
  }
  switch (rows) {
    case 1: return accumulate_for_cols<1, Chain::Pairs>(nb);
    case 2: return accumulate_for_cols<2, Chain::Pairs>(nb);
    case 3: return accumulate_for_cols<3, Chain::Pairs>(nb);
    default: return accumulate_for_cols<kRows, Chain::Pairs>(nb);
  }
}

// The exact chain for these weights and activations (see the top of the file).
Chain chain_for(const PackedWeights& w, uint8_t a_max) {
  const bool small_a = a_max <= kPairedActivationMax;
  if (w.narrow()) return small_a ? Chain::Paired : Chain::Pairs;
  return small_a ? Chain::Pairs : Chain::Split;
}

}  // namespace

void qgemm_avx2_narrow(const GemmArgs& args, const PackedWeights& w, const Epilogue& ep,
                       int64_t m_begin, int64_t m_end, int64_t block_begin, int64_t block_end) {
  if (m_begin >= m_end) return;
  const Quantizer8 quantize(ep.out_scale, ep.out_zero_point, 0, 255, ep.clamp_min, ep.clamp_max);
  static constexpr int64_t kNoOffset[1] = {0};
  const bool runs = args.a_rows && args.a_segment_offsets;  // implicit im2col: runs are whole k groups
  const int64_t segments = runs ? args.a_segments : 1;
  const int64_t* offsets = runs ? args.a_segment_offsets : kNoOffset;
  const int64_t groups = w.k() / 4 / segments, tail = w.k() % 4;
  const Chain chain = chain_for(w, args.a_max);
  const int tile_rows = chain == Chain::Paired ? kPairedRows : chain == Chain::Split ? kSplitRows : kRows;
  const int64_t chunk = row_chunk(m_end - m_begin, w.k(), tile_rows);  // L2-sized
  alignas(32) int32_t acc[kRows * kBlockCols];
  const bool prefetch = prefetch_pays(ep, m_end - m_begin, (block_end - block_begin) * kBlockCols);
  for (int64_t c0 = m_begin; c0 < m_end; c0 += chunk) {
    const int64_t c1 = std::min(m_end, c0 + chunk);
    for (int64_t b = block_begin; b < block_end; ++b) {
      const int64_t n0 = b * kBlockCols, ncols = std::min<int64_t>(kBlockCols, w.n() - n0);
      const int nb = static_cast<int>((ncols + kVecCols - 1) / kVecCols);
      BlockColumns cols(w, ep, n0, ncols);
      if (prefetch) prefetch_output_rows(args, ep, c0, std::min(c1, c0 + tile_rows), n0, ncols);
      for (int64_t m0 = c0; m0 < c1; m0 += tile_rows) {
        const int rows = static_cast<int>(std::min<int64_t>(tile_rows, c1 - m0));
        // the next tile's output lines, while this one multiplies
        if (prefetch)
          prefetch_output_rows(args, ep, std::min(c1, m0 + tile_rows), std::min(c1, m0 + 2 * tile_rows), n0, ncols);
        const uint8_t* a[kRows];
        for (int r = 0; r < rows; ++r) a[r] = a_row(args, m0 + r).base;
        accumulate_for(chain, rows, nb)(a, offsets, segments, w.block(b), groups, tail, acc);
        finish_rows(args, ep, quantize, cols, acc, rows, m0, n0, ncols);
      }
    }
  }
}

}  // namespace qext::kernels::detail
