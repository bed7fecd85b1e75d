#include "kernels/pooling.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/kernel_table.h"

namespace qext::kernels {

int64_t div_round_half_even(int64_t num, int64_t den) {
  int64_t q = num / den, r = num % den;
  if (r < 0) {  // floor division: num = q * den + r with 0 <= r < den
    q -= 1;
    r += den;
  }
  if (2 * r > den || (2 * r == den && (q & 1))) q += 1;
  return q;
}

int64_t pooled_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                    bool ceil_mode) {
  if (in < 0 || kernel < 1 || stride < 1 || pad < 0 || dilation < 1) {
    throw std::invalid_argument("qext: window needs input >= 0, kernel, stride, dilation >= 1 and padding >= 0");
  }
  // span = in + 2 pad - dilation (kernel - 1) - 1, in checked arithmetic:
  // kernel arguments may come from a tampered file.
  int64_t padded, reach, span;
  if (__builtin_mul_overflow(pad, 2, &padded) || __builtin_add_overflow(in, padded, &padded) ||
      __builtin_mul_overflow(dilation, kernel - 1, &reach) || __builtin_sub_overflow(padded - 1, reach, &span)) {
    throw std::overflow_error("qext: window size arithmetic overflows (input " + std::to_string(in) + ", kernel " +
                              std::to_string(kernel) + ", padding " + std::to_string(pad) + ", dilation " +
                              std::to_string(dilation) + ")");
  }
  if (span < 0) return 0;  // floor division, not truncation: the window does not fit
  int64_t out = (span + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  // The last window must start inside the input or the left padding.
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

PoolAxis avg_pool_axis(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad,
                       bool count_include_pad) {
  PoolAxis a;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t start = o * stride - pad;
    const int64_t end_padded = std::min(start + kernel, in + pad);
    const int64_t begin = std::max<int64_t>(start, 0), end = std::min(end_padded, in);
    a.begin.push_back(begin);
    a.end.push_back(end);
    a.divisor.push_back(count_include_pad ? end_padded - start : end - begin);
  }
  return a;
}

PoolAxis adaptive_pool_axis(int64_t in, int64_t out) {
  PoolAxis a;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t begin = (o * in) / out, end = ((o + 1) * in + out - 1) / out;
    a.begin.push_back(begin);
    a.end.push_back(end);
    a.divisor.push_back(end - begin);
  }
  return a;
}

namespace {

// Range [lo, hi) of taps t with 0 <= start + t * dilation < size.
void valid_taps(int64_t start, int64_t kernel, int64_t dilation, int64_t size, int64_t* lo, int64_t* hi) {
  int64_t t = 0;
  while (t < kernel && start + t * dilation < 0) ++t;
  *lo = t;
  while (t < kernel && start + t * dilation < size) ++t;
  *hi = t;
}

}  // namespace

void max_pool2d_u8(const uint8_t* in, const NhwcShape& s, int64_t kh, int64_t kw, int64_t sh,
                   int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t oh, int64_t ow,
                   uint8_t* out, int64_t row_begin, int64_t row_end, Isa isa) {
  const auto max_window = kernel_table(isa).max_window_u8;
  const int64_t c = s.c;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / oh, oy = row % oh;
    int64_t i0, i1;
    valid_taps(oy * sh - ph, kh, dh, s.h, &i0, &i1);
    for (int64_t ox = 0; ox < ow; ++ox) {
      int64_t j0, j1;
      valid_taps(ox * sw - pw, kw, dw, s.w, &j0, &j1);
      uint8_t* o = out + (row * ow + ox) * c;
      if (i0 == i1 || j0 == j1) {
        std::fill(o, o + c, uint8_t{0});  // a window wholly in the padding
        continue;
      }
      const int64_t y = oy * sh - ph + i0 * dh, x = ox * sw - pw + j0 * dw;
      max_window({in + ((n * s.h + y) * s.w + x) * c, i1 - i0, j1 - j0, dh * s.w * c, dw * c}, c, o);
    }
  }
}

void avg_pool2d_u8(const uint8_t* in, const NhwcShape& s, const PoolAxis& rows, const PoolAxis& cols,
                   int64_t divisor_override, int32_t zero_point, uint8_t* out, int64_t row_begin,
                   int64_t row_end, Isa isa) {
  const auto avg_window = kernel_table(isa).avg_window_u8;
  const int64_t c = s.c, oh = rows.size(), ow = cols.size();
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / oh, oy = row % oh;
    for (int64_t ox = 0; ox < ow; ++ox) {
      const int64_t taps_down = rows.end[oy] - rows.begin[oy], taps_across = cols.end[ox] - cols.begin[ox];
      const int64_t divisor = divisor_override > 0 ? divisor_override : rows.divisor[oy] * cols.divisor[ox];
      uint8_t* o = out + (row * ow + ox) * c;
      if (divisor <= 0 || taps_down <= 0 || taps_across <= 0) {
        // no input under the window: the value 0 (count_include_pad=False
        // gives such a window no divisor either)
        std::fill(o, o + c, static_cast<uint8_t>(std::clamp<int32_t>(zero_point, 0, 255)));
        continue;
      }
      const uint8_t* first = in + ((n * s.h + rows.begin[oy]) * s.w + cols.begin[ox]) * c;
      avg_window({first, taps_down, taps_across, s.w * c, c}, c, zero_point, divisor, o);
    }
  }
}

}  // namespace qext::kernels
