// The grouped kernel of kernels/grouped.h: the walk over output rows, shared
// by the ISA paths, each of which supplies its multiply-accumulate and
// quantizer and compiles this with its own flags.
#pragma once

#include <stdexcept>
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

// The x86 paths' Block for each_block: `kPixels` pixels of lane block b,
// from a path's Chain, which supplies its vector type Vec, kLanes output
// lanes per vector and zero(), load(pixel bytes: the window), words(int32
// words), permute(x, index: each lane's input word), mac(sum, x, w) and
// store(int32*, sum). Chains are named per path (see each_block's note).
template <class Chain>
struct BlockPixels {
  template <int kPixels>
  struct Run {
    static void run(const GroupedWeights& w, const int64_t* tap_offsets, const uint8_t* window, int64_t pixel_step,
                    int64_t b, int32_t* acc) {
      using Vec = typename Chain::Vec;
      constexpr int64_t kLanes = Chain::kLanes;
      const int64_t padded = w.padded_channels(), steps = w.steps;
      const int32_t* words = w.words.data() + b * w.taps * steps * kLanes;
      const int32_t* lane_word = w.lane_word.data() + b * steps * kLanes;
      Vec sum[kPixels];
      for (int p = 0; p < kPixels; ++p) sum[p] = Chain::zero();
      for (int64_t t = 0; t < w.taps; ++t) {
        Vec x[kPixels];
        for (int p = 0; p < kPixels; ++p) x[p] = Chain::load(window + tap_offsets[t] + p * pixel_step);
        for (int64_t s = 0; s < steps; ++s) {
          const Vec index = Chain::words(lane_word + s * kLanes);
          const Vec wv = Chain::words(words + (t * steps + s) * kLanes);
          for (int p = 0; p < kPixels; ++p) sum[p] = Chain::mac(sum[p], Chain::permute(x[p], index), wv);
        }
      }
      for (int p = 0; p < kPixels; ++p) Chain::store(acc + p * padded + b * kLanes, sum[p]);
    }
  };
};

template <GroupedMacFn kMacs, class Requantizer>
void grouped_rows(const GroupedArgs& a, int64_t row_begin, int64_t row_end) {
  const GroupedWeights& w = *a.weights;
  if (a.pad_h != 0 || a.pad_w != 0) throw std::invalid_argument("qext: grouped convs read padded images (pad_h, pad_w = 0)");
  const int64_t c = a.channels, padded = w.padded_channels();
  std::vector<int64_t> tap_offsets(static_cast<size_t>(a.kh * a.kw));
  for (int64_t i = 0; i < a.kh; ++i)
    for (int64_t j = 0; j < a.kw; ++j) tap_offsets[i * a.kw + j] = (i * a.dh * a.wp + j * a.dw) * c;
  std::vector<int32_t> acc(static_cast<size_t>(a.ow * padded));
  Requantizer requantize(a, w.sums.data(), padded);
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / a.oh, oy = row % a.oh;
    const uint8_t* origin = a.image + (n * a.hp + oy * a.sh) * a.wp * c;
    kMacs(w, tap_offsets.data(), origin, a.sw * c, a.ow, acc.data());
    requantize(acc.data(), padded, row);
  }
}

}  // namespace qext::kernels::detail
