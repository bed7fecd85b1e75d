// The depthwise kernel, AVX-512 VNNI path (ColumnQuads, any int8 weights).
// Per output row and 64-lane block: the bytes of four kernel rows at each
// image column are interleaved once (byte, then word unpacks within 128-bit
// lanes: 8 shuffles per column and row quad) into a small L1 buffer; every
// output pixel then takes one vpdpbusd per 16 lanes per kernel column and
// row quad from it (u8 x s8 into int32, exact: the non-saturating form),
// and a 4x4 transpose of 128-bit lanes puts its sums back in channel order.
// Interleaving per tap and pixel instead (the tap-quad layout) cost 8
// shuffles per 4 taps and pixel, and the shuffles were the bottleneck.
#include <immintrin.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernels/aligned_buffer.h"
#include "kernels/depthwise.h"
#include "kernels/x86/avx512_row_requantizer.h"

namespace qext::kernels::detail {

namespace {

// The four interleaved vectors of one image column for one row quad: the
// 64-lane block of each row's pixel bytes at `at` (rows[i] null: a row past
// the kernel's last, read as zeros), lanes past `bytes` zero.
inline void interleave_column(const uint8_t* const* rows, int64_t at, __mmask64 bytes, __m512i* out) {
  __m512i x[4];
  for (int i = 0; i < 4; ++i) x[i] = rows[i] ? _mm512_maskz_loadu_epi8(bytes, rows[i] + at) : _mm512_setzero_si512();
  const __m512i lo01 = _mm512_unpacklo_epi8(x[0], x[1]), hi01 = _mm512_unpackhi_epi8(x[0], x[1]);
  const __m512i lo23 = _mm512_unpacklo_epi8(x[2], x[3]), hi23 = _mm512_unpackhi_epi8(x[2], x[3]);
  // out[k]: in 128-bit lane l, lanes 16l+4k..16l+4k+3 of the block, 4 rows each.
  _mm512_store_si512(out + 0, _mm512_unpacklo_epi16(lo01, lo23));
  _mm512_store_si512(out + 1, _mm512_unpackhi_epi16(lo01, lo23));
  _mm512_store_si512(out + 2, _mm512_unpacklo_epi16(hi01, hi23));
  _mm512_store_si512(out + 3, _mm512_unpackhi_epi16(hi01, hi23));
}

// sum[k] (lane l: block lanes 16l+4k..) to `stored` int32 (a multiple of 16)
// in lane order.
inline void store_transposed(const __m512i* sum, int64_t stored, int32_t* out) {
  const __m512i s01_lo = _mm512_shuffle_i32x4(sum[0], sum[1], 0x44), s23_lo = _mm512_shuffle_i32x4(sum[2], sum[3], 0x44);
  const __m512i s01_hi = _mm512_shuffle_i32x4(sum[0], sum[1], 0xee), s23_hi = _mm512_shuffle_i32x4(sum[2], sum[3], 0xee);
  // (explicit stores: a loop over an array of vectors became a rep movsq)
  _mm512_storeu_si512(out, _mm512_shuffle_i32x4(s01_lo, s23_lo, 0x88));
  if (stored > 16) _mm512_storeu_si512(out + 16, _mm512_shuffle_i32x4(s01_lo, s23_lo, 0xdd));
  if (stored > 32) _mm512_storeu_si512(out + 32, _mm512_shuffle_i32x4(s01_hi, s23_hi, 0x88));
  if (stored > 48) _mm512_storeu_si512(out + 48, _mm512_shuffle_i32x4(s01_hi, s23_hi, 0xdd));
}

// One output row's sums for one 64-lane block, from its interleaved image
// columns and the block's weights (64 words per tap word, aligned).
struct PixelRun {
  const __m512i* columns;  // [image column][row quad][4]
  const int32_t* weights;  // [kernel column][row quad][64]
  int64_t kw, quads, sw, dw, ow, group, stored;
  int32_t* acc;  // the block's first lane of pixel 0; pixel stride `padded`
  int64_t padded;
};

// kKw, kQuads: the kernel's columns and row quads when known at compile time
// (then unrolled, the weights kept in registers); 0: read from `r`.
template <int kKw, int kQuads>
void mac_pixels(const PixelRun& r) {
  const int64_t kw = kKw ? kKw : r.kw, quads = kQuads ? kQuads : r.quads;
  for (int64_t ox = 0; ox < r.ow; ox += r.group) {
    const int64_t first = std::min(ox, r.ow - r.group);
    __m512i sum[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma GCC unroll 8
    for (int64_t j = 0; j < kw; ++j) {
      const __m512i* col = r.columns + (first * r.sw + j * r.dw) * quads * 4;
#pragma GCC unroll 2
      for (int64_t q = 0; q < quads; ++q) {
        const int32_t* wq = r.weights + (j * quads + q) * 64;
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k)
          sum[k] = _mm512_dpbusd_epi32(sum[k], _mm512_load_si512(col + 4 * q + k), _mm512_load_si512(wq + 16 * k));
      }
    }
    store_transposed(sum, r.stored, r.acc + first * r.padded);
  }
}

}  // namespace

void depthwise_u8_avx512_vnni(const DepthwiseArgs& a, int64_t row_begin, int64_t row_end) {
  const DepthwiseWeights& w = *a.weights;
  if (w.layout() != DepthwiseLayout::ColumnQuads || w.block != 64 || w.channels != a.channels || w.kh != a.kh ||
      w.kw != a.kw)
    throw std::invalid_argument("qext: depthwise weights packed for another path or shape");
  const int64_t c = a.channels, padded = depthwise_padded_channels(c), quads = w.row_quads();
  // Pixels per block (16 or 32 channels at stride 1): lane L of a block is
  // channel L % c of pixel ox + L / c, and a block at column x reads pixels
  // x.. at once. A row whose width is not a multiple recomputes its last
  // group over pixels already done (same values).
  const int64_t group = w.pixels_per_block() > 1 && a.sw == 1 && a.ow >= w.pixels_per_block() ? w.pixels_per_block() : 1;
  const int64_t lanes = group * padded, blocks = (lanes + 63) / 64;
  const int64_t columns = (a.ow - group) * a.sw + (a.kw - 1) * a.dw + 1;  // image columns the windows start in
  AlignedBuffer<int32_t> buffer(static_cast<size_t>(columns * quads * 4 * 16));  // (vectors: 64-byte aligned)
  auto* interleaved = reinterpret_cast<__m512i*>(buffer.data());
  std::vector<int32_t> acc(static_cast<size_t>(a.ow * padded));
  std::vector<const uint8_t*> rows(static_cast<size_t>(4 * quads));
  AlignedBuffer<int32_t> block_weights(static_cast<size_t>(w.tap_words() * 64));
  const RowRequantizer16 requantize(a, w.sums.data(), padded);
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / a.oh, oy = row % a.oh;
    const uint8_t* image = a.image + n * a.hp * a.wp * c;
    for (int64_t i = 0; i < 4 * quads; ++i) rows[i] = i < a.kh ? image + (oy * a.sh + i * a.dh) * a.wp * c : nullptr;
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t at = 64 * b, stored = std::min<int64_t>(64, lanes - at);
      const __mmask64 bytes = stored >= 64 ? ~__mmask64{0} : (__mmask64{1} << stored) - 1;
      for (int64_t x = 0; x < columns; ++x)
        for (int64_t q = 0; q < quads; ++q)
          interleave_column(rows.data() + 4 * q, x * c + at, bytes, interleaved + (x * quads + q) * 4);
      // The block's weights, copied to aligned memory (the packed words'
      // vector is not 64-byte aligned, and split loads doubled their cost).
      for (int64_t word = 0; word < w.tap_words(); ++word)
        std::copy_n(w.words.data() + word * w.word_stride() + at, 64, block_weights.data() + word * 64);
      const PixelRun run{interleaved, block_weights.data(), a.kw, quads, a.sw, a.dw, a.ow, group, stored,
                         acc.data() + at, padded};
      if (a.kw == 3 && quads == 1) mac_pixels<3, 1>(run);  // 3x3 (MobileNet, EfficientNet)
      else if (a.kw == 5 && quads == 2) mac_pixels<5, 2>(run);  // 5x5 (EfficientNet)
      else if (a.kw == 7 && quads == 2) mac_pixels<7, 2>(run);  // 7x7 (ConvNeXt)
      else mac_pixels<0, 0>(run);
    }
    requantize(acc.data(), padded, row);
  }
}

}  // namespace qext::kernels::detail
