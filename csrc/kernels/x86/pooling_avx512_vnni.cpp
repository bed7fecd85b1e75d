// AVX-512 pooling kernels (compiled with the AVX-512 flags), one output
// pixel's window with channels in byte lanes; channel tails through lane
// masks. Max: vpmaxub over the taps, 4 zmm held across them. Average: int32
// sums per channel (vpmovzxbd), then the rounding rule through one float
// division per 16 lanes, exact for the windows float_division_exact admits
// (pooling.h); larger ones take the reference.
#include <immintrin.h>

#include "kernels/x86/avx512_epilogue.h"

namespace qext::kernels::detail {

namespace {

inline __m512i load64(const uint8_t* p) { return _mm512_loadu_si512(p); }

// Channels [c0, c0 + 64 V).
template <int V>
inline void max_block(const PoolWindow& w, int64_t c0, uint8_t* out) {
  __m512i m[V];
  for (int v = 0; v < V; ++v) m[v] = load64(w.first + c0 + 64 * v);
  for_each_tap(w, [&](const uint8_t* p) {
    for (int v = 0; v < V; ++v) m[v] = _mm512_max_epu8(m[v], load64(p + c0 + 64 * v));
  });
  for (int v = 0; v < V; ++v) _mm512_storeu_si512(out + c0 + 64 * v, m[v]);
}

// What the finished lanes share: taps * zero point, the divisor and the zero point.
struct AverageRule {
  __m512i zp_taps, zp;
  __m512 divisor;
  // zero point + round_half_even((sum - taps * zero point) / divisor), in [0, 255]
  __m512i operator()(__m512i sum) const {
    const __m512 num = _mm512_cvtepi32_ps(_mm512_sub_epi32(sum, zp_taps));
    const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_div_ps(num, divisor)), zp);
    return _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(255));
  }
};

// Channels [c0, c0 + lanes), 16 (V - 1) < lanes <= 16 V, all taps in one pass;
// the last vector's missing lanes are masked off.
template <int V>
inline void average_block(const PoolWindow& w, int64_t c0, int64_t lanes, const AverageRule& rule, uint8_t* out) {
  __m512i sum[V];
  __mmask16 mask[V];
  for (int v = 0; v < V; ++v) {
    sum[v] = _mm512_setzero_si512();
    mask[v] = lanes_mask(lanes - kVecCols * v);
  }
  // (whole vectors load unmasked: the masked byte loads made a 32-channel global pool 1.3x slower on Zen 4)
  if (lanes == V * kVecCols) {
    for_each_tap(w, [&](const uint8_t* p) {
      for (int v = 0; v < V; ++v) {
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + c0 + kVecCols * v));
        sum[v] = _mm512_add_epi32(sum[v], _mm512_cvtepu8_epi32(bytes));
      }
    });
  } else {
    for_each_tap(w, [&](const uint8_t* p) {
      for (int v = 0; v < V; ++v)
        sum[v] = _mm512_add_epi32(sum[v], _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask[v], p + c0 + kVecCols * v)));
    });
  }
  if (V == 4 && lanes == 4 * kVecCols) {
    store_u8x64(out + c0, rule(sum[0]), rule(sum[1 % V]), rule(sum[2 % V]), rule(sum[3 % V]));
  } else {
    for (int v = 0; v < V; ++v) store_u8x16(out + c0 + kVecCols * v, mask[v], rule(sum[v]));
  }
}

}  // namespace

void max_window_u8_avx512_vnni(const PoolWindow& w, int64_t n, uint8_t* out) {
  int64_t c = 0;
  for (; c + 256 <= n; c += 256) max_block<4>(w, c, out);
  for (; c + 64 <= n; c += 64) max_block<1>(w, c, out);
  if (c < n) {
    const __mmask64 mask = (__mmask64{1} << (n - c)) - 1;  // n - c < 64
    __m512i m = _mm512_maskz_loadu_epi8(mask, w.first + c);
    for_each_tap(w, [&](const uint8_t* p) { m = _mm512_max_epu8(m, _mm512_maskz_loadu_epi8(mask, p + c)); });
    _mm512_mask_storeu_epi8(out + c, mask, m);
  }
}

void avg_window_u8_avx512_vnni(const PoolWindow& w, int64_t n, int32_t zero_point, int64_t divisor, uint8_t* out) {
  if (!float_division_exact(w.taps(), zero_point, divisor))
    return avg_window_u8_ref(w, n, zero_point, divisor, out);
  const AverageRule rule{_mm512_set1_epi32(static_cast<int32_t>(w.taps()) * zero_point),
                         _mm512_set1_epi32(zero_point), _mm512_set1_ps(static_cast<float>(divisor))};
  int64_t c = 0;
  for (; c + 64 <= n; c += 64) average_block<4>(w, c, 64, rule, out);
  // the rest in one more pass over the taps
  switch ((n - c + kVecCols - 1) / kVecCols) {
    case 4: average_block<4>(w, c, n - c, rule, out); break;
    case 3: average_block<3>(w, c, n - c, rule, out); break;
    case 2: average_block<2>(w, c, n - c, rule, out); break;
    case 1: average_block<1>(w, c, n - c, rule, out); break;
    default: break;
  }
}

}  // namespace qext::kernels::detail
