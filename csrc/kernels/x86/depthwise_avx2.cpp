// The depthwise kernel, AVX2 path, on either weight layout:
// - ColumnQuads (weights within +-64): the walk of depthwise_columns_impl.h
//   on 32 byte lanes, vpmaddubsw (pair sums of at most 255 * 64 * 2: exact,
//   no saturation) + vpmaddwd by ones into int32, the epilogue in one pass
//   (VectorRowRequantizer);
// - TapPairs (any int8 weights): two taps' bytes widened to int16 pairs,
//   vpmaddwd into int32 (exact); up to 64 channels in eight ymm accumulators;
//   the same one-pass epilogue.
#include <immintrin.h>

#include "kernels/depthwise_columns_impl.h"
#include "kernels/depthwise_impl.h"
#include "kernels/window_conv_impl.h"
#include "kernels/x86/avx2_epilogue.h"
#include "kernels/x86/column_quads_256.h"

namespace qext::kernels::detail {

namespace {

// The ColumnQuads walk's operations on 32 byte lanes: vpmaddubsw (pair sums
// of at most 255 * 64 * 2: exact for weights within +-64) + vpmaddwd by ones
// into int32.
struct Avx2ColumnOps {
  using Vec = __m256i;
  using Requantizer = VectorRowRequantizer<Avx2RowLanes>;
  static constexpr int64_t kLanes = 32;

  static Vec zero() { return _mm256_setzero_si256(); }
  static Vec load(const uint8_t* p, int64_t bytes) {
    return bytes >= 32 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                       : _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static void interleave(const Vec* x, Vec* out) { interleave_quads_256(x, out); }
  static Vec mac(Vec sum, Vec x, Vec w) {
    return _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), _mm256_set1_epi16(1)));
  }
  static void store_sums(const Vec* sum, int64_t stored, int32_t* out) { store_quad_sums_256(sum, stored, out); }
};

// kVectors x 8 channels starting at c.
template <int kVectors>
inline void pair_block(const uint8_t* const* taps, int64_t pairs, const int32_t* w, int64_t stride, int64_t c,
                       int32_t* acc) {
  __m256i sum[kVectors];
  for (int v = 0; v < kVectors; ++v) sum[v] = _mm256_setzero_si256();
  for (int64_t p = 0; p < pairs; ++p) {
    const uint8_t *x0 = taps[2 * p] + c, *x1 = taps[2 * p + 1] + c;
    const int32_t* wp = w + p * stride + c;
    for (int v = 0; v < kVectors; ++v) {
      const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x0 + 8 * v)));
      const __m256i hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x1 + 8 * v)));
      const __m256i x = _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16));
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + 8 * v));
      sum[v] = _mm256_add_epi32(sum[v], _mm256_madd_epi16(x, wv));
    }
  }
  for (int v = 0; v < kVectors; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + c + 8 * v), sum[v]);
}

void pair_macs(const uint8_t* const* taps, int64_t pairs, const int32_t* w, int64_t stride, int64_t padded,
               int32_t* acc) {
  int64_t c = 0;
  for (; c + 64 <= padded; c += 64) pair_block<8>(taps, pairs, w, stride, c, acc);
  switch ((padded - c) / 16) {  // padded is a multiple of 16
    case 3: return pair_block<6>(taps, pairs, w, stride, c, acc);
    case 2: return pair_block<4>(taps, pairs, w, stride, c, acc);
    case 1: return pair_block<2>(taps, pairs, w, stride, c, acc);
    default: return;
  }
}

}  // namespace

void depthwise_u8_avx2(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  if (args.weights->layout() == DepthwiseLayout::ColumnQuads)
    depthwise_column_rows<Avx2ColumnOps>(args, row_begin, row_end);
  else
    depthwise_rows<2, pair_macs, VectorRowRequantizer<Avx2RowLanes>>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
