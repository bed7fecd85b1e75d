// AVX2 path (compiled with -mavx2 -mfma; only called when CPUID reports them).
//
// vpmaddubsw (u8 x s8 pairs summed into int16) saturates: 255*127 + 255*127 does
// not fit int16, a known source of wrong answers. This path widens both operands
// to int16 instead (weights once at pack time, activations once per call) and
// uses vpmaddwd, whose int16 x int16 pair sums are exact in int32.
//
// Micro-kernel: up to 4 rows x 24 columns in 12 ymm accumulators; weights are
// packed [k/2][column][2 x int16].
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/isa_paths.h"
#include "kernels/ref/scalar_rules.h"

namespace qext::kernels::detail {

namespace {

constexpr int kRows = 4;
constexpr int kVecCols = 8;

// Activations widened to int16, K padded to even: pair g of row m is one int32.
struct WideRows {
  const int32_t* data;
  int64_t stride;  // int32 pairs per row
};

// Rows widened at a time: the buffer (rows x K x 2 bytes) stays in L2 and is
// bounded by the block, not by the call's M (a 16384-row call once kept a
// 256 MB thread_local buffer alive).
constexpr int64_t kRowBlock = 48;

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

// float -> uint8 lanes by the one rounding rule, as AVX-512's Quantizer16:
// one clamp first, to the activation's bounds narrowed to the floats that
// quantize into [qmin, qmax] (quantizing is monotonic, so this equals
// clamp -> quantize -> clamp; NaN -> lo), then the correctly rounded quotient
// without the divider (q0 = v / s via 1/s, one FMA correction; vdivps on 8
// lanes dominated short-K epilogues). A dividing fallback where 1/s is not a
// normal float or the bounds overflow.
class Quantizer8 {
 public:
  Quantizer8(float scale, int32_t zero_point, int32_t qmin, int32_t qmax,
             float clamp_min = -std::numeric_limits<float>::infinity(),
             float clamp_max = std::numeric_limits<float>::infinity())
      : scale_(_mm256_set1_ps(scale)),
        inv_(_mm256_set1_ps(1.0f / scale)),
        zp_(_mm256_set1_epi32(zero_point)),
        zp_f_(_mm256_set1_ps(static_cast<float>(zero_point))),
        qmin_(_mm256_set1_ps(static_cast<float>(qmin))),
        qmax_(_mm256_set1_ps(static_cast<float>(qmax))) {
    const ref::QuantizeBounds b = ref::quantize_bounds(scale, zero_point, qmin, qmax, clamp_min, clamp_max);
    narrowed_ = b.narrowed;
    lo_ = _mm256_set1_ps(b.lo);
    hi_ = _mm256_set1_ps(b.hi);
  }

  __m256i operator()(__m256 v) const {
    v = _mm256_min_ps(_mm256_max_ps(v, lo_), hi_);  // NaN -> lo
    if (narrowed_) {
      const __m256 q0 = _mm256_mul_ps(v, inv_);
      const __m256 r = _mm256_fnmadd_ps(q0, scale_, v);
      const __m256 quotient = _mm256_fmadd_ps(r, inv_, q0);
      const __m256 rounded = _mm256_round_ps(quotient, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      return _mm256_add_epi32(_mm256_cvttps_epi32(rounded), zp_);
    }
    __m256 t = _mm256_round_ps(_mm256_div_ps(v, scale_), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    t = _mm256_add_ps(t, zp_f_);
    t = _mm256_min_ps(_mm256_max_ps(t, qmin_), qmax_);  // NaN -> qmin
    return _mm256_cvttps_epi32(t);
  }

 private:
  bool narrowed_;
  __m256 scale_, inv_;
  __m256i zp_;
  __m256 zp_f_, qmin_, qmax_, lo_, hi_;
};

inline void store_u8x8(uint8_t* dst, __m256i v, int64_t lanes) {
  const __m128i p16 = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i p8 = _mm_packus_epi16(p16, p16);
  if (lanes >= kVecCols) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), p8);
  } else {
    alignas(16) uint8_t tmp[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), p8);
    std::memcpy(dst, tmp, static_cast<size_t>(lanes));
  }
}

template <typename T>
inline void store8(T* dst, const T* src, int64_t lanes) {
  std::memcpy(dst, src, sizeof(T) * static_cast<size_t>(std::min<int64_t>(lanes, kVecCols)));
}

// acc[r][c] for MR rows x NB*8 columns of one block, stored to `out` (row
// stride 24). Nothing else touches the accumulators, so they stay in registers.
template <int MR, int NB>
void accumulate(const int32_t* const* a, const uint8_t* wb, int64_t pairs, int32_t* out) {
  __m256i acc[MR][NB];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 3
    for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_setzero_si256();
  for (int64_t g = 0; g < pairs; ++g) {
    __m256i b[NB];
#pragma GCC unroll 3
    for (int j = 0; j < NB; ++j)
      b[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + (g * NB + j) * 32));
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
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + r * 24 + j * 8), acc[r][j]);
}

// One weight block's column data padded to whole vectors, so the epilogue
// never reads past N; prepared once per block, not per row tile.
struct BlockColumns {
  alignas(32) int32_t sum[3 * kVecCols] = {};
  alignas(32) float scale[3 * kVecCols] = {};
  alignas(32) float bias[3 * kVecCols] = {};

