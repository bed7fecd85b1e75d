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
// accumulators of one output pixel are padded to a multiple of it. The
// kernels read whole groups, so past a pixel's last channel; where that would
// leave the image, and in the padding, they read copies (the image needs no
// slack, and its padding is not stored: WindowConvArgs::pad_h, pad_w).
constexpr int64_t kDepthwiseChannelGroup = 16;
inline int64_t depthwise_padded_channels(int64_t channels) {
  return (channels + kDepthwiseChannelGroup - 1) / kDepthwiseChannelGroup * kDepthwiseChannelGroup;
}

// How one int32 weight word holds several taps of one channel.
enum class DepthwiseLayout {
  // Two taps as little-endian int16 (even tap low): [(taps + 1) / 2][padded
  // channels], natural channel order. Any int8 weights: the reference, and
  // AVX2 when a weight is beyond +-64.
  TapPairs,
  // Four kernel rows of one kernel column as int8 bytes (row i of column j
  // in byte i % 4 of tap word j * row_quads + i / 4; zero past the last
  // row): [tap words][blocks of `block` channels][block words], where in a
  // block word k * block / 4 + 4 * l + i holds channel 16 * l + 4 * k + i --
  // the order in which byte unpacks (vpunpck{l,h}bw, then {l,h}wd, within
  // 128-bit lanes) of four rows' pixel bytes leave the channels, so no
  // further shuffle is needed. The interleaved bytes of one image column
  // serve every output pixel whose window covers it
  // (depthwise_columns_impl.h). AVX-512 VNNI (block 64) with any int8
  // weights, vpdpbusd being exact; AVX2 (block 32) with weights within +-64,
  // where vpmaddubsw's pair sums are exact. With 16 or 32 channels the block
  // repeats them (pixels_per_block copies), so one block covers that many
  // pixels.
  ColumnQuads,
};

// The weights of one depthwise conv packed for one path.
struct DepthwiseWeights {
  int64_t channels = 0, kh = 0, kw = 0;
  int64_t block = 0;            // ColumnQuads: channels per block (32 or 64); 0: TapPairs
  std::vector<int32_t> words;   // as layout() says; zero past `channels` and `taps`
  std::vector<int32_t> sums;    // [channels]: each channel's weight sum, for the zero point

  int64_t taps() const { return kh * kw; }
  DepthwiseLayout layout() const { return block ? DepthwiseLayout::ColumnQuads : DepthwiseLayout::TapPairs; }
  // With 16 or 32 channels a block holds this many copies of the
  // channels' weights, so one block computes as many neighbouring pixels
  // (stride 1: their bytes follow each other); 1 otherwise.
  int64_t pixels_per_block() const {
    return block && channels % 16 == 0 && block % channels == 0 ? block / channels : 1;
  }
  int64_t taps_per_word() const { return layout() == DepthwiseLayout::TapPairs ? 2 : 4; }
  int64_t row_quads() const { return (kh + 3) / 4; }
  int64_t tap_words() const { return block ? kw * row_quads() : (taps() + 1) / 2; }
  // int32 words per tap word: padded channels, or whole blocks.
  int64_t word_stride() const {
    return layout() == DepthwiseLayout::TapPairs ? depthwise_padded_channels(channels)
                                               : (channels + block - 1) / block * block;
  }
};

struct DepthwiseArgs : WindowConvArgs {
  const DepthwiseWeights* weights = nullptr;  // packed for the path the call uses
};

// Packs w [channels][kh][kw] (int8) in the layout `isa` reads fastest.
DepthwiseWeights depthwise_pack_weights(const int8_t* w, int64_t channels, int64_t kh, int64_t kw, Isa isa);

// Output rows [row_begin, row_end) of the n * oh rows, with the given path.
void depthwise_conv_u8(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end, Isa isa);

}  // namespace qext::kernels
