// AVX2 pooling kernels (compiled with -mavx2 -mfma), one output pixel's window
// with channels in byte lanes. Max: vpmaxub over the taps, 4 ymm held across
// them. Average: int32 sums per channel (vpmovzxbd), then the rounding rule
// through one float division per 8 lanes, exact for the windows
// float_division_exact admits (pooling.h); larger ones, and channel tails,
// take the reference.
#include <immintrin.h>

#include "kernels/x86/avx2_epilogue.h"

namespace qext::kernels::detail {

namespace {

inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// Channels [c0, c0 + 32 V).
template <int V>
inline void max_block(const PoolWindow& w, int64_t c0, uint8_t* out) {
  __m256i m[V];
  for (int v = 0; v < V; ++v) m[v] = load32(w.first + c0 + 32 * v);
  for_each_tap(w, [&](const uint8_t* p) {
    for (int v = 0; v < V; ++v) m[v] = _mm256_max_epu8(m[v], load32(p + c0 + 32 * v));
  });
  for (int v = 0; v < V; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + c0 + 32 * v), m[v]);
}

// What the finished lanes share: taps * zero point, the divisor and the zero point.
struct AverageRule {
  __m256i zp_taps, zp;
  __m256 divisor;
  // zero point + round_half_even((sum - taps * zero point) / divisor), in [0, 255]
  __m256i operator()(__m256i sum) const {
    const __m256 num = _mm256_cvtepi32_ps(_mm256_sub_epi32(sum, zp_taps));
    const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_div_ps(num, divisor)), zp);
    return _mm256_min_epi32(_mm256_max_epi32(q, _mm256_setzero_si256()), _mm256_set1_epi32(255));
  }
};

// Channels [c0, c0 + 8 V), all taps in one pass.
template <int V>
inline void average_block(const PoolWindow& w, int64_t c0, const AverageRule& rule, uint8_t* out) {
  __m256i sum[V];
  for (int v = 0; v < V; ++v) sum[v] = _mm256_setzero_si256();
  for_each_tap(w, [&](const uint8_t* p) {
    for (int v = 0; v < V; ++v) {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + c0 + 8 * v));
      sum[v] = _mm256_add_epi32(sum[v], _mm256_cvtepu8_epi32(bytes));
    }
  });
  if constexpr (V == 4) {
    store_u8x32(out + c0, rule(sum[0]), rule(sum[1]), rule(sum[2]), rule(sum[3]));
  } else {
    for (int v = 0; v < V; ++v) store_u8x8(out + c0 + 8 * v, rule(sum[v]), kVecCols);
  }
}

}  // namespace

void max_window_u8_avx2(const PoolWindow& w, int64_t n, uint8_t* out) {
  int64_t c = 0;
  for (; c + 128 <= n; c += 128) max_block<4>(w, c, out);
  for (; c + 32 <= n; c += 32) max_block<1>(w, c, out);
  if (c + 16 <= n) {
    const auto load16 = [&](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + c)); };
    __m128i m = load16(w.first);
    for_each_tap(w, [&](const uint8_t* p) { m = _mm_max_epu8(m, load16(p)); });
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c), m);
    c += 16;
  }
  if (c < n) max_window_u8_ref(w.from_channel(c), n - c, out + c);
}

void avg_window_u8_avx2(const PoolWindow& w, int64_t n, int32_t zero_point, int64_t divisor, uint8_t* out) {
  if (!float_division_exact(w.taps(), zero_point, divisor))
    return avg_window_u8_ref(w, n, zero_point, divisor, out);
  const AverageRule rule{_mm256_set1_epi32(static_cast<int32_t>(w.taps()) * zero_point),
                         _mm256_set1_epi32(zero_point), _mm256_set1_ps(static_cast<float>(divisor))};
  int64_t c = 0;
  for (; c + 32 <= n; c += 32) average_block<4>(w, c, rule, out);
  // the rest's whole vectors in one more pass over the taps
  switch ((n - c) / 8) {
    case 3: average_block<3>(w, c, rule, out); break;
    case 2: average_block<2>(w, c, rule, out); break;
    case 1: average_block<1>(w, c, rule, out); break;
    default: break;
  }
  c += (n - c) / 8 * 8;
  if (c < n) avg_window_u8_ref(w.from_channel(c), n - c, zero_point, divisor, out + c);
}

}  // namespace qext::kernels::detail
