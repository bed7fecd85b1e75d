// The depthwise kernel of kernels/depthwise.h: the walk over output pixels
// (the epilogue is window_conv_impl.h's), shared by the ISA paths (ref, AVX2, AVX-512), each of which
// supplies its multiply-accumulate and its quantizer (bit-identical to
// ref::quantize_one) and compiles this with its own flags.
#pragma once

#include <vector>

#include "kernels/depthwise.h"
#include "kernels/isa_paths.h"
#include "kernels/window_conv_impl.h"

namespace qext::kernels::detail {

// Each path provides the multiply-accumulate of one output pixel:
//   acc[c] = sum over tap pairs p of x_{2p}[c] * w_p[c].lo + x_{2p+1}[c] * w_p[c].hi
// for c in [0, padded channels), `w` the weights of two taps interleaved as
// int16 pairs ([pair][padded channels] int32 words), the accumulators in
// registers across the taps. Channels past the last are read (image slack)
// but multiplied by zero-padded weights.
using DepthwiseMacFn = void (*)(const uint8_t* const* taps, int64_t pairs, const int32_t* w, int64_t padded,
                                int32_t* acc);

template <DepthwiseMacFn kMacs, QuantizeU8Fn kQuantize>
void depthwise_rows(const DepthwiseArgs& a, int64_t row_begin, int64_t row_end) {
  const int64_t c = a.channels, count = a.kh * a.kw, pairs = (count + 1) / 2;
  const int64_t padded = depthwise_padded_channels(c);
  // An odd tap count repeats the last tap (its pair weight is zero).
  std::vector<const uint8_t*> taps(static_cast<size_t>(2 * pairs));
  std::vector<int32_t> acc(static_cast<size_t>(a.ow * padded));
  RowRequantizer<kQuantize> requantize(a, a.weight_sums);
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / a.oh, oy = row % a.oh;
    const uint8_t* image = a.image + n * a.hp * a.wp * c;
    for (int64_t ox = 0; ox < a.ow; ++ox) {
      for (int64_t i = 0; i < a.kh; ++i) {
        const uint8_t* line = image + ((oy * a.sh + i * a.dh) * a.wp + ox * a.sw) * c;
        for (int64_t j = 0; j < a.kw; ++j) taps[i * a.kw + j] = line + j * a.dw * c;
      }
      if (count % 2) taps[count] = taps[count - 1];
      kMacs(taps.data(), pairs, a.weights, padded, acc.data() + ox * padded);
    }
    requantize(acc.data(), padded, row);
  }
}

}  // namespace qext::kernels::detail
