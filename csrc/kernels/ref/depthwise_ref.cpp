// The depthwise kernel, reference path: the spec of the multiply-accumulate
// (on the TapPairs layout).
#include "kernels/depthwise_impl.h"

namespace qext::kernels::detail {

namespace {

void macs(const uint8_t* const* taps, int64_t pairs, const int32_t* w, int64_t stride, int64_t padded,
          int32_t* acc) {
  for (int64_t c = 0; c < padded; ++c) {
    int32_t sum = 0;
    for (int64_t p = 0; p < pairs; ++p) {
      const int32_t word = w[p * stride + c];
      const auto lo = static_cast<int16_t>(word & 0xffff), hi = static_cast<int16_t>(word >> 16);
      sum += int32_t{taps[2 * p][c]} * lo + int32_t{taps[2 * p + 1][c]} * hi;
    }
    acc[c] = sum;
  }
}

}  // namespace

void depthwise_u8_ref(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  depthwise_rows<2, macs, RowRequantizer<quantize_u8_ref>>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
