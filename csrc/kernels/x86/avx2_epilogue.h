// The AVX2 GEMM epilogue, shared by the two AVX2 GEMMs (exact int16
// vpmaddwd for any int8 weights, vpmaddubsw for narrow ones): int32 sums ->
// zero-point correction -> int32, float or requantized uint8
// (ref::store_one's rule, bit for bit). Everything here has internal linkage:
// each file that includes it gets its own copy (both are compiled for AVX2).
#pragma once

#include <immintrin.h>

#include <cstring>
#include <limits>

#include "kernels/gelu_erf.h"
#include "kernels/isa_paths.h"
#include "kernels/ref/scalar_rules.h"

namespace qext::kernels::detail {

namespace {

constexpr int kVecCols = 8;
// Both GEMMs cut weights into blocks of 24 columns: 3 vectors.
constexpr int kBlockVecs = 3;
constexpr int kBlockCols = kBlockVecs * kVecCols;

// float -> uint8 lanes by the one rounding rule, as AVX-512's Quantizer16:
// one clamp first, to the activation's bounds narrowed to the floats that
// quantize into [qmin, qmax] (quantizing is monotonic, so this equals
// clamp -> quantize -> clamp; NaN -> lo), then the correctly rounded quotient
// without the divider (q0 = v / s via 1/s, one FMA correction; vdivps on 8
// lanes dominated short-K epilogues), converted in one instruction when the
// MXCSR rounds to nearest even (the default; vroundps + vcvttps otherwise).
// A dividing fallback where 1/s is not a normal float or the bounds overflow.
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
    nearest_even_ = (_mm_getcsr() & _MM_ROUND_MASK) == _MM_ROUND_NEAREST;
  }

  // Every value takes the divider-free quotient and one conversion.
  bool divider_free() const { return narrowed_ && nearest_even_; }

  // operator() when divider_free(): no branch.
  __m256i nearest(__m256 v) const {
    const __m256 quotient = narrowed_quotient(v);
    return _mm256_add_epi32(_mm256_cvtps_epi32(quotient), zp_);
  }

  __m256i operator()(__m256 v) const {
    if (narrowed_) {
      if (nearest_even_) return nearest(v);
      const __m256 rounded = _mm256_round_ps(narrowed_quotient(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      return _mm256_add_epi32(_mm256_cvttps_epi32(rounded), zp_);
    }
    v = _mm256_min_ps(_mm256_max_ps(v, lo_), hi_);  // NaN -> lo
    __m256 t = _mm256_round_ps(_mm256_div_ps(v, scale_), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    t = _mm256_add_ps(t, zp_f_);
    t = _mm256_min_ps(_mm256_max_ps(t, qmin_), qmax_);  // NaN -> qmin
    return _mm256_cvttps_epi32(t);
  }

 private:
  // v / scale correctly rounded, v first clamped to the narrowed bounds
  // (NaN -> lo), so the quotient is finite and within int32.
  __m256 narrowed_quotient(__m256 v) const {
    v = _mm256_min_ps(_mm256_max_ps(v, lo_), hi_);
    const __m256 q0 = _mm256_mul_ps(v, inv_);
    const __m256 r = _mm256_fnmadd_ps(q0, scale_, v);
    return _mm256_fmadd_ps(r, inv_, q0);
  }

  bool narrowed_, nearest_even_;
  __m256 scale_, inv_;
  __m256i zp_;
  __m256 zp_f_, qmin_, qmax_, lo_, hi_;
};

// gelu::gelu_erf's arithmetic on 8 lanes (vmaxps / vminps return the second
// operand on NaN, as the scalar a > b ? a : b).
struct Avx2FloatOps {
  static __m256 splat(float v) { return _mm256_set1_ps(v); }
  static __m256 mul(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
  static __m256 add(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
  static __m256 div(__m256 a, __m256 b) { return _mm256_div_ps(a, b); }
  static __m256 max(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
  static __m256 min(__m256 a, __m256 b) { return _mm256_min_ps(a, b); }
};

// The Float output's last steps: the clamps (NaN -> lo), then the fused GELU.
inline __m256 finish_float(__m256 f, __m256 lo, __m256 hi, bool gelu) {
  f = _mm256_min_ps(_mm256_max_ps(f, lo), hi);
  return gelu ? gelu::gelu_erf(Avx2FloatOps{}, f) : f;
}

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

// Four vectors of int32 lanes in [0, 255] stored as 32 bytes in order: two
// dword packs, a word pack and one dword permute.
inline void store_u8x32(uint8_t* dst, __m256i q0, __m256i q1, __m256i q2, __m256i q3) {
  const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(q0, q1), _mm256_packus_epi32(q2, q3));
  const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), ordered);
}

// The first `lanes` (1..8) of v; whole vectors store directly, a block's
// last partial vector through a lane mask (never past N).
inline void store_i32x8(int32_t* dst, __m256i v, int64_t lanes) {
  if (lanes >= kVecCols) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), v);
  } else {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(lanes)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_epi32(dst, mask, v);
  }
}
inline void store_f32x8(float* dst, __m256 v, int64_t lanes) {
  store_i32x8(reinterpret_cast<int32_t*>(dst), _mm256_castps_si256(v), lanes);
}

