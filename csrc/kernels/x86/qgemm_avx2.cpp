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
#include <cmath>
#include <cstring>
#include <limits>
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

namespace {

// The careful pass: skips NaN/inf lane by lane (one blend chain, slow).
bool finite_min_max_skipping(const float* x, int64_t n, float* min_out, float* max_out) {
  const float inf = std::numeric_limits<float>::infinity();
  __m256 lo = _mm256_set1_ps(inf), hi = _mm256_set1_ps(-inf);
  __m256 bad = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + kVecCols <= n; i += kVecCols) {
    const __m256 v = _mm256_loadu_ps(x + i);
    // v - v is 0 for finite values and NaN for NaN and +-inf.
    const __m256 finite = _mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_EQ_OQ);
    bad = _mm256_or_ps(bad, _mm256_andnot_ps(finite, _mm256_castsi256_ps(_mm256_set1_epi32(-1))));
    lo = _mm256_blendv_ps(lo, _mm256_min_ps(lo, v), finite);
    hi = _mm256_blendv_ps(hi, _mm256_max_ps(hi, v), finite);
  }
  alignas(32) float l8[kVecCols], h8[kVecCols];
  _mm256_store_ps(l8, lo);
  _mm256_store_ps(h8, hi);
  float l = inf, h = -inf;
  for (int j = 0; j < kVecCols; ++j) {
    l = std::min(l, l8[j]);
    h = std::max(h, h8[j]);
  }
  const bool tail_finite = ref::fold_finite_min_max(x + i, n - i, &l, &h);
  if (l > h) l = h = 0.0f;
  *min_out = l;
  *max_out = h;
  return _mm256_movemask_ps(bad) == 0 && tail_finite;
}

}  // namespace

// Rows are finite nearly always: four independent min/max chains and an OR of
// v - v (0 when finite, NaN bits otherwise) run at load speed; a row with any
// NaN/inf is redone by the careful pass.
bool finite_min_max_avx2(const float* x, int64_t n, float* min_out, float* max_out) {
  constexpr int64_t kStep = 4 * kVecCols;
  if (n < kStep) return finite_min_max_skipping(x, n, min_out, max_out);
  __m256 lo[4], hi[4];
  __m256i bad = _mm256_setzero_si256();
  for (int j = 0; j < 4; ++j) lo[j] = hi[j] = _mm256_loadu_ps(x + j * kVecCols);
  int64_t i = 0;
  for (; i + kStep <= n; i += kStep) {
    for (int j = 0; j < 4; ++j) {
      const __m256 v = _mm256_loadu_ps(x + i + j * kVecCols);
      bad = _mm256_or_si256(bad, _mm256_castps_si256(_mm256_sub_ps(v, v)));
      lo[j] = _mm256_min_ps(lo[j], v);
      hi[j] = _mm256_max_ps(hi[j], v);
    }
  }
  for (; i + kVecCols <= n; i += kVecCols) {
    const __m256 v = _mm256_loadu_ps(x + i);
    bad = _mm256_or_si256(bad, _mm256_castps_si256(_mm256_sub_ps(v, v)));
    lo[0] = _mm256_min_ps(lo[0], v);
    hi[0] = _mm256_max_ps(hi[0], v);
  }
  if (!_mm256_testz_si256(bad, bad)) return finite_min_max_skipping(x, n, min_out, max_out);
  const __m256 l4 = _mm256_min_ps(_mm256_min_ps(lo[0], lo[1]), _mm256_min_ps(lo[2], lo[3]));
  const __m256 h4 = _mm256_max_ps(_mm256_max_ps(hi[0], hi[1]), _mm256_max_ps(hi[2], hi[3]));
  alignas(32) float l8[kVecCols], h8[kVecCols];
  _mm256_store_ps(l8, l4);
  _mm256_store_ps(h8, h4);
  float l = l8[0], h = h8[0];
  for (int j = 1; j < kVecCols; ++j) {
    l = std::min(l, l8[j]);
    h = std::max(h, h8[j]);
  }
  if (!ref::fold_finite_min_max(x + i, n - i, &l, &h)) return finite_min_max_skipping(x, n, min_out, max_out);
  *min_out = l;
  *max_out = h;
  return true;
}

void quantize_u8_avx2(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                      int32_t qmax, uint8_t* q) {
  const Quantizer8 quantize(scale, zero_point, qmin, qmax);
  int64_t i = 0;
  if (quantize.divider_free()) {
    // 32 at a time: two 32-bit packs, one 16-bit pack and a lane permute put
    // the 32 bytes in order for one store (dynamic Linears quantize every
    // activation row with this; the row is in L1 from its min/max pass).
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; i + 4 * kVecCols <= n; i += 4 * kVecCols) {
      const __m256i q0 = quantize.nearest(_mm256_loadu_ps(x + i)), q1 = quantize.nearest(_mm256_loadu_ps(x + i + 8));
      const __m256i q2 = quantize.nearest(_mm256_loadu_ps(x + i + 16)), q3 = quantize.nearest(_mm256_loadu_ps(x + i + 24));
      const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(q0, q1), _mm256_packus_epi32(q2, q3));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), _mm256_permutevar8x32_epi32(bytes, order));
    }
  }
  for (; i + kVecCols <= n; i += kVecCols) store_u8x8(q + i, quantize(_mm256_loadu_ps(x + i)), kVecCols);
  quantize_u8_ref(x + i, n - i, scale, zero_point, qmin, qmax, q + i);
}

void add_requant_u8_avx2(const uint8_t* a, float sa, int32_t za, const uint8_t* b, float sb,
                         int32_t zb, int64_t n, float so, int32_t zo, bool relu, uint8_t* out) {
  const __m256 vsa = _mm256_set1_ps(sa), vsb = _mm256_set1_ps(sb);
  const __m256i vza = _mm256_set1_epi32(za), vzb = _mm256_set1_epi32(zb);
  const Quantizer8 quantize(so, zo, 0, 255, relu ? 0.0f : -std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + kVecCols <= n; i += kVecCols) {
    const __m256i ai = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + i)));
    const __m256i bi = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + i)));
    __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ai, vza)), vsa),
                             _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(bi, vzb)), vsb));
    store_u8x8(out + i, quantize(v), kVecCols);  // the ReLU is the quantizer's clamp
  }
  add_requant_u8_ref(a + i, sa, za, b + i, sb, zb, n - i, so, zo, relu, out + i);
}

uint8_t max_u8_avx2(const uint8_t* x, int64_t n) {
  __m256i m0 = _mm256_setzero_si256(), m1 = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    m0 = _mm256_max_epu8(m0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)));
    m1 = _mm256_max_epu8(m1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 32)));
  }
  __m128i m = _mm_max_epu8(_mm256_castsi256_si128(m0), _mm256_extracti128_si256(m0, 1));
  m = _mm_max_epu8(m, _mm_max_epu8(_mm256_castsi256_si128(m1), _mm256_extracti128_si256(m1, 1)));
  // Fold the 16 lanes into lane 0.
  m = _mm_max_epu8(m, _mm_srli_si128(m, 8));
  m = _mm_max_epu8(m, _mm_srli_si128(m, 4));
  m = _mm_max_epu8(m, _mm_srli_si128(m, 2));
  m = _mm_max_epu8(m, _mm_srli_si128(m, 1));
  return std::max(static_cast<uint8_t>(_mm_cvtsi128_si32(m)), max_u8_ref(x + i, n - i));
}

}  // namespace qext::kernels::detail
