#include "kernels/depthwise.h"

#include <cstdlib>

#include "kernels/kernel_table.h"

namespace qext::kernels {

namespace {

// ColumnQuads' block for `isa`: 64 on AVX-512, 32 on AVX2 when its kernel
// takes these weights; 0 (TapPairs) otherwise.
int64_t quad_block(const int8_t* w, int64_t count, Isa isa) {
  if (isa == Isa::Avx512Vnni || isa == Isa::Amx) return 64;
  if (isa != Isa::Avx2) return 0;
  for (int64_t i = 0; i < count; ++i)
    if (std::abs(int{w[i]}) > 64) return 0;  // vpmaddubsw's pair sums could saturate
  return 32;
}

}  // namespace

DepthwiseWeights depthwise_pack_weights(const int8_t* w, int64_t channels, int64_t kh, int64_t kw, Isa isa) {
  DepthwiseWeights p;
  p.channels = channels, p.kh = kh, p.kw = kw;
  p.block = quad_block(w, channels * p.taps(), isa);
  const int64_t stride = p.word_stride(), per_word = p.taps_per_word();
  p.words.assign(static_cast<size_t>(p.tap_words() * stride), 0);
  p.sums.assign(static_cast<size_t>(channels), 0);
  // The word of lane `lane` (a channel, or a channel's copy) within a tap word.
  auto slot_of = [&](int64_t lane) {
    if (!p.block) return lane;
    const int64_t in_block = lane % p.block;
    return lane - in_block + (in_block % 16 / 4) * (p.block / 4) + in_block / 16 * 4 + in_block % 4;
  };
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t t = 0; t < p.taps(); ++t) {
      const int8_t v = w[c * p.taps() + t];
      p.sums[c] += v;
      // Which tap word, and which field of it (little-endian int16 or byte).
      const int64_t row = t / kw, col = t % kw;
      const int64_t word = p.block ? col * p.row_quads() + row / 4 : t / per_word;
      const int64_t field_index = p.block ? row % 4 : t % per_word;
      const int64_t bits = 32 / per_word, shift = field_index * bits;
      const auto field = static_cast<uint32_t>(v) & ((uint32_t{1} << bits) - 1);
      for (int64_t copy = 0; copy < p.pixels_per_block(); ++copy) {
        auto& slot = p.words[word * stride + slot_of(c + copy * channels)];
        slot = static_cast<int32_t>(static_cast<uint32_t>(slot) | field << shift);
      }
    }
  }
  return p;
}

void depthwise_conv_u8(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end, Isa isa) {
  kernel_table(isa).depthwise_u8(args, row_begin, row_end);
}

}  // namespace qext::kernels
