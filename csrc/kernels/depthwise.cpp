#include "kernels/depthwise.h"

#include "kernels/kernel_table.h"

namespace qext::kernels {

std::vector<int32_t> depthwise_pack_weights(const int8_t* w, int64_t channels, int64_t taps) {
  const int64_t padded = depthwise_padded_channels(channels), pairs = (taps + 1) / 2;
  std::vector<int32_t> out(static_cast<size_t>(pairs * padded), 0);
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t t = 0; t < taps; ++t) {
      // Little-endian int16 pair: even tap in the low half, odd tap in the high.
      const auto half = static_cast<uint32_t>(static_cast<uint16_t>(static_cast<int16_t>(w[c * taps + t])));
      out[(t / 2) * padded + c] |= static_cast<int32_t>(t % 2 ? half << 16 : half);
    }
  }
  return out;
}

void depthwise_conv_u8(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end, Isa isa) {
  kernel_table(isa).depthwise_u8(args, row_begin, row_end);
}

}  // namespace qext::kernels
