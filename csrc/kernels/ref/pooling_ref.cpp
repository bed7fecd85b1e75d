// The reference pooling kernels, one output pixel's window at a time: the
// specification the vector paths are tested against, and the path other
// architectures run (portable GCC vector extensions, SSE2 or NEON).
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/isa_paths.h"

namespace qext::kernels::detail {

namespace {

// 16 bytes as one SSE2 / NEON register (GCC vector extension).
using Bytes16 = uint8_t __attribute__((vector_size(16)));

inline Bytes16 load16(const uint8_t* p) {
  Bytes16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The window's sums per channel in Acc, 64 channels at a time, then the one
// rounding rule.
template <typename Acc>
void average(const PoolWindow& w, int64_t n, int32_t zero_point, int64_t divisor, uint8_t* out) {
  constexpr int64_t kBlock = 64;
  const int64_t taps = w.taps();
  for (int64_t c0 = 0; c0 < n; c0 += kBlock) {
    const int64_t len = std::min(kBlock, n - c0);
    Acc sum[kBlock] = {};
    for_each_tap(w, [&](const uint8_t* p) {
      for (int64_t c = 0; c < len; ++c) sum[c] += p[c0 + c];
    });
    for (int64_t c = 0; c < len; ++c) {
      const int64_t q =
          zero_point + div_round_half_even_fast(static_cast<int64_t>(sum[c]) - taps * zero_point, divisor);
      out[c0 + c] = static_cast<uint8_t>(std::clamp<int64_t>(q, 0, 255));
    }
  }
}

}  // namespace

// 64 channels at a time held in registers across the taps (reading `out`
// back per tap was 3x slower).
void max_window_u8_ref(const PoolWindow& w, int64_t n, uint8_t* out) {
  int64_t c0 = 0;
  for (; c0 + 64 <= n; c0 += 64) {
    Bytes16 m[4];
    for (int v = 0; v < 4; ++v) m[v] = load16(w.first + c0 + 16 * v);
    for_each_tap(w, [&](const uint8_t* p) {
      for (int v = 0; v < 4; ++v) {
        const Bytes16 b = load16(p + c0 + 16 * v);
        m[v] = m[v] > b ? m[v] : b;
      }
    });
    std::memcpy(out + c0, m, sizeof m);
  }
  for (; c0 < n; ++c0) {
    uint8_t m = w.first[c0];
    for_each_tap(w, [&](const uint8_t* p) { m = std::max(m, p[c0]); });
    out[c0] = m;
  }
}

void avg_window_u8_ref(const PoolWindow& w, int64_t n, int32_t zero_point, int64_t divisor, uint8_t* out) {
  // int32 sums vectorise twice as wide; 255 * taps must fit them.
  if (w.taps() <= std::numeric_limits<int32_t>::max() / 255) {
    average<int32_t>(w, n, zero_point, divisor, out);
  } else {
    average<int64_t>(w, n, zero_point, divisor, out);
  }
}

}  // namespace qext::kernels::detail
