// Depthwise int8 convolution (groups == channels, one filter per channel) on
// NHWC uint8 images, channels in vector lanes. A GEMM per group would have one
// output column: the kernel here runs every tap over a block of channels with
// the accumulators in registers instead.
//
//   acc[c] = sum over taps t of (x[t, c] - x_zero_point) * w[t, c]        (exact int32)
//   out[c] = the GEMM's Uint8 epilogue of acc[c] (kernels/ref/scalar_rules.h)
//
// Torch-free. One implementation (kernels/depthwise_impl.h) compiled once per
// ISA path with that path's flags; integer sums and the scalar epilogue rules
// with no FP contraction make every path bit-identical.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/isa.h"
#include "kernels/window_conv.h"

namespace qext::kernels {

// Channels are processed in whole groups of kDepthwiseChannelGroup: the
// weights are padded with zeros to a multiple of it, and the image must stay
// readable up to that many bytes past its end (the padded copy's slack).
constexpr int64_t kDepthwiseChannelGroup = 16;
inline int64_t depthwise_padded_channels(int64_t channels) {
  return (channels + kDepthwiseChannelGroup - 1) / kDepthwiseChannelGroup * kDepthwiseChannelGroup;
}

struct DepthwiseArgs : WindowConvArgs {
  // Two taps' weights interleaved as int16 pairs, one int32 word per channel:
  // [(kh * kw + 1) / 2][depthwise_padded_channels(channels)] (an odd last tap
  // pairs with zeros). depthwise_pack_weights writes it.
  const int32_t* weights = nullptr;
  const int32_t* weight_sums = nullptr;  // [channels]: sum over taps, for the zero point
};

// Packs w [channels][taps] (int8) into DepthwiseArgs::weights' layout.
std::vector<int32_t> depthwise_pack_weights(const int8_t* w, int64_t channels, int64_t taps);

// Output rows [row_begin, row_end) of the n * oh rows, with the given path.
void depthwise_conv_u8(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end, Isa isa);

}  // namespace qext::kernels
