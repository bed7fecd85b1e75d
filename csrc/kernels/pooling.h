// Pooling on uint8 NHWC data for static quantization. Pooling keeps the input's
// (scale, zero point), so max pooling is exact and average pooling rounds once:
//   out = zero_point + round_half_even(sum over the window of (q - zero_point) / divisor),
// clamped to [0, 255]; taps in the padding count as real 0 (q = zero_point).
// The window arithmetic lives here; the per-window channel loops are kernel
// table entries (a portable reference, AVX2 and AVX-512 files), exact on
// every path.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/isa.h"

namespace qext::kernels {

// One output pixel's taps: rows x cols (>= 1 each) input pixels of NHWC
// channels, the first at `first`, the next one across `col_step` bytes on and
// the next one down `row_step` bytes on.
struct PoolWindow {
  const uint8_t* first;
  int64_t rows, cols, row_step, col_step;
  int64_t taps() const { return rows * cols; }
  // The same taps from channel c on.
  PoolWindow from_channel(int64_t c) const { return {first + c, rows, cols, row_step, col_step}; }
};

// Calls f(tap) with each tap's first channel, row by row.
template <class F>
inline void for_each_tap(const PoolWindow& w, F&& f) {
  const uint8_t* row = w.first;
  for (int64_t i = 0; i < w.rows; ++i, row += w.row_step) {
    const uint8_t* tap = row;
    for (int64_t j = 0; j < w.cols; ++j, tap += w.col_step) f(tap);
  }
}

struct NhwcShape {
  int64_t n, h, w, c;
};

// For each output row (or column): the input range [begin, end) it reads,
// already clipped to the input, and its factor of the divisor.
struct PoolAxis {
  std::vector<int64_t> begin, end, divisor;
  int64_t size() const { return static_cast<int64_t>(begin.size()); }
};

// Windows of avg_pool2d along one axis (PyTorch's rules: windows are clipped
// to the padded input for the divisor when count_include_pad, to the input
// otherwise).
PoolAxis avg_pool_axis(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad,
                       bool count_include_pad);
// Windows of adaptive_avg_pool2d: [floor(o * in / out), ceil((o + 1) * in / out)).
PoolAxis adaptive_pool_axis(int64_t in, int64_t out);

// Output size of a pooling window along one axis (PyTorch's formula, ceil_mode included).
int64_t pooled_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                    bool ceil_mode);

// out [n, oh, ow, c] = max over the in-bounds taps y = oy * sh - ph + i * dh
// (same for x). Computes the output rows [row_begin, row_end) of the n * oh
// rows, so callers can split the work.
void max_pool2d_u8(const uint8_t* in, const NhwcShape& s, int64_t kh, int64_t kw, int64_t sh,
                   int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t oh, int64_t ow,
                   uint8_t* out, int64_t row_begin, int64_t row_end, Isa isa);

// out [n, rows.size(), cols.size(), c]; divisor = rows.divisor[oy] * cols.divisor[ox]
// unless divisor_override > 0. Output rows [row_begin, row_end) of n * oh.
void avg_pool2d_u8(const uint8_t* in, const NhwcShape& s, const PoolAxis& rows, const PoolAxis& cols,
                   int64_t divisor_override, int32_t zero_point, uint8_t* out, int64_t row_begin,
                   int64_t row_end, Isa isa);

// round_half_even(num / den) for den > 0, in integers (the rule).
int64_t div_round_half_even(int64_t num, int64_t den);

// The same through one double division, several times cheaper than an
// integer one. Equal to the rule while |num| < 2^44 (every pooling window):
// a quotient that is not a tie lies at least 1/(2 den) from one, far more than
// the division's error |num / den| * 2^-53, and ties are exact in double.
inline int64_t div_round_half_even_fast(int64_t num, int64_t den) {
  return static_cast<int64_t>(std::nearbyint(static_cast<double>(num) / static_cast<double>(den)));
}

// The same through one float division, what the vector paths run lane by
// lane. Equal to the rule while |num| < 2^23 and den < 2^24 (both exact in
// float): a quotient that is not a tie lies at least 1/(2 den) from one, more
// than the division's error |num / den| * 2^-24, and ties are exact in float.
// Windows of at most kFloatDivisionTaps taps, with a zero point in [0, 255],
// keep |num| = |sum - taps * zero point| <= 255 * taps there.
constexpr int64_t kFloatDivisionTaps = ((int64_t{1} << 23) - 1) / 255;
constexpr int64_t kFloatDivisionDivisor = (int64_t{1} << 24) - 1;
inline bool float_division_exact(int64_t taps, int32_t zero_point, int64_t den) {
  return taps <= kFloatDivisionTaps && zero_point >= 0 && zero_point <= 255 && den <= kFloatDivisionDivisor;
}
inline int32_t div_round_half_even_float(int32_t num, int32_t den) {
  return static_cast<int32_t>(std::nearbyint(static_cast<float>(num) / static_cast<float>(den)));
}

}  // namespace qext::kernels
