// AVX2 path (compiled with -mavx2 -mfma; only called when CPUID reports them).
//
// vpmaddubsw (u8 x s8 pairs summed into int16) saturates: 255*127 + 255*127 does
// not fit int16, a known source of wrong answers. This path widens both operands
// to int16 instead and uses vpmaddwd, whose int16 x int16 pair sums are exact
// in int32. Weights stay int8 in memory (packed [k/2][column][2 x int8]), so a
// call moves as few weight bytes as an int8 kernel does:
//   - few rows (the decode / small-batch case, bound by weight bandwidth):
//     each 16-byte weight load is sign-extended in a register;
//   - more rows: a chunk of the block's weights is widened once into an
//     L1-sized int16 panel and reused by every row tile.
// Activations are widened once per block of rows.
//
// Micro-kernel: up to 4 rows x 24 columns in 12 ymm accumulators.
// Weights packed as bytes (narrow ones, |w| <= 64, e.g. 7-bit; or any packed
// for 7-bit activations) go to qgemm_avx2_narrow.cpp, where vpmaddubsw is
// exact.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>

#include "kernels/aligned_buffer.h"
#include "kernels/x86/avx2_epilogue.h"

namespace qext::kernels::detail {

namespace {

constexpr int kRows = 4;

// Activations widened to int16, K padded to even: pair g of row m is one int32.
struct WideRows {
  const int32_t* data;
  int64_t stride;  // int32 pairs per row
};

// Rows widened at a time: the buffer (rows x K x 2 bytes) stays in L2 and is
// bounded by the block, not by the call's M (a 16384-row call once kept a
// 256 MB thread_local buffer alive). Short rows get taller blocks (up to about
// 256 KB of widened rows): each row block widens every weight panel again,
// which cost ~5 % of ResNet-18's early convs (K = 576) at 96 rows.
int64_t row_block(int64_t k) {
  constexpr int64_t kBudgetBytes = 256 * 1024, kMinRows = 96, kMaxRows = 1024;
  const int64_t rows = kBudgetBytes / (2 * ((k + 1) / 2) * 2);
  return std::clamp<int64_t>(rows / 4 * 4, kMinRows, kMaxRows);
}

// n bytes (n even, or odd only at the very end of a row) -> n/2 int16 pairs.
void widen_bytes(const uint8_t* a, int64_t n, int32_t* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i / 2), v);
  }
  for (; i + 1 < n; i += 2) out[i / 2] = static_cast<int32_t>(a[i] | (uint32_t{a[i + 1]} << 16));
  if (i < n) out[i / 2] = a[i];  // odd K: the last pair's high half is zero
}

WideRows widen_rows(const GemmArgs& args, int64_t m_begin, int64_t m_end, int64_t k, int32_t* buffer) {
  const int64_t pairs = (k + 1) / 2;
  // Runs are a multiple of 4 bytes long when there are several, so no pair
  // straddles two.
  const int64_t segs = args.a_rows ? args.a_segments : 1, run_bytes = k / segs;
  for (int64_t m = m_begin; m < m_end; ++m) {
    const ARow row = a_row(args, m);
    int32_t* out = buffer + (m - m_begin) * pairs;
    for (int64_t s = 0; s < segs; ++s) widen_bytes(row.run(s), run_bytes, out + s * (run_bytes / 2));
  }
  return {buffer, pairs};
}

// Weight pairs of one block in one of two forms (both [pair][column][2]):
// int8 as packed (sign-extended per load) or an int16 panel widened ahead.
struct Int8Weights {
  static __m256i load(const uint8_t* w, int64_t vec) {
    return _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(w + vec * 16)));
  }
};
struct Int16Weights {
  static __m256i load(const uint8_t* w, int64_t vec) {
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(w + vec * 32));
  }
};

// acc[r][c] (+)= sum over `pairs` k pairs, for MR rows x NB*8 columns of one
// block; `acc` has row stride kBlockCols. Nothing else touches the accumulators inside
// the loop, so they stay in registers.
// `wb` points at the first of the NB vectors; a pair's vectors are `stride`
// vectors apart (the block's vector count).
template <int MR, int NB, typename Weights>
void accumulate(const int32_t* const* a, const uint8_t* wb, int64_t stride, int64_t pairs, bool first,
                int32_t* out) {
  __m256i acc[MR][NB];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 3
    for (int j = 0; j < NB; ++j)
      acc[r][j] = first ? _mm256_setzero_si256()
                        : _mm256_load_si256(reinterpret_cast<const __m256i*>(out + r * kBlockCols + j * kVecCols));
  for (int64_t g = 0; g < pairs; ++g) {
    __m256i b[NB];
#pragma GCC unroll 3
    for (int j = 0; j < NB; ++j) b[j] = Weights::load(wb, g * stride + j);
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const __m256i av = _mm256_set1_epi32(a[r][g]);
#pragma GCC unroll 3
      for (int j = 0; j < NB; ++j)
        acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(av, b[j]));
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 3
    for (int j = 0; j < NB; ++j)
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + r * kBlockCols + j * kVecCols), acc[r][j]);
}

using AccumulateFn = void (*)(const int32_t* const*, const uint8_t*, int64_t, int64_t, bool, int32_t*);

