// The depthwise kernel of kernels/depthwise.h on the TapPairs layout: the
// walk over output pixels, shared by the ref and AVX2 paths, each of which
// supplies its multiply-accumulate and its epilogue (window_conv_impl.h's
// RowRequantizer or VectorRowRequantizer, bit-identical to the scalar rules)
// and compiles this with its own flags.
#pragma once

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernels/depthwise.h"
#include "kernels/isa_paths.h"
#include "kernels/window_conv_impl.h"

namespace qext::kernels::detail {

// Each path provides the multiply-accumulate of one output pixel for a
// weight layout (DepthwiseLayout) holding `per_word` taps per word:
//   acc[c] = sum over tap words p, i < per_word of taps[per_word * p + i][c] * w_p[c].tap(i)
// for c in [0, padded): `words` tap words of `stride` int32 each (weights in
// the layout's channel order), the accumulators in registers across the
// taps, stored in channel order. Channels past the last are read (the next
// pixel's, or TapPixels' zero points) but multiplied by zero weights.
using DepthwiseMacFn = void (*)(const uint8_t* const* taps, int64_t words, const int32_t* w, int64_t stride,
                                int64_t padded, int32_t* acc);

// Where a tap reads its `padded` bytes: the pixel in the image, or, for a
// pixel of the (virtual) padding, a pixel of zero points, and for the image's
// last pixels, whose reads would run past its end, a copy of them followed by
// zero points.
class TapPixels {
 public:
  TapPixels(const WindowConvArgs& a, int64_t padded)
      : a_(a), h_(a.h()), w_(a.w()), c_(a.channels), zero_points_(static_cast<size_t>(padded), static_cast<uint8_t>(a.x_zero_point)) {
    const int64_t total = a.n * h_ * w_ * c_;
    tail_start_ = c_ ? std::max<int64_t>(0, total - padded) / c_ * c_ : 0;
    tail_.assign(static_cast<size_t>(total - tail_start_ + padded), static_cast<uint8_t>(a.x_zero_point));
    std::copy(a.image + tail_start_, a.image + total, tail_.begin());
  }

  // Row y of image n (padded coordinates) where every pixel of it is read
  // in place; nullptr for a row of padding or one with copied pixels.
  const uint8_t* line(int64_t n, int64_t y) const {
    y -= a_.pad_h;
    if (y < 0 || y >= h_ || ((n * h_ + y + 1) * w_ - 1) * c_ >= tail_start_) return nullptr;
    return a_.image + (n * h_ + y) * w_ * c_;
  }

  // Pixel (y, x) of image n, in padded coordinates.
  const uint8_t* operator()(int64_t n, int64_t y, int64_t x) const {
    y -= a_.pad_h, x -= a_.pad_w;
    if (y < 0 || y >= h_ || x < 0 || x >= w_) return zero_points_.data();
    const int64_t at = ((n * h_ + y) * w_ + x) * c_;
    return at >= tail_start_ ? tail_.data() + (at - tail_start_) : a_.image + at;
  }

 private:
  const WindowConvArgs& a_;
  int64_t h_, w_, c_, tail_start_;
  std::vector<uint8_t> zero_points_, tail_;
};

template <int64_t kPerWord, DepthwiseMacFn kMacs, class Requantizer>
void depthwise_rows(const DepthwiseArgs& a, int64_t row_begin, int64_t row_end) {
  const DepthwiseWeights& w = *a.weights;
  if (w.taps_per_word() != kPerWord || w.channels != a.channels || w.taps() != a.kh * a.kw)
    throw std::invalid_argument("qext: depthwise weights packed for another path or shape");
  const int64_t c = a.channels, count = w.taps(), words = w.tap_words();
  const int64_t padded = depthwise_padded_channels(c);
  // Slots past the last tap repeat it (their weights are zero).
  std::vector<const uint8_t*> taps(static_cast<size_t>(kPerWord * words));
  std::vector<int32_t> acc(static_cast<size_t>(a.ow * padded));
  Requantizer requantize(a, w.sums.data(), padded);
  const TapPixels pixel(a, padded);
  std::vector<const uint8_t*> lines(static_cast<size_t>(a.kh));
  // Output columns [ox_lo, ox_hi) have every tap's column inside the image.
  const int64_t ox_lo = (a.pad_w + a.sw - 1) / a.sw, last_x = a.w() - 1 + a.pad_w - (a.kw - 1) * a.dw;
  const int64_t ox_hi = last_x >= 0 ? last_x / a.sw + 1 : 0;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / a.oh, oy = row % a.oh;
    for (int64_t i = 0; i < a.kh; ++i) lines[i] = pixel.line(n, oy * a.sh + i * a.dh);
    for (int64_t ox = 0; ox < a.ow; ++ox) {
      const bool inside = ox >= ox_lo && ox < ox_hi;
      for (int64_t i = 0; i < a.kh; ++i) {
        for (int64_t j = 0; j < a.kw; ++j) {
          const int64_t x = ox * a.sw + j * a.dw;
          taps[i * a.kw + j] = inside && lines[i] ? lines[i] + (x - a.pad_w) * c : pixel(n, oy * a.sh + i * a.dh, x);
        }
      }
      for (int64_t t = count; t < kPerWord * words; ++t) taps[t] = taps[count - 1];
      kMacs(taps.data(), words, w.words.data(), w.word_stride(), padded, acc.data() + ox * padded);
    }
    requantize(acc.data(), padded, row);
  }
}

}  // namespace qext::kernels::detail
