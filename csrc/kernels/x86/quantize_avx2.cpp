// AVX2 quantize kernels (compiled with -mavx2 -mfma): the finite min/max of a
// float row and float -> uint8 by the one rounding rule (Quantizer8).
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "kernels/x86/avx2_epilogue.h"

namespace qext::kernels::detail {

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
    // 32 at a time (dynamic Linears quantize every activation row with this;
    // the row is in L1 from its min/max pass).
    for (; i + 4 * kVecCols <= n; i += 4 * kVecCols) {
      store_u8x32(q + i, quantize.nearest(_mm256_loadu_ps(x + i)), quantize.nearest(_mm256_loadu_ps(x + i + 8)),
                  quantize.nearest(_mm256_loadu_ps(x + i + 16)), quantize.nearest(_mm256_loadu_ps(x + i + 24)));
    }
  }
  for (; i + kVecCols <= n; i += kVecCols) store_u8x8(q + i, quantize(_mm256_loadu_ps(x + i)), kVecCols);
  quantize_u8_ref(x + i, n - i, scale, zero_point, qmin, qmax, q + i);
}

}  // namespace qext::kernels::detail
