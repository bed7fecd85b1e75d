// The AVX-512 GEMM epilogue, shared by the AVX-512 VNNI and AMX paths (both
// compiled with the AVX-512 flags): int32 sums -> zero-point correction ->
// int32, float or requantized uint8 (ref::store_one's rule, bit for bit).
// Everything here has internal linkage: each ISA file gets its own copy.
#pragma once

#include <immintrin.h>

#include <limits>

#include "kernels/gelu_erf.h"
#include "kernels/isa_paths.h"
#include "kernels/ref/scalar_rules.h"

namespace qext::kernels::detail {

namespace {

constexpr int kVecCols = 16;

inline __mmask16 lanes_mask(int64_t lanes) {
  return lanes >= kVecCols ? static_cast<__mmask16>(0xFFFF)
                           : static_cast<__mmask16>((1u << lanes) - 1u);
}

// gelu::gelu_erf's arithmetic on 16 lanes (vmaxps / vminps return the second
// operand on NaN, as the scalar a > b ? a : b).
struct Avx512FloatOps {
  static __m512 splat(float v) { return _mm512_set1_ps(v); }
  static __m512 mul(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
  static __m512 add(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
  static __m512 div(__m512 a, __m512 b) { return _mm512_div_ps(a, b); }
  static __m512 max(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
  static __m512 min(__m512 a, __m512 b) { return _mm512_min_ps(a, b); }
};

// round-half-even(clamp(v, clamp_min, clamp_max) / scale) + zero_point,
// clamped to [qmin, qmax]: ref::quantize_one after a fused activation's clamp
// (NaN -> clamp_min, as the reference's clamp).
//
// When 1/scale is a normal float and (qmin - zp) * scale, (qmax - zp) * scale
// are finite (all but absurd scales) v is clamped once, to [clamp_min,
// clamp_max] narrowed to [lo, hi], the floats whose quotients round to
// qmin - zp and qmax - zp (fl(k * s) / s is within |k| * 2^-23 of k, < 0.5
// for |k| < 2^16). Quantizing is monotonic, so this equals clamp -> quantize ->
// clamp, and every quotient is finite. Then the quotient needs no divider
// (it dominated short-K epilogues): q0 = v * (1/s), r = v - q0 * s (exact
// with FMA), q0 + r * (1/s) is the correctly rounded quotient (Markstein's
// theorem; checked bit for bit against division on 3.2e8 samples, ties
// included, and by the kernel tests).
class Quantizer16 {
 public:
  Quantizer16(float scale, int32_t zero_point, int32_t qmin, int32_t qmax,
              float clamp_min = -std::numeric_limits<float>::infinity(),
              float clamp_max = std::numeric_limits<float>::infinity())
      : scale_(_mm512_set1_ps(scale)),
        inv_(_mm512_set1_ps(1.0f / scale)),
        zp_(_mm512_set1_epi32(zero_point)),
        zp_f_(_mm512_set1_ps(static_cast<float>(zero_point))),
        qmin_(_mm512_set1_ps(static_cast<float>(qmin))),
        qmax_(_mm512_set1_ps(static_cast<float>(qmax))) {
    const ref::QuantizeBounds b = ref::quantize_bounds(scale, zero_point, qmin, qmax, clamp_min, clamp_max);
    narrowed_ = b.narrowed;
    lo_ = _mm512_set1_ps(b.lo);
    hi_ = _mm512_set1_ps(b.hi);
  }

  bool narrowed() const { return narrowed_; }

  // The narrowed form alone (only when narrowed()), for loops that hoist the
  // check.
  __m512i narrowed_quantize(__m512 v) const {
    v = _mm512_min_ps(_mm512_max_ps(v, lo_), hi_);  // NaN -> lo
    const __m512 q0 = _mm512_mul_ps(v, inv_);
    const __m512 r = _mm512_fnmadd_ps(q0, scale_, v);
    const __m512 quotient = _mm512_fmadd_ps(r, inv_, q0);
    return _mm512_add_epi32(_mm512_cvt_roundps_epi32(quotient, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp_);
  }

  __m512i operator()(__m512 v) const {
    if (narrowed_) return narrowed_quantize(v);
    v = _mm512_min_ps(_mm512_max_ps(v, lo_), hi_);  // NaN -> lo
    __m512 t = _mm512_roundscale_ps(_mm512_div_ps(v, scale_), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    t = _mm512_add_ps(t, zp_f_);
    t = _mm512_min_ps(_mm512_max_ps(t, qmin_), qmax_);  // NaN -> qmin
    return _mm512_cvttps_epi32(t);
  }

 private:
  bool narrowed_;
  __m512 scale_, inv_;
  __m512i zp_;
  __m512 zp_f_, qmin_, qmax_, lo_, hi_;
};

// The low bytes of v's 16 int32 lanes (already in [0, 255]) to dst, the lanes
// in `mask`. Narrowed in a register first: vpmovdb with a memory operand is
// microcoded on AMD Zen 4 and cost a tenth of a short-K conv.
inline void store_u8x16(uint8_t* dst, __mmask16 mask, __m512i v) {
  const __m128i bytes = _mm512_cvtepi32_epi8(v);
  if (mask == 0xFFFF) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), bytes);
  } else {
    _mm_mask_storeu_epi8(dst, mask, bytes);
  }
}

// Four vectors of int32 lanes in [0, 255] stored as 64 bytes in order: two
// saturating packs (exact here) and one dword permute, where four narrowing
// moves would take twice the uops.
inline void store_u8x64(uint8_t* dst, __m512i q0, __m512i q1, __m512i q2, __m512i q3) {
  // After the packs, 128-bit lane L holds 4 bytes each of q0, q1, q2, q3's lane L.
  const __m512i bytes = _mm512_packus_epi16(_mm512_packus_epi32(q0, q1), _mm512_packus_epi32(q2, q3));
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  _mm512_storeu_si512(dst, _mm512_permutexvar_epi32(order, bytes));
}

// Rows [m0, m0 + rows) x columns [n0, n0 + ncols) of one weight block, NB
// vectors of 16 columns wide, from acc (int32 sums, row r at acc + r *
// acc_stride, 64-byte aligned) through ep: sum - za[m] * col_sum[n], then ep's
// output type. The columns' data is loaded once for all rows and each row's
// products with it only when its zero point or scale differs from the row
// before (rows usually share them); a whole 64-column uint8 row is stored as
// one 64-byte vector.
template <int NB>
void store_rows_nb(const GemmArgs& args, const PackedWeights& w, const Epilogue& ep, const Quantizer16& quantize,
                   int64_t m0, int64_t rows, int64_t n0, int64_t ncols, const int32_t* acc, int64_t acc_stride) {
  const bool to_float = ep.output != Epilogue::Output::Int32;
  const __m512 clamp_min = _mm512_set1_ps(ep.clamp_min), clamp_max = _mm512_set1_ps(ep.clamp_max);
  __mmask16 mask[NB];
  __m512i col_sum[NB], zp_term[NB];
  __m512 col_scale[NB], bias[NB], mult[NB];
  for (int j = 0; j < NB; ++j) {
    const int64_t n = n0 + j * kVecCols;
    mask[j] = lanes_mask(ncols - j * kVecCols);
    col_sum[j] = _mm512_maskz_loadu_epi32(mask[j], w.col_sums() + n);
    col_scale[j] = to_float ? _mm512_maskz_loadu_ps(mask[j], ep.col_scale + n) : _mm512_setzero_ps();
    bias[j] = to_float && ep.bias ? _mm512_maskz_loadu_ps(mask[j], ep.bias + n) : _mm512_setzero_ps();
  }
  const bool whole_row_u8 = NB == 4 && ncols == 4 * kVecCols && ep.output == Epilogue::Output::Uint8;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t m = m0 + r, at = m * args.ldc + n0;
    const int32_t* acc_row = acc + r * acc_stride;
    if (r == 0 || args.a_zero_point[m] != args.a_zero_point[m - 1]) {
      const __m512i zp = _mm512_set1_epi32(args.a_zero_point[m]);
      for (int j = 0; j < NB; ++j) zp_term[j] = _mm512_mullo_epi32(zp, col_sum[j]);
    }
    __m512i v[NB];
    for (int j = 0; j < NB; ++j) v[j] = _mm512_sub_epi32(_mm512_load_si512(acc_row + j * 16), zp_term[j]);
    if (!to_float) {
      for (int j = 0; j < NB; ++j) _mm512_mask_storeu_epi32(static_cast<int32_t*>(args.c) + at + j * 16, mask[j], v[j]);
      continue;
    }
    if (r == 0 || ep.row_scale[m] != ep.row_scale[m - 1]) {
      const __m512 rs = _mm512_set1_ps(ep.row_scale[m]);
      for (int j = 0; j < NB; ++j) mult[j] = _mm512_mul_ps(rs, col_scale[j]);
    }
    __m512 f[NB];
    for (int j = 0; j < NB; ++j) {
      f[j] = _mm512_mul_ps(_mm512_cvtepi32_ps(v[j]), mult[j]);
      if (ep.bias) f[j] = _mm512_add_ps(f[j], bias[j]);
    }
    if (ep.output == Epilogue::Output::Float) {
      for (int j = 0; j < NB; ++j) {
        __m512 y = _mm512_min_ps(_mm512_max_ps(f[j], clamp_min), clamp_max);
        if (ep.gelu) y = gelu::gelu_erf(Avx512FloatOps{}, y);
        _mm512_mask_storeu_ps(static_cast<float*>(args.c) + at + j * 16, mask[j], y);
      }
    } else if (whole_row_u8) {
      store_u8x64(static_cast<uint8_t*>(args.c) + at, quantize(f[0]), quantize(f[1 % NB]), quantize(f[2 % NB]),
                  quantize(f[3 % NB]));
    } else {
      for (int j = 0; j < NB; ++j) store_u8x16(static_cast<uint8_t*>(args.c) + at + j * 16, mask[j], quantize(f[j]));
    }
  }
}

// The per-column constants of the uint8 epilogue for rows that share one
// activation zero point and scale (a static model's activations, quantized
// per tensor), for one block of columns: made once per block, not per tile.
struct SharedU8Columns {
  int64_t n0 = -1, ncols = 0;
  int32_t zp = 0;
  float scale = 0.0f;
  __mmask16 mask[4];
  __m512i zp_term[4];
  __m512 mult[4], bias[4];