// One weight block's column data padded to whole vectors, so the epilogue
// never reads past N; prepared once per block, not per row tile. It also
// holds the products with the last row's zero point (za * sum) and scale
// (row_scale * col_scale), remade only when those change: once per block
// with per-tensor activations (static quantization), per row with per-row
// ones. Same operations, same bits; short-K layers are epilogue-bound.
struct BlockColumns {
  alignas(32) int32_t sum[kBlockCols] = {};
  alignas(32) float scale[kBlockCols] = {};
  alignas(32) float bias[kBlockCols] = {};
  alignas(32) int32_t zp_sum[kBlockCols];
  alignas(32) float row_col_scale[kBlockCols];
  int vecs;
  bool have_zp = false, have_scale = false;
  int32_t zp_of_sums = 0;
  uint32_t scale_bits = 0;  // row_scale's bits (NaN compares unequal to itself)

  BlockColumns(const PackedWeights& w, const Epilogue& ep, int64_t n0, int64_t ncols)
      : vecs(static_cast<int>((ncols + kVecCols - 1) / kVecCols)) {
    const bool to_float = ep.output != Epilogue::Output::Int32;
    for (int64_t c = 0; c < ncols; ++c) {
      sum[c] = w.col_sums()[n0 + c];
      if (to_float) scale[c] = ep.col_scale[n0 + c];
      if (to_float && ep.bias) bias[c] = ep.bias[n0 + c];
    }
  }

  const int32_t* zp_sums(int32_t zp) {
    if (!have_zp || zp != zp_of_sums) {
      const __m256i z = _mm256_set1_epi32(zp);
      for (int j = 0; j < vecs; ++j) {
        const __m256i s = _mm256_load_si256(reinterpret_cast<const __m256i*>(sum + j * kVecCols));
        _mm256_store_si256(reinterpret_cast<__m256i*>(zp_sum + j * kVecCols), _mm256_mullo_epi32(z, s));
      }
      have_zp = true;
      zp_of_sums = zp;
    }
    return zp_sum;
  }

  const float* row_col_scales(float row_scale) {
    uint32_t bits;
    std::memcpy(&bits, &row_scale, sizeof bits);
    if (!have_scale || bits != scale_bits) {
      const __m256 r = _mm256_set1_ps(row_scale);
      for (int j = 0; j < vecs; ++j)
        _mm256_store_ps(row_col_scale + j * kVecCols, _mm256_mul_ps(r, _mm256_load_ps(scale + j * kVecCols)));
      have_scale = true;
      scale_bits = bits;
    }
    return row_col_scale;
  }
};

// Row m's accumulators (kBlockCols int32, `acc`) for the block's `ncols` columns at
// n0: zero-point correction, then the epilogue, stored to C. The general
// form: any output, partial blocks, and a Quantizer8 that needs its divider.
void finish_row(const GemmArgs& args, const Epilogue& ep, const Quantizer8& quantize, BlockColumns& cols,
                const int32_t* acc, int64_t m, int64_t n0, int64_t ncols) {
  const bool to_float = ep.output != Epilogue::Output::Int32;
  const int32_t* zp_sum = cols.zp_sums(args.a_zero_point[m]);
  const float* scales = to_float ? cols.row_col_scales(ep.row_scale[m]) : nullptr;
  for (int64_t j = 0; j * kVecCols < ncols; ++j) {
    const int64_t at = m * args.ldc + n0 + j * kVecCols, lanes = ncols - j * kVecCols;
    const __m256i v = _mm256_sub_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(acc + j * kVecCols)),
                                       _mm256_load_si256(reinterpret_cast<const __m256i*>(zp_sum + j * kVecCols)));
    if (!to_float) {
      store_i32x8(static_cast<int32_t*>(args.c) + at, v, lanes);
      continue;
    }
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_load_ps(scales + j * kVecCols));
    if (ep.bias) f = _mm256_add_ps(f, _mm256_load_ps(cols.bias + j * kVecCols));
    if (ep.output == Epilogue::Output::Float) {
      store_f32x8(static_cast<float*>(args.c) + at,
                  finish_float(f, _mm256_set1_ps(ep.clamp_min), _mm256_set1_ps(ep.clamp_max), ep.gelu), lanes);
    } else {
      store_u8x8(static_cast<uint8_t*>(args.c) + at, quantize(f), lanes);  // clamps first
    }
  }
}

// Three vectors of int32 lanes in [0, 255] stored as 24 bytes in order: two
// dword packs, a word pack and a dword permute, then a 16- and an 8-byte
// store (one vector at a time took an extract, two packs and a store each).
inline void store_u8x24(uint8_t* dst, __m256i q0, __m256i q1, __m256i q2) {
  const __m256i words = _mm256_packus_epi32(q0, q1);  // 128-bit lane L: q0's then q1's 4 lanes of L
  const __m256i bytes = _mm256_packus_epi16(words, _mm256_packus_epi32(q2, q2));  // lane L: q0, q1, q2, q2
  const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm256_castsi256_si128(ordered));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + 16), _mm256_extracti128_si256(ordered, 1));
}

