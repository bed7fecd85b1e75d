// The depthwise kernel, reference path: the spec of the multiply-accumulate.
#include "kernels/depthwise_impl.h"

namespace qext::kernels::detail {

namespace {

constexpr int kBlock = 16;

void macs(const uint8_t* const* taps, int64_t count, const int16_t* w, int64_t w_stride, int64_t c0, int32_t* out) {
  for (int l = 0; l < kBlock; ++l) out[l] = 0;
  for (int64_t t = 0; t < count; ++t) {
    for (int l = 0; l < kBlock; ++l) out[l] += int32_t{taps[t][c0 + l]} * int32_t{w[t * w_stride + c0 + l]};
  }
}

}  // namespace

void depthwise_u8_ref(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  depthwise_rows<kBlock, macs, quantize_u8_ref>(args, row_begin, row_end);
}

}  // namespace qext::kernels::detail