  bool made_for(int64_t n0_, int32_t zp_, float scale_) const { return n0 == n0_ && zp == zp_ && scale == scale_; }

  void make(const PackedWeights& w, const Epilogue& ep, int64_t n0_, int64_t ncols_, int32_t zp_, float scale_) {
    n0 = n0_, ncols = ncols_, zp = zp_, scale = scale_;
    const __m512i zpv = _mm512_set1_epi32(zp);
    const __m512 rs = _mm512_set1_ps(scale);
    for (int j = 0; j * kVecCols < ncols; ++j) {
      const int64_t n = n0 + j * kVecCols;
      mask[j] = lanes_mask(ncols - j * kVecCols);
      zp_term[j] = _mm512_mullo_epi32(zpv, _mm512_maskz_loadu_epi32(mask[j], w.col_sums() + n));
      mult[j] = _mm512_mul_ps(rs, _mm512_maskz_loadu_ps(mask[j], ep.col_scale + n));
      // adding +0 instead of no bias can only turn -0 into +0, which quantizes alike
      bias[j] = ep.bias ? _mm512_maskz_loadu_ps(mask[j], ep.bias + n) : _mm512_setzero_ps();
    }
  }
};

// store_rows_nb's uint8 output for such rows, with a narrowed quantizer:
// every constant in a register and no branch per vector. Same operations,
// same bits.
template <int NB>
void store_rows_u8_shared(const GemmArgs& args, const SharedU8Columns& c, const Quantizer16& quantize, int64_t m0,
                          int64_t rows, const int32_t* acc, int64_t acc_stride) {
  __mmask16 mask[NB];
  __m512i zp_term[NB];
  __m512 mult[NB], bias[NB];
  for (int j = 0; j < NB; ++j) mask[j] = c.mask[j], zp_term[j] = c.zp_term[j], mult[j] = c.mult[j], bias[j] = c.bias[j];
  uint8_t* out = static_cast<uint8_t*>(args.c) + m0 * args.ldc + c.n0;
  const int64_t ldc = args.ldc;
  const bool whole = c.ncols == NB * kVecCols;
  for (int64_t r = 0; r < rows; ++r, acc += acc_stride, out += ldc) {
    __m512i q[NB];
    for (int j = 0; j < NB; ++j) {
      const __m512i v = _mm512_sub_epi32(_mm512_load_si512(acc + j * kVecCols), zp_term[j]);
      q[j] = quantize.narrowed_quantize(_mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v), mult[j]), bias[j]));
    }
    if (NB == 4 && whole) {
      store_u8x64(out, q[0], q[1 % NB], q[2 % NB], q[3 % NB]);
    } else {
      for (int j = 0; j < NB; ++j) store_u8x16(out + j * kVecCols, mask[j], q[j]);
    }
  }
}