template <typename Weights, int MR>
constexpr AccumulateFn accumulate_for_cols(int nb) {
  return nb == 1 ? accumulate<MR, 1, Weights> : nb == 2 ? accumulate<MR, 2, Weights> : accumulate<MR, 3, Weights>;
}

template <typename Weights>
AccumulateFn accumulate_for(int rows, int nb) {
  switch (rows) {
    case 1: return accumulate_for_cols<Weights, 1>(nb);
    case 2: return accumulate_for_cols<Weights, 2>(nb);
    case 3: return accumulate_for_cols<Weights, 3>(nb);
    default: return accumulate_for_cols<Weights, 4>(nb);
  }
}

// One row tile over `pairs` k pairs of a block with `nb` vectors of columns.
// A 4 x 3 tile reading int8 weights runs as 4 x 2 then 4 x 1: its 12
// accumulators, 3 widened weight vectors, the broadcast and the product need
// 17 ymm registers, and the spilled accumulator's store-to-load round trip
// would bound every step (the int16 panel loop reads one weight vector as a
// memory operand instead).
template <typename Weights>
void accumulate_tile(const int32_t* const* a, int rows, const uint8_t* wb, int nb, int64_t pairs, bool first,
                     int32_t* out) {
  constexpr int64_t kVecBytes = std::is_same_v<Weights, Int8Weights> ? 16 : 32;
  if (std::is_same_v<Weights, Int8Weights> && rows == kRows && nb == 3) {
    accumulate<kRows, 2, Weights>(a, wb, nb, pairs, first, out);
    accumulate<kRows, 1, Weights>(a, wb + 2 * kVecBytes, nb, pairs, first, out + 2 * kVecCols);
    return;
  }
  accumulate_for<Weights>(rows, nb)(a, wb, nb, pairs, first, out);
}

// K pairs widened into the int16 panel at a time: 24 columns x 512 k x 2 bytes
// = 24 KB, resident in L1 while every row tile of the block streams it.
constexpr int64_t kPanelPairs = 256;
// Row blocks this short read the int8 weights directly (measured: widening a
// panel first pays off from about three row tiles on).
constexpr int64_t kDirectRows = 8;

void widen_weights(const uint8_t* w, int64_t bytes, int16_t* panel) {
  for (int64_t i = 0; i < bytes; i += 16)
    _mm256_store_si256(reinterpret_cast<__m256i*>(panel + i),
                       _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(w + i))));
}

}  // namespace

void qgemm_avx2(const GemmArgs& args, const PackedWeights& w, const Epilogue& ep,
                int64_t m_begin, int64_t m_end, int64_t block_begin, int64_t block_end) {
  if (w.bytes()) return qgemm_avx2_narrow(args, w, ep, m_begin, m_end, block_begin, block_end);
  if (m_begin >= m_end) return;
  const Quantizer8 quantize(ep.out_scale, ep.out_zero_point, 0, 255, ep.clamp_min, ep.clamp_max);
  const int64_t pairs = (w.k() + 1) / 2, bc = w.layout().block_cols;
  const int64_t block_rows = std::min(row_block(w.k()), m_end - m_begin);
  // Not value-initialised: every entry is written before it is read.
  const std::unique_ptr<int32_t[]> buffer(new int32_t[static_cast<size_t>(block_rows * pairs)]);
  const AlignedBuffer<int32_t> acc_store(static_cast<size_t>(block_rows * kBlockCols));
  int32_t* acc = acc_store.data();
  alignas(32) int16_t panel[kPanelPairs * kBlockCols * 2];
  for (int64_t mb = m_begin; mb < m_end; mb += block_rows) {
    const int64_t me = std::min(m_end, mb + block_rows);
    const WideRows wide = widen_rows(args, mb, me, w.k(), buffer.get());
    const bool direct = me - mb <= kDirectRows;
    for (int64_t b = block_begin; b < block_end; ++b) {
      const int64_t n0 = b * bc, ncols = std::min(bc, w.n() - n0);
      const int nb = static_cast<int>((ncols + kVecCols - 1) / kVecCols);
      BlockColumns cols(w, ep, n0, ncols);
      // Every row tile's accumulators, then every row's epilogue.
      for (int64_t g0 = 0; g0 < pairs; g0 += direct ? pairs : kPanelPairs) {
        const int64_t chunk = direct ? pairs : std::min(kPanelPairs, pairs - g0);
        const uint8_t* wb = w.block(b) + g0 * nb * 16;
        if (!direct) {
          widen_weights(wb, chunk * nb * 16, panel);
          wb = reinterpret_cast<const uint8_t*>(panel);
        }
        for (int64_t m0 = mb; m0 < me; m0 += kRows) {
          const int rows = static_cast<int>(std::min<int64_t>(kRows, me - m0));
          const int32_t* a[kRows];
          for (int r = 0; r < rows; ++r) a[r] = wide.data + (m0 + r - mb) * wide.stride + g0;
          int32_t* tile_acc = acc + (m0 - mb) * kBlockCols;
          if (direct) {
            accumulate_tile<Int8Weights>(a, rows, wb, nb, chunk, g0 == 0, tile_acc);
          } else {
            accumulate_tile<Int16Weights>(a, rows, wb, nb, chunk, g0 == 0, tile_acc);
          }
        }
      }
      finish_rows(args, ep, quantize, cols, acc, me - mb, mb, n0, ncols);
    }
  }
}

}  // namespace qext::kernels::detail
