// Grouped int8 convolution with a few channels per group (groups > 1 and
// Cin/groups == Cout/groups == G > 1: RegNet's and ResNeXt's 3x3 convs) on
// NHWC uint8 images, output channels in vector lanes. A GEMM per group would
// have G columns: too narrow for the GEMM tiles. Here a block of output
// channels reads, per tap, one window of the pixel's input channels that
// covers all its groups; a per-lane permutation (vpermd) hands each lane the
// inputs of its own group, and the multiply-accumulate is the GEMM's
// (vpdpbusd on AVX-512 VNNI, int16 vpmaddwd on AVX2):
//
//   acc[o] = sum over taps t, j < G of (x[t, g(o) * G + j] - x_zero_point) * w[o, j, t]   (exact int32)
//   out[o] = the GEMM's Uint8 epilogue of acc[o] (kernels/ref/scalar_rules.h)
//
// Torch-free. One walk (kernels/grouped_impl.h) compiled per ISA path; every
// path is bit-identical to the reference.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kernels/isa.h"
#include "kernels/window_conv.h"

namespace qext::kernels {

// The weights of one grouped conv packed for one path.
struct GroupedWeights {
  int64_t channels = 0, group_width = 0, taps = 0;
  int64_t lanes = 0;  // output channels per vector block
  int64_t step = 0;   // input channels per multiply-accumulate word: 4 (int8 x4), 2 (int16 x2), 0 (reference)
  int64_t steps = 0;  // words per tap: group_width / step
  std::vector<int8_t> plain;          // [channels][group_width][taps], the layout of torch's weight
  std::vector<int32_t> words;         // [blocks][taps][steps][lanes]; zero for lanes past `channels`
  std::vector<int32_t> window_start;  // [blocks]: first input channel of the block's window
  std::vector<int32_t> lane_word;     // [blocks][steps][lanes]: the window word each lane multiplies
  std::vector<int32_t> sums;          // [channels]: sum of each output's weights, for the zero point

  int64_t blocks() const { return (channels + lanes - 1) / lanes; }
  int64_t padded_channels() const { return blocks() * lanes; }
};

// Packs w [channels][group_width][taps] (int8) for `isa`; nullopt when that
// path's window cannot cover a block's groups (AVX2: G of 2, 4, 8 or 16 as
// int16 pairs, and with weights within +-64 as bytes where G is a multiple
// of 4 whose blocks span at most 32 channels; AVX-512: G a multiple of 4
// whose blocks span at most 64 channels). The reference path takes every G.
std::optional<GroupedWeights> grouped_pack_weights(const int8_t* w, int64_t channels, int64_t group_width,
                                                   int64_t taps, Isa isa);

struct GroupedArgs : WindowConvArgs {
  const GroupedWeights* weights = nullptr;  // packed for the path the call uses
};

// Output rows [row_begin, row_end) of the n * oh rows, with the given path.
void grouped_conv_u8(const GroupedArgs& args, int64_t row_begin, int64_t row_end, Isa isa);

}  // namespace qext::kernels