// Whether rows [m0, m0 + rows) share one activation zero point and scale.
inline bool rows_share_qparams(const GemmArgs& args, const Epilogue& ep, int64_t m0, int64_t rows) {
  for (int64_t r = 1; r < rows; ++r) {
    if (args.a_zero_point[m0 + r] != args.a_zero_point[m0] || ep.row_scale[m0 + r] != ep.row_scale[m0]) return false;
  }
  return true;
}

// Rows [m0, m0 + rows) x columns [n0, n0 + ncols) of one block through ep.
// `columns`, if given, keeps the shared-row uint8 constants between calls
// of one qgemm (it must not outlive w and ep).
inline void store_rows(const GemmArgs& args, const PackedWeights& w, const Epilogue& ep, const Quantizer16& quantize,
                       int64_t m0, int64_t rows, int64_t n0, int64_t ncols, const int32_t* acc, int64_t acc_stride,
                       SharedU8Columns* columns = nullptr) {
  const int nb = static_cast<int>((ncols + kVecCols - 1) / kVecCols);
  if (ep.output == Epilogue::Output::Uint8 && quantize.narrowed() && rows_share_qparams(args, ep, m0, rows)) {
    SharedU8Columns local;
    SharedU8Columns& c = columns ? *columns : local;
    if (!c.made_for(n0, args.a_zero_point[m0], ep.row_scale[m0]))
      c.make(w, ep, n0, ncols, args.a_zero_point[m0], ep.row_scale[m0]);
    switch (nb) {
      case 1: return store_rows_u8_shared<1>(args, c, quantize, m0, rows, acc, acc_stride);
      case 2: return store_rows_u8_shared<2>(args, c, quantize, m0, rows, acc, acc_stride);
      case 3: return store_rows_u8_shared<3>(args, c, quantize, m0, rows, acc, acc_stride);
      default: return store_rows_u8_shared<4>(args, c, quantize, m0, rows, acc, acc_stride);
    }
  }
  switch (nb) {
    case 1: return store_rows_nb<1>(args, w, ep, quantize, m0, rows, n0, ncols, acc, acc_stride);
    case 2: return store_rows_nb<2>(args, w, ep, quantize, m0, rows, n0, ncols, acc, acc_stride);
    case 3: return store_rows_nb<3>(args, w, ep, quantize, m0, rows, n0, ncols, acc, acc_stride);
    default: return store_rows_nb<4>(args, w, ep, quantize, m0, rows, n0, ncols, acc, acc_stride);
  }
}

// The channels-in-lanes kernels' one-pass epilogue (VectorRowRequantizer,
// kernels/window_conv_impl.h) on 16 lanes.
struct Avx512RowLanes {
  static constexpr int64_t kLanes = 16;
  using Quantizer = Quantizer16;
  static __m512 float_of(const int32_t* acc, const int32_t* zp_sums, const float* multiplier, const float* bias) {
    const __m512i v = _mm512_sub_epi32(_mm512_loadu_si512(acc), _mm512_load_si512(zp_sums));
    return _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_load_ps(multiplier)), _mm512_load_ps(bias));
  }
  static void store(uint8_t* dst, __m512i q, int64_t lanes) { store_u8x16(dst, lanes_mask(lanes), q); }
};

}  // namespace

}  // namespace qext::kernels::detail
