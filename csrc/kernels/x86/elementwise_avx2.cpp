// AVX2 element-wise uint8 kernels (compiled with -mavx2 -mfma): requantizing
// add, the largest byte.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/x86/avx2_epilogue.h"

namespace qext::kernels::detail {

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

namespace {

// One run of `n` products against a vector of `f` per 8 bytes (kScalar
// false) or against f[0] for all.
template <bool kScalar>
void mul_requant_run(const uint8_t* a, __m256 vsa, __m256i vza, const float* f, int64_t n, const Quantizer8& quantize,
                     uint8_t* out) {
  const __m256 f_all = _mm256_set1_ps(f[0]);
  const auto product = [&](int64_t i) {
    const __m256i ai = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + i)));
    const __m256 fi = kScalar ? f_all : _mm256_loadu_ps(f + i);
    return quantize(_mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ai, vza)), vsa), fi));
  };
  int64_t i = 0;
  for (; i + 4 * kVecCols <= n; i += 4 * kVecCols) {
    store_u8x32(out + i, product(i), product(i + 8), product(i + 16), product(i + 24));
  }
  for (; i + kVecCols <= n; i += kVecCols) store_u8x8(out + i, product(i), kVecCols);
  if (i < n) {  // the last 1-7: a partial vector through a padded copy
    alignas(32) uint8_t a_tail[kVecCols] = {};
    alignas(32) float f_tail[kVecCols] = {};
    std::memcpy(a_tail, a + i, static_cast<size_t>(n - i));
    if (!kScalar) std::memcpy(f_tail, f + i, static_cast<size_t>(n - i) * sizeof(float));
    const __m256i ai = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a_tail)));
    const __m256 fi = kScalar ? f_all : _mm256_load_ps(f_tail);
    store_u8x8(out + i, quantize(_mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ai, vza)), vsa), fi)),
               n - i);
  }
}

}  // namespace

void mul_requant_u8_avx2(const uint8_t* a, float sa, int32_t za, const float* f, int64_t f_len, int64_t n,
                         float so, int32_t zo, uint8_t* out) {
  const __m256 vsa = _mm256_set1_ps(sa);
  const __m256i vza = _mm256_set1_epi32(za);
  const Quantizer8 quantize(so, zo, 0, 255);
  if (f_len == 1) return mul_requant_run<true>(a, vsa, vza, f, n, quantize, out);
  for (int64_t r = 0; r < n; r += f_len) {
    mul_requant_run<false>(a + r, vsa, vza, f, std::min(f_len, n - r), quantize, out + r);
  }
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
