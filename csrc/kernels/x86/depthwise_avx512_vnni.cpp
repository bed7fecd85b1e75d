// The depthwise kernel, AVX-512 VNNI path: the ColumnQuads walk
// (depthwise_columns_impl.h) on 64 byte lanes, one vpdpbusd per 16 channels
// x 4 kernel rows (u8 x s8 into int32, exact: the non-saturating form), any
// int8 weights; the epilogue in one pass (VectorRowRequantizer).
#include <immintrin.h>

#include "kernels/depthwise_columns_impl.h"
#include "kernels/window_conv_impl.h"
#include "kernels/x86/avx512_epilogue.h"
#include "kernels/x86/column_quads_256.h"

namespace qext::kernels::detail {

namespace {

struct Avx512ColumnOps {
  using Vec = __m512i;
  using Requantizer = VectorRowRequantizer<Avx512RowLanes>;
  static constexpr int64_t kLanes = 64;

  static Vec zero() { return _mm512_setzero_si512(); }
  static Vec load(const uint8_t* p, int64_t bytes) {
    return _mm512_maskz_loadu_epi8(bytes >= 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1, p);
  }
  static void interleave(const Vec* x, Vec* out) {
    const Vec lo01 = _mm512_unpacklo_epi8(x[0], x[1]), hi01 = _mm512_unpackhi_epi8(x[0], x[1]);
    const Vec lo23 = _mm512_unpacklo_epi8(x[2], x[3]), hi23 = _mm512_unpackhi_epi8(x[2], x[3]);
    _mm512_store_si512(out + 0, _mm512_unpacklo_epi16(lo01, lo23));
    _mm512_store_si512(out + 1, _mm512_unpackhi_epi16(lo01, lo23));
    _mm512_store_si512(out + 2, _mm512_unpacklo_epi16(hi01, hi23));
    _mm512_store_si512(out + 3, _mm512_unpackhi_epi16(hi01, hi23));
  }
  static Vec mac(Vec sum, Vec x, Vec w) { return _mm512_dpbusd_epi32(sum, x, w); }
  // Lane l of the output vector for lanes 16j.. is sum[l]'s lane j: a 4x4
  // transpose of 128-bit lanes.
  static void store_sums(const Vec* sum, int64_t stored, int32_t* out) {
    const Vec s01_lo = _mm512_shuffle_i32x4(sum[0], sum[1], 0x44), s23_lo = _mm512_shuffle_i32x4(sum[2], sum[3], 0x44);
    const Vec s01_hi = _mm512_shuffle_i32x4(sum[0], sum[1], 0xee), s23_hi = _mm512_shuffle_i32x4(sum[2], sum[3], 0xee);
    // (explicit stores: a loop over an array of vectors became a rep movsq)
    _mm512_storeu_si512(out, _mm512_shuffle_i32x4(s01_lo, s23_lo, 0x88));
    if (stored > 16) _mm512_storeu_si512(out + 16, _mm512_shuffle_i32x4(s01_lo, s23_lo, 0xdd));
    if (stored > 32) _mm512_storeu_si512(out + 32, _mm512_shuffle_i32x4(s01_hi, s23_hi, 0x88));
    if (stored > 48) _mm512_storeu_si512(out + 48, _mm512_shuffle_i32x4(s01_hi, s23_hi, 0xdd));
  }
};

// The same walk on 32 lanes (AVX-512 VL), for a last block of at most 32
// channels: in the packed layout they sit in the low 256 bits of each
// weight vector, and the byte and word unpacks work within 128-bit lanes
// alike.
struct Avx512HalfColumnOps {
  using Vec = __m256i;
  static constexpr int64_t kLanes = 32;

  static Vec zero() { return _mm256_setzero_si256(); }
  static Vec load(const uint8_t* p, int64_t bytes) {
    return _mm256_maskz_loadu_epi8(bytes >= 32 ? ~__mmask32{0} : (__mmask32{1} << bytes) - 1, p);
  }
  static void interleave(const Vec* x, Vec* out) { interleave_quads_256(x, out); }
  static Vec mac(Vec sum, Vec x, Vec w) { return _mm256_dpbusd_epi32(sum, x, w); }
  static void store_sums(const Vec* sum, int64_t stored, int32_t* out) { store_quad_sums_256(sum, stored, out); }
};

}  // namespace

void depthwise_u8_avx512_vnni(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  depthwise_column_rows<Avx512ColumnOps, Avx512HalfColumnOps>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