// finish_row for `rows` rows of a whole block, to float or (divider-free)
// uint8, with every choice made once per call instead of per vector. The
// zero-point products and scales come from `cols`, remade only when a row's
// differ from the last ones (per-tensor activations: once per block). Same
// operations, same bits. The per-row form branched on the output per vector
// and, since the float stores may alias `ep`, read its fields again for every
// vector: at K = 384 this form is 1.03-1.065x faster, and dropping the
// epilogue altogether would be 1.07-1.15x (docs/benchmarks.md).
template <Epilogue::Output kOut, bool kBias, bool kGelu>
void finish_block_rows(const GemmArgs& args, const Epilogue& ep, const Quantizer8& quantize, BlockColumns& cols,
                       const int32_t* acc, int64_t rows, int64_t m0, int64_t n0) {
  __m256 bias[kBlockVecs];
  for (int j = 0; j < kBlockVecs; ++j) bias[j] = _mm256_load_ps(cols.bias + j * kVecCols);  // zeros without a bias
  const __m256 lo = _mm256_set1_ps(ep.clamp_min), hi = _mm256_set1_ps(ep.clamp_max);
  const int64_t ldc = args.ldc;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t m = m0 + r;
    const int32_t* zp_sum = cols.zp_sums(args.a_zero_point[m]);
    const float* mult = cols.row_col_scales(ep.row_scale[m]);
    __m256 f[kBlockVecs];
#pragma GCC unroll 3
    for (int j = 0; j < kBlockVecs; ++j) {
      const __m256i v =
          _mm256_sub_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(acc + r * kBlockCols + j * kVecCols)),
                           _mm256_load_si256(reinterpret_cast<const __m256i*>(zp_sum + j * kVecCols)));
      f[j] = _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_load_ps(mult + j * kVecCols));
      if constexpr (kBias) f[j] = _mm256_add_ps(f[j], bias[j]);
    }
    const int64_t at = m * ldc + n0;
    if constexpr (kOut == Epilogue::Output::Uint8) {
      static_assert(kBlockVecs == 3, "store_u8x24 stores three vectors");
      store_u8x24(static_cast<uint8_t*>(args.c) + at, quantize.nearest(f[0]), quantize.nearest(f[1]),
                  quantize.nearest(f[2]));
    } else {
#pragma GCC unroll 3
      for (int j = 0; j < kBlockVecs; ++j)
        _mm256_storeu_ps(static_cast<float*>(args.c) + at + j * kVecCols, finish_float(f[j], lo, hi, kGelu));
    }
  }
}

// Rows [m0, m0 + rows) of one block; their accumulators are `acc` with row
// stride kBlockCols.
inline void finish_rows(const GemmArgs& args, const Epilogue& ep, const Quantizer8& quantize, BlockColumns& cols,
                 const int32_t* acc, int64_t rows, int64_t m0, int64_t n0, int64_t ncols) {
  using Out = Epilogue::Output;
  if (ncols == kBlockCols && ep.output == Out::Float) {
    if (ep.gelu) {
      return ep.bias ? finish_block_rows<Out::Float, true, true>(args, ep, quantize, cols, acc, rows, m0, n0)
                     : finish_block_rows<Out::Float, false, true>(args, ep, quantize, cols, acc, rows, m0, n0);
    }
    return ep.bias ? finish_block_rows<Out::Float, true, false>(args, ep, quantize, cols, acc, rows, m0, n0)
                   : finish_block_rows<Out::Float, false, false>(args, ep, quantize, cols, acc, rows, m0, n0);
  }
  // Uint8 adds cols.bias's zeros when there is no bias: +0 changes no
  // quantized value.
  if (ncols == kBlockCols && ep.output == Out::Uint8 && quantize.divider_free())
    return finish_block_rows<Out::Uint8, true, false>(args, ep, quantize, cols, acc, rows, m0, n0);
  for (int64_t r = 0; r < rows; ++r) finish_row(args, ep, quantize, cols, acc + r * kBlockCols, m0 + r, n0, ncols);
}

// The channels-in-lanes kernels' one-pass epilogue (VectorRowRequantizer,
// kernels/window_conv_impl.h) on 8 lanes.
struct Avx2RowLanes {
  static constexpr int64_t kLanes = 8;
  using Quantizer = Quantizer8;
  static __m256 float_of(const int32_t* acc, const int32_t* zp_sums, const float* multiplier, const float* bias) {
    const __m256i v = _mm256_sub_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc)),
                                       _mm256_load_si256(reinterpret_cast<const __m256i*>(zp_sums)));
    return _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_load_ps(multiplier)), _mm256_load_ps(bias));
  }
  static void store(uint8_t* dst, __m256i q, int64_t lanes) { store_u8x8(dst, q, lanes); }
};

}  // namespace

}  // namespace qext::kernels::detail
