// The depthwise kernel, AVX-512 VNNI path (TapQuads, any int8 weights): four
// taps' pixel bytes interleaved by byte unpacks within 128-bit lanes, one
// vpdpbusd per 16 channels x 4 taps (u8 x s8 into int32, exact: the
// non-saturating form); 64 channels in four zmm accumulators, put back in
// channel order by a 4x4 transpose of 128-bit lanes once per pixel.
#include <immintrin.h>

#include <algorithm>

#include "kernels/depthwise_impl.h"

namespace qext::kernels::detail {

namespace {

// Channels [c, c + stored) (stored a multiple of 16, at most 64) of the
// 64-channel block at c; pixel bytes past `stored` are not read.
void quad_block(const uint8_t* const* taps, int64_t quads, const int32_t* w, int64_t stride, int64_t c,
                int64_t stored, int32_t* acc) {
  const __mmask64 bytes = stored >= 64 ? ~__mmask64{0} : (__mmask64{1} << stored) - 1;
  // sum[k]: in 128-bit lane l, channels 16l+4k..16l+4k+3.
  __m512i sum[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
  for (int64_t p = 0; p < quads; ++p) {
    const uint8_t* const* t = taps + 4 * p;
    const __m512i x0 = _mm512_maskz_loadu_epi8(bytes, t[0] + c), x1 = _mm512_maskz_loadu_epi8(bytes, t[1] + c);
    const __m512i x2 = _mm512_maskz_loadu_epi8(bytes, t[2] + c), x3 = _mm512_maskz_loadu_epi8(bytes, t[3] + c);
    const __m512i lo01 = _mm512_unpacklo_epi8(x0, x1), hi01 = _mm512_unpackhi_epi8(x0, x1);
    const __m512i lo23 = _mm512_unpacklo_epi8(x2, x3), hi23 = _mm512_unpackhi_epi8(x2, x3);
    const int32_t* wp = w + p * stride + c;
    sum[0] = _mm512_dpbusd_epi32(sum[0], _mm512_unpacklo_epi16(lo01, lo23), _mm512_loadu_si512(wp));
    sum[1] = _mm512_dpbusd_epi32(sum[1], _mm512_unpackhi_epi16(lo01, lo23), _mm512_loadu_si512(wp + 16));
    sum[2] = _mm512_dpbusd_epi32(sum[2], _mm512_unpacklo_epi16(hi01, hi23), _mm512_loadu_si512(wp + 32));
    sum[3] = _mm512_dpbusd_epi32(sum[3], _mm512_unpackhi_epi16(hi01, hi23), _mm512_loadu_si512(wp + 48));
  }
  // Lane l of the output vector for channels 16j.. is sum[l]'s lane j.
  const __m512i s01_lo = _mm512_shuffle_i32x4(sum[0], sum[1], 0x44), s23_lo = _mm512_shuffle_i32x4(sum[2], sum[3], 0x44);
  const __m512i s01_hi = _mm512_shuffle_i32x4(sum[0], sum[1], 0xee), s23_hi = _mm512_shuffle_i32x4(sum[2], sum[3], 0xee);
  // (explicit stores: a loop over an array of vectors became a rep movsq)
  _mm512_storeu_si512(acc + c, _mm512_shuffle_i32x4(s01_lo, s23_lo, 0x88));
  if (stored > 16) _mm512_storeu_si512(acc + c + 16, _mm512_shuffle_i32x4(s01_lo, s23_lo, 0xdd));
  if (stored > 32) _mm512_storeu_si512(acc + c + 32, _mm512_shuffle_i32x4(s01_hi, s23_hi, 0x88));
  if (stored > 48) _mm512_storeu_si512(acc + c + 48, _mm512_shuffle_i32x4(s01_hi, s23_hi, 0xdd));
}

void quad_macs(const uint8_t* const* taps, int64_t quads, const int32_t* w, int64_t stride, int64_t padded,
               int32_t* acc) {
  for (int64_t c = 0; c < padded; c += 64) quad_block(taps, quads, w, stride, c, std::min<int64_t>(64, padded - c), acc);
}

}  // namespace

void depthwise_u8_avx512_vnni(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  depthwise_rows<4, quad_macs, quantize_u8_avx512_vnni>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
