// Tables per channel on AVX2: 8 channels per step, each byte's index
// c * 256 + q, the aligned dword holding it gathered and shifted down (never
// reads past the tables). Exact: the scalar loop's bytes.
#include <immintrin.h>

#include <cstring>

#include "kernels/isa_paths.h"

namespace qext::kernels::detail {

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
