// AVX-512 quantize kernels (compiled with the AVX-512 flags): the finite
// min/max of a float row and float -> uint8 by the one rounding rule
// (Quantizer16).
#include <immintrin.h>

#include <limits>

#include "kernels/x86/avx512_epilogue.h"

namespace qext::kernels::detail {

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

}  // namespace qext::kernels::detail
