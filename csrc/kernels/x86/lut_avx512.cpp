// 256-entry byte tables on AVX-512, 64 bytes per step. With VBMI (Ice Lake,
// Sapphire Rapids, Zen 4) two vpermi2b look up the low and high halves of the
// table and bit 7 picks one; without it (Skylake-X, Cascade Lake) sixteen
// 16-entry vpshufb tables, each merged under a mask of the bytes whose high
// nibble selects it. Lookups are exact: both give the scalar loop's bytes.
#include <immintrin.h>

#include "kernels/isa_paths.h"

namespace qext::kernels::detail {

namespace {

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void lut_vbmi(const uint8_t* in, int64_t n,
                                                                        const uint8_t* table, uint8_t* out) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
  const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  for (int64_t i = 0; i < n; i += 64) {
    const __mmask64 tail = n - i >= 64 ? ~__mmask64{0} : (__mmask64{1} << (n - i)) - 1;
    const __m512i x = _mm512_maskz_loadu_epi8(tail, in + i);
    const __m512i low = _mm512_permutex2var_epi8(t0, x, t1);   // entries 0..127 by bits 0-6
    const __m512i high = _mm512_permutex2var_epi8(t2, x, t3);  // entries 128..255
    const __m512i r = _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), low, high);
    _mm512_mask_storeu_epi8(out + i, tail, r);
  }
}

}  // namespace

void lut_u8_avx512_shuffle(const uint8_t* in, int64_t n, const uint8_t* table, uint8_t* out) {
  __m512i sub[16];
  for (int k = 0; k < 16; ++k) {
    sub[k] = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table + 16 * k)));
  }
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  for (int64_t i = 0; i < n; i += 64) {
    const __mmask64 tail = n - i >= 64 ? ~__mmask64{0} : (__mmask64{1} << (n - i)) - 1;
    const __m512i x = _mm512_maskz_loadu_epi8(tail, in + i);
    const __m512i low = _mm512_and_si512(x, nibble);
    const __m512i high = _mm512_and_si512(_mm512_srli_epi16(x, 4), nibble);
    __m512i r = _mm512_setzero_si512();
    for (int k = 0; k < 16; ++k) {
      const __mmask64 pick = _mm512_cmpeq_epi8_mask(high, _mm512_set1_epi8(static_cast<char>(k)));
      r = _mm512_mask_shuffle_epi8(r, pick, sub[k], low);
    }
    _mm512_mask_storeu_epi8(out + i, tail, r);
  }
}

void lut_u8_avx512_vnni(const uint8_t* in, int64_t n, const uint8_t* table, uint8_t* out) {
  static const bool vbmi = __builtin_cpu_supports("avx512vbmi");
  if (vbmi) {
    lut_vbmi(in, n, table, out);
  } else {
    lut_u8_avx512_shuffle(in, n, table, out);
  }
}

// 16 channels per step: each byte's index c * 256 + q, the aligned dword
// holding it gathered and shifted down (never reads past the tables).
void lut_u8_per_channel_avx512_vnni(const uint8_t* in, int64_t pixels, int64_t channels, const uint8_t* tables,
                                    uint8_t* out) {
  const __m512i lane_offset = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(256));
  const __m512i three = _mm512_set1_epi32(3);
  for (int64_t p = 0; p < pixels; ++p, in += channels, out += channels) {
    for (int64_t c = 0; c < channels; c += 16) {
      const __mmask16 tail = channels - c >= 16 ? __mmask16(0xffff) : __mmask16((1u << (channels - c)) - 1);
      const __m512i q = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(tail, in + c));
      const __m512i index = _mm512_add_epi32(_mm512_add_epi32(lane_offset, _mm512_set1_epi32(static_cast<int32_t>(c * 256))), q);
      const __m512i word = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), tail, _mm512_andnot_si512(three, index),
                                                       tables, 1);
      const __m512i value = _mm512_srlv_epi32(word, _mm512_slli_epi32(_mm512_and_si512(index, three), 3));
      _mm_mask_storeu_epi8(out + c, tail, _mm512_cvtepi32_epi8(value));
    }
  }
}

}  // namespace qext::kernels::detail
