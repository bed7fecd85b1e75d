// The attention kernel on AVX2 + FMA (compiled with -mavx2 -mfma; only called
// when CPUID reports them): attention_impl.h over __m256, the same lane
// operations as the reference path's.
#include <immintrin.h>

#include <cstdint>
#include <limits>

#include "kernels/attention_impl.h"

namespace qext::kernels::detail {

namespace {

struct Avx2Vec8 {
  using T = __m256;
  static __m256i first_lanes(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static T zero() { return _mm256_setzero_ps(); }
  static T splat(float v) { return _mm256_set1_ps(v); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static T load_n(const float* p, int64_t n) { return _mm256_maskload_ps(p, first_lanes(n)); }
  static void store(float* p, T x) { _mm256_storeu_ps(p, x); }
  static void store_n(float* p, T x, int64_t n) {
    if (n == attention::kLanes) return _mm256_storeu_ps(p, x);
    _mm256_maskstore_ps(p, first_lanes(n), x);
  }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  // vmaxps returns its second operand when either is NaN: a > b ? a : b
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  static T mask_from(T x, int64_t first, int64_t limit) {
    const int64_t n = limit - first;
    if (n >= attention::kLanes) return x;
    const __m256i keep = first_lanes(n < 0 ? 0 : n);
    return _mm256_blendv_ps(_mm256_set1_ps(-std::numeric_limits<float>::infinity()), x, _mm256_castsi256_ps(keep));
  }
  static T zero_below(T x, float t, T y) {
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(t), _CMP_LT_OQ), y);
  }
  static T pow2i(T n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static T abs(T x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
  static bool any_nan(T x) { return _mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)) != 0; }
  // Pairs of rows interleaved, then pairs of pairs, then the 128-bit halves.
  static void transpose8(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
    __m256 r[8], t[8];
    for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(src + j * src_stride);
    for (int j = 0; j < 8; j += 2) {
      t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]);      // a0 b0 a1 b1 | a4 b4 a5 b5
      t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);  // a2 b2 a3 b3 | a6 b6 a7 b7
    }
    for (int j = 0; j < 8; j += 4)
      for (int h = 0; h < 2; ++h) {
        r[j + 2 * h] = _mm256_shuffle_ps(t[j + h], t[j + 2 + h], _MM_SHUFFLE(1, 0, 1, 0));      // a b c d, first of a pair
        r[j + 2 * h + 1] = _mm256_shuffle_ps(t[j + h], t[j + 2 + h], _MM_SHUFFLE(3, 2, 3, 2));  // second
      }
    // r[0..3]: columns (0,4) (1,5) (2,6) (3,7) of rows 0-3; r[4..7] of rows 4-7.
    for (int i = 0; i < 4; ++i) {
      _mm256_storeu_ps(dst + i * dst_stride, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
      _mm256_storeu_ps(dst + (i + 4) * dst_stride, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
    }
  }
  static float hsum(T x) {
    const __m128 a = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));  // (l, l + 4)
    const __m128 b = _mm_add_ps(a, _mm_movehl_ps(a, a));                                  // (l, l + 2)
    return _mm_cvtss_f32(_mm_add_ss(b, _mm_movehdup_ps(b)));                              // (0, 1)
  }
  static float hmax(T x) {
    const __m128 a = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    const __m128 b = _mm_max_ps(a, _mm_movehl_ps(a, a));
    return _mm_cvtss_f32(_mm_max_ss(b, _mm_movehdup_ps(b)));
  }
};

}  // namespace

void attention_f32_avx2(const AttentionArgs& args, int64_t begin, int64_t end) {
  attention_items<Avx2Vec8>(args, begin, end);
}

}  // namespace qext::kernels::detail
