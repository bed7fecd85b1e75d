#include "kernels/pooling.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

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

// 16 bytes as one SSE2 / NEON register (GCC vector extension).
using Bytes16 = uint8_t __attribute__((vector_size(16)));

inline Bytes16 load16(const uint8_t* p) {
  Bytes16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// out[0, n) = max over taps[0, count) of taps[t][0, n): 64 channels at a time
// held in registers across the taps (reading `out` back per tap was 3x slower).
void max_of_taps(const uint8_t* const* taps, int64_t count, int64_t n, uint8_t* out) {
  int64_t c0 = 0;
  for (; c0 + 64 <= n; c0 += 64) {
    Bytes16 m[4];
    for (int v = 0; v < 4; ++v) m[v] = load16(taps[0] + c0 + 16 * v);
    for (int64_t t = 1; t < count; ++t) {
      for (int v = 0; v < 4; ++v) {
        const Bytes16 p = load16(taps[t] + c0 + 16 * v);
        m[v] = m[v] > p ? m[v] : p;
      }
    }
    std::memcpy(out + c0, m, sizeof m);
  }
  for (; c0 < n; ++c0) {
    uint8_t m = taps[0][c0];
    for (int64_t t = 1; t < count; ++t) m = m > taps[t][c0] ? m : taps[t][c0];
    out[c0] = m;
  }
}

// avg_pool2d_u8 with sums of type Acc (int32 where 255 * taps fits it).
template <typename Acc>
void avg_pool2d_sums(const uint8_t* in, const NhwcShape& s, const PoolAxis& rows, const PoolAxis& cols,
                     int64_t divisor_override, int32_t zero_point, uint8_t* out, int64_t row_begin,
                     int64_t row_end) {
  const int64_t c = s.c, oh = rows.size(), ow = cols.size();
  std::vector<Acc> sum(static_cast<size_t>(c));
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / oh, oy = row % oh;
    for (int64_t ox = 0; ox < ow; ++ox) {
      std::fill(sum.begin(), sum.end(), Acc{0});
      int64_t taps = 0;
      for (int64_t y = rows.begin[oy]; y < rows.end[oy]; ++y) {
        for (int64_t x = cols.begin[ox]; x < cols.end[ox]; ++x, ++taps) {
          const uint8_t* p = in + ((n * s.h + y) * s.w + x) * c;
          for (int64_t ch = 0; ch < c; ++ch) sum[ch] += p[ch];
        }
      }
      const int64_t divisor = divisor_override > 0 ? divisor_override : rows.divisor[oy] * cols.divisor[ox];
      uint8_t* o = out + (row * ow + ox) * c;
      if (divisor <= 0) {  // a window with no input under it (count_include_pad=False): the value 0
        std::fill(o, o + c, static_cast<uint8_t>(std::clamp<int32_t>(zero_point, 0, 255)));
        continue;
      }
      for (int64_t ch = 0; ch < c; ++ch) {
        const int64_t q =
            zero_point + div_round_half_even_fast(static_cast<int64_t>(sum[ch]) - taps * zero_point, divisor);
        o[ch] = static_cast<uint8_t>(std::clamp<int64_t>(q, 0, 255));
      }
    }
  }
}

}  // namespace

void max_pool2d_u8(const uint8_t* in, const NhwcShape& s, int64_t kh, int64_t kw, int64_t sh,
                   int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t oh, int64_t ow,
                   uint8_t* out, int64_t row_begin, int64_t row_end) {
  const int64_t c = s.c;
  std::vector<const uint8_t*> taps(static_cast<size_t>(kh * kw));
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / oh, oy = row % oh;
    int64_t i0, i1;
    valid_taps(oy * sh - ph, kh, dh, s.h, &i0, &i1);
    for (int64_t ox = 0; ox < ow; ++ox) {
      int64_t j0, j1, count = 0;
      valid_taps(ox * sw - pw, kw, dw, s.w, &j0, &j1);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t y = oy * sh - ph + i * dh;
        for (int64_t j = j0; j < j1; ++j) taps[count++] = in + ((n * s.h + y) * s.w + ox * sw - pw + j * dw) * c;
      }
      uint8_t* o = out + (row * ow + ox) * c;
      if (count == 0) {
        std::fill(o, o + c, uint8_t{0});  // a window wholly in the padding
        continue;
      }
      max_of_taps(taps.data(), count, c, o);
    }
  }
}

void avg_pool2d_u8(const uint8_t* in, const NhwcShape& s, const PoolAxis& rows, const PoolAxis& cols,
                   int64_t divisor_override, int32_t zero_point, uint8_t* out, int64_t row_begin,
                   int64_t row_end) {
  // The most taps a window holds, for the accumulator width: rows and columns
  // are independent, so it is the widest row span times the widest column span.
  auto widest = [](const PoolAxis& a) {
    int64_t w = 0;
    for (int64_t i = 0; i < a.size(); ++i) w = std::max(w, a.end[i] - a.begin[i]);
    return w;
  };
  // int32 sums vectorise twice as wide; 255 * taps must fit them.
  if (widest(rows) * widest(cols) <= std::numeric_limits<int32_t>::max() / 255) {
    avg_pool2d_sums<int32_t>(in, s, rows, cols, divisor_override, zero_point, out, row_begin, row_end);
  } else {
    avg_pool2d_sums<int64_t>(in, s, rows, cols, divisor_override, zero_point, out, row_begin, row_end);
  }
}

}  // namespace qext::kernels
