// The grouped kernel of kernels/grouped.h: the walk over output rows, shared
// by the ISA paths, each of which supplies its multiply-accumulate and
// quantizer and compiles this with its own flags.
#pragma once

#include <vector>

#include "kernels/grouped.h"
#include "kernels/isa_paths.h"
#include "kernels/window_conv_impl.h"

namespace qext::kernels::detail {

// Each path provides the sums of `pixels` consecutive output pixels of one
// row: `origin` is the first window's top-left pixel, the next window starts
// `pixel_step` bytes on, tap t of a window lies `tap_offsets[t]` bytes from
// its start; acc is [pixels][padded_channels()], lanes past the last channel
// hold zeros.
using GroupedMacFn = void (*)(const GroupedWeights& w, const int64_t* tap_offsets, const uint8_t* origin,
                              int64_t pixel_step, int64_t pixels, int32_t* acc);

// The x86 paths' GroupedMacFn: for each lane block, Block<4>::run over the
// row's pixels four at a time (they share each weight load), then the rest.
template <template <int> class Block>
void each_block(const GroupedWeights& w, const int64_t* tap_offsets, const uint8_t* origin, int64_t pixel_step,
                int64_t pixels, int32_t* acc) {
  const int64_t padded = w.padded_channels();
  for (int64_t b = 0; b < w.blocks(); ++b) {
    const uint8_t* window = origin + w.window_start[b];
    int64_t p = 0;
    for (; p + 4 <= pixels; p += 4) Block<4>::run(w, tap_offsets, window + p * pixel_step, pixel_step, b, acc + p * padded);
    const uint8_t* rest = window + p * pixel_step;
    int32_t* rest_acc = acc + p * padded;
    switch (pixels - p) {
      case 3: Block<3>::run(w, tap_offsets, rest, pixel_step, b, rest_acc); break;
      case 2: Block<2>::run(w, tap_offsets, rest, pixel_step, b, rest_acc); break;
      case 1: Block<1>::run(w, tap_offsets, rest, pixel_step, b, rest_acc); break;
      default: break;
    }
  }
}

template <GroupedMacFn kMacs, QuantizeU8Fn kQuantize>
void grouped_rows(const GroupedArgs& a, int64_t row_begin, int64_t row_end) {
  const GroupedWeights& w = *a.weights;
  const int64_t c = a.channels, padded = w.padded_channels();
  std::vector<int64_t> tap_offsets(static_cast<size_t>(a.kh * a.kw));
  for (int64_t i = 0; i < a.kh; ++i)
    for (int64_t j = 0; j < a.kw; ++j) tap_offsets[i * a.kw + j] = (i * a.dh * a.wp + j * a.dw) * c;
  std::vector<int32_t> acc(static_cast<size_t>(a.ow * padded));
  RowRequantizer<kQuantize> requantize(a, w.sums.data());
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / a.oh, oy = row % a.oh;
    const uint8_t* origin = a.image + (n * a.hp + oy * a.sh) * a.wp * c;
    kMacs(w, tap_offsets.data(), origin, a.sw * c, a.ow, acc.data());
    requantize(acc.data(), padded, row);
  }
}

}  // namespace qext::kernels::detail