  BlockColumns(const PackedWeights& w, const Epilogue& ep, int64_t n0, int64_t ncols) {
    const bool to_float = ep.output != Epilogue::Output::Int32;
    for (int64_t c = 0; c < ncols; ++c) {
      sum[c] = w.col_sums()[n0 + c];
      if (to_float) scale[c] = ep.col_scale[n0 + c];
      if (to_float && ep.bias) bias[c] = ep.bias[n0 + c];
    }
  }
};

template <int MR, int NB>
void tile(const GemmArgs& args, const WideRows& wide, int64_t wide_row0, const PackedWeights& w,
          const Epilogue& ep, const Quantizer8& quantize, const BlockColumns& cols, int64_t m0, int64_t block,
          int64_t n0, int64_t ncols) {
  const int32_t* a[MR];
  for (int r = 0; r < MR; ++r) a[r] = wide.data + (m0 + r - wide_row0) * wide.stride;
  alignas(32) int32_t acc[MR * 24];
  accumulate<MR, NB>(a, w.block(block), wide.stride, acc);

  const bool to_float = ep.output != Epilogue::Output::Int32;
  const __m256 clamp_min = _mm256_set1_ps(ep.clamp_min), clamp_max = _mm256_set1_ps(ep.clamp_max);
  for (int j = 0; j < NB; ++j) {
    const int64_t n = n0 + j * kVecCols, lanes = ncols - j * kVecCols;
    const __m256i cs = _mm256_load_si256(reinterpret_cast<const __m256i*>(cols.sum + j * kVecCols));
    const __m256 csc = _mm256_load_ps(cols.scale + j * kVecCols);
    const __m256 bv = _mm256_load_ps(cols.bias + j * kVecCols);
    for (int r = 0; r < MR; ++r) {
      const int64_t m = m0 + r, at = m * args.ldc + n;
      const __m256i v = _mm256_sub_epi32(
          _mm256_load_si256(reinterpret_cast<const __m256i*>(acc + r * 24 + j * 8)), _mm256_mullo_epi32(_mm256_set1_epi32(args.a_zero_point[m]), cs));
      if (!to_float) {
        alignas(32) int32_t tmp[kVecCols];
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), v);
        store8(static_cast<int32_t*>(args.c) + at, tmp, lanes);
        continue;
      }
      __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_mul_ps(_mm256_set1_ps(ep.row_scale[m]), csc));
      if (ep.bias) f = _mm256_add_ps(f, bv);
      if (ep.output == Epilogue::Output::Float) {
        f = _mm256_min_ps(_mm256_max_ps(f, clamp_min), clamp_max);
        alignas(32) float tmp[kVecCols];
        _mm256_store_ps(tmp, f);
        store8(static_cast<float*>(args.c) + at, tmp, lanes);
      } else {
        store_u8x8(static_cast<uint8_t*>(args.c) + at, quantize(f), lanes);  // clamps first
      }
    }
  }
}

using TileFn = void (*)(const GemmArgs&, const WideRows&, int64_t, const PackedWeights&, const Epilogue&,
                        const Quantizer8&, const BlockColumns&, int64_t, int64_t, int64_t, int64_t);

template <int MR>
constexpr TileFn tile_for_cols(int nb) {
  return nb == 1 ? tile<MR, 1> : nb == 2 ? tile<MR, 2> : tile<MR, 3>;
}

TileFn tile_for(int rows, int nb) {
  switch (rows) {
    case 1: return tile_for_cols<1>(nb);
    case 2: return tile_for_cols<2>(nb);
    case 3: return tile_for_cols<3>(nb);
    default: return tile_for_cols<4>(nb);
  }
}

}  // namespace

void qgemm_avx2(const GemmArgs& args, const PackedWeights& w, const Epilogue& ep,
                int64_t m_begin, int64_t m_end, int64_t block_begin, int64_t block_end) {
  if (m_begin >= m_end) return;
  const Quantizer8 quantize(ep.out_scale, ep.out_zero_point, 0, 255, ep.clamp_min, ep.clamp_max);
  std::vector<int32_t> buffer(static_cast<size_t>(std::min(kRowBlock, m_end - m_begin) * ((w.k() + 1) / 2)));
  const int64_t bc = w.layout().block_cols;
  for (int64_t mb = m_begin; mb < m_end; mb += kRowBlock) {
    const int64_t me = std::min(m_end, mb + kRowBlock);
    const WideRows wide = widen_rows(args, mb, me, w.k(), buffer.data());
    for (int64_t b = block_begin; b < block_end; ++b) {
      const int64_t n0 = b * bc, ncols = std::min(bc, w.n() - n0);
      const int nb = static_cast<int>((ncols + kVecCols - 1) / kVecCols);
      const BlockColumns cols(w, ep, n0, ncols);
      for (int64_t m0 = mb; m0 < me; m0 += kRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kRows, me - m0));
        tile_for(rows, nb)(args, wide, mb, w, ep, quantize, cols, m0, b, n0, ncols);
      }
    }
  }
}

bool finite_min_max_avx2(const float* x, int64_t n, float* min_out, float* max_out) {
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

void quantize_u8_avx2(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                      int32_t qmax, uint8_t* q) {
  const Quantizer8 quantize(scale, zero_point, qmin, qmax);
  int64_t i = 0;
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

}  // namespace qext::kernels::detail
