// Byte tables on AVX2. One table: AVX2 has no byte permute over more than 16
// entries, so each 32 bytes are looked up by their low nibble in all sixteen
// 16-entry rows of the table (vpshufb), and the high nibble's four bits pick
// among them in a tree of byte blends (8 + 4 + 2 + 1 vpblendvb, each on bit 7
// after a shift). Tables per channel: 8 channels per step, each byte's index
// c * 256 + q, the aligned dword holding it gathered and shifted down (never
// reads past the tables). Exact: the scalar loop's bytes.
#include <immintrin.h>

#include <cstring>

#include "kernels/isa_paths.h"

namespace qext::kernels::detail {

void lut_u8_avx2(const uint8_t* in, int64_t n, const uint8_t* table, uint8_t* out) {
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i));
    const __m256i low = _mm256_and_si256(x, nibble);
    // Table row r (entries 16r..16r+15) in both 128-bit lanes, looked up by
    // the low nibble.
    const auto row = [&](int r) {
      return _mm256_shuffle_epi8(
          _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table + 16 * r))), low);
    };
    // Bit b of the high nibble (bit 4 + b of x) moved to bit 7, where vpblendvb looks.
    const __m256i bit0 = _mm256_slli_epi16(x, 3), bit1 = _mm256_slli_epi16(x, 2), bit2 = _mm256_slli_epi16(x, 1);
    __m256i by2[4];
    for (int r4 = 0; r4 < 4; ++r4) {
      const __m256i a = _mm256_blendv_epi8(row(4 * r4), row(4 * r4 + 1), bit0);
      const __m256i b = _mm256_blendv_epi8(row(4 * r4 + 2), row(4 * r4 + 3), bit0);
      by2[r4] = _mm256_blendv_epi8(a, b, bit1);
    }
    const __m256i lo = _mm256_blendv_epi8(by2[0], by2[1], bit2), hi = _mm256_blendv_epi8(by2[2], by2[3], bit2);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_blendv_epi8(lo, hi, x));
  }
  lut_u8_ref(in + i, n - i, table, out + i);
}

void lut_u8_per_channel_avx2(const uint8_t* in, int64_t pixels, int64_t channels, const uint8_t* tables,
                             uint8_t* out) {
  const __m256i lane_offset = _mm256_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792);
  const __m256i three = _mm256_set1_epi32(3);
  const __m256i pack = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const int64_t whole = channels / 8 * 8;
  for (int64_t p = 0; p < pixels; ++p, in += channels, out += channels) {
    for (int64_t c = 0; c < whole; c += 8) {
      int64_t eight;
      std::memcpy(&eight, in + c, 8);
      const __m256i q = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(eight));
      const __m256i index = _mm256_add_epi32(_mm256_add_epi32(lane_offset, _mm256_set1_epi32(static_cast<int32_t>(c * 256))), q);
      const __m256i word = _mm256_i32gather_epi32(reinterpret_cast<const int*>(tables),
                                                  _mm256_andnot_si256(three, index), 1);
      const __m256i value = _mm256_shuffle_epi8(_mm256_srlv_epi32(word, _mm256_slli_epi32(_mm256_and_si256(index, three), 3)), pack);
      const uint32_t lo = static_cast<uint32_t>(_mm256_extract_epi32(value, 0));
      const uint32_t hi = static_cast<uint32_t>(_mm256_extract_epi32(value, 4));
      std::memcpy(out + c, &lo, 4);
      std::memcpy(out + c + 4, &hi, 4);
    }
    for (int64_t c = whole; c < channels; ++c) out[c] = tables[c * 256 + in[c]];
  }
}

}  // namespace qext::kernels::detail
