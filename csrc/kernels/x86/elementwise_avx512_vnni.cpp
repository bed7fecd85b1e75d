// AVX-512 element-wise uint8 kernels (compiled with the AVX-512 flags):
// requantizing add and product.
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "kernels/x86/avx512_epilogue.h"

namespace qext::kernels::detail {

void add_requant_u8_avx512_vnni(const uint8_t* a, float sa, int32_t za, const uint8_t* b, float sb,
                                int32_t zb, int64_t n, float so, int32_t zo, bool relu, uint8_t* out) {
  const __m512 vsa = _mm512_set1_ps(sa), vsb = _mm512_set1_ps(sb);
  const __m512i vza = _mm512_set1_epi32(za), vzb = _mm512_set1_epi32(zb);
  // ReLU is the quantizer's lower clamp (NaN -> 0, as the reference's v > lo ? v : lo).
  const Quantizer16 quantize(so, zo, 0, 255, relu ? 0.0f : -std::numeric_limits<float>::infinity());
  const auto requant16 = [&](__m128i a16, __m128i b16) {
    const __m512i ai = _mm512_cvtepu8_epi32(a16), bi = _mm512_cvtepu8_epi32(b16);
    return quantize(_mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(ai, vza)), vsa),
                                  _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(bi, vzb)), vsb)));
  };
  const auto load16 = [](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    store_u8x64(out + i, requant16(load16(a + i), load16(b + i)), requant16(load16(a + i + 16), load16(b + i + 16)),
                requant16(load16(a + i + 32), load16(b + i + 32)), requant16(load16(a + i + 48), load16(b + i + 48)));
  }
  for (; i < n; i += kVecCols) {
    const __mmask16 mask = lanes_mask(n - i);
    store_u8x16(out + i, mask, requant16(_mm_maskz_loadu_epi8(mask, a + i), _mm_maskz_loadu_epi8(mask, b + i)));
  }
}

namespace {

// One run of `n` products against a vector of `f` per 16 bytes (kScalar
// false) or against f[0] for all.
template <bool kScalar>
void mul_requant_run(const uint8_t* a, __m512 vsa, __m512i vza, const float* f, int64_t n,
                     const Quantizer16& quantize, uint8_t* out) {
  const __m512 f_all = _mm512_set1_ps(f[0]);
  const auto product = [&](int64_t i, __mmask16 mask) {
    const __m512i ai = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, a + i));
    const __m512 fi = kScalar ? f_all : _mm512_maskz_loadu_ps(mask, f + i);
    return quantize(_mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(ai, vza)), vsa), fi));
  };
  constexpr __mmask16 kAll = 0xFFFF;
  int64_t i = 0;
  for (; i + 4 * kVecCols <= n; i += 4 * kVecCols) {
    store_u8x64(out + i, product(i, kAll), product(i + 16, kAll), product(i + 32, kAll), product(i + 48, kAll));
  }
  for (; i < n; i += kVecCols) {
    const __mmask16 mask = lanes_mask(n - i);
    store_u8x16(out + i, mask, product(i, mask));
  }
}

}  // namespace

void mul_requant_u8_avx512_vnni(const uint8_t* a, float sa, int32_t za, const float* f, int64_t f_len, int64_t n,
                                float so, int32_t zo, uint8_t* out) {
  const __m512 vsa = _mm512_set1_ps(sa);
  const __m512i vza = _mm512_set1_epi32(za);
  const Quantizer16 quantize(so, zo, 0, 255);
  if (f_len == 1) return mul_requant_run<true>(a, vsa, vza, f, n, quantize, out);
  for (int64_t r = 0; r < n; r += f_len) {
    mul_requant_run<false>(a + r, vsa, vza, f, std::min(f_len, n - r), quantize, out + r);
  }
}

}  // namespace qext::kernels::detail
