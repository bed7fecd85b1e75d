// The depthwise kernel of kernels/depthwise.h on the TapPairs layout: the
// walk over output pixels, shared by the ref and AVX2 paths, each of which
// supplies its multiply-accumulate and its epilogue (window_conv_impl.h's
// RowRequantizer or VectorRowRequantizer, bit-identical to the scalar rules)
// and compiles this with its own flags.
#pragma once

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
// taps, stored in channel order. Channels past the last are read (image
// slack) but multiplied by zero weights.
using DepthwiseMacFn = void (*)(const uint8_t* const* taps, int64_t words, const int32_t* w, int64_t stride,
                                int64_t padded, int32_t* acc);

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
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / a.oh, oy = row % a.oh;
    const uint8_t* image = a.image + n * a.hp * a.wp * c;
    for (int64_t ox = 0; ox < a.ow; ++ox) {
      for (int64_t i = 0; i < a.kh; ++i) {
        const uint8_t* line = image + ((oy * a.sh + i * a.dh) * a.wp + ox * a.sw) * c;
        for (int64_t j = 0; j < a.kw; ++j) taps[i * a.kw + j] = line + j * a.dw * c;
      }
      for (int64_t t = count; t < kPerWord * words; ++t) taps[t] = taps[count - 1];
      kMacs(taps.data(), words, w.words.data(), w.word_stride(), padded, acc.data() + ox * padded);
    }
    requantize(acc.data(), padded, row);
  }
}

}  // namespace qext::kernels::detail
