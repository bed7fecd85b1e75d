// The output side of the channels-in-lanes convolution kernels (depthwise,
// grouped): one output row's int32 sums to uint8 with the GEMM's Uint8
// epilogue (ref::epilogue_float, then the path's quantizer, bit-identical to
// ref::quantize_one). Compiled into each ISA file with that path's flags.
#pragma once

#include <vector>

#include "kernels/isa_paths.h"
#include "kernels/window_conv.h"

namespace qext::kernels::detail {

template <QuantizeU8Fn kQuantize>
class RowRequantizer {
 public:
  // `weight_sums` [channels]: each output's weight sum, for the zero point.
  RowRequantizer(const WindowConvArgs& a, const int32_t* weight_sums)
      : a_(a), zp_sums_(a.channels), multiplier_(a.channels), bias_(a.channels, 0.0f), scratch_(a.ow * a.channels) {
    for (int64_t l = 0; l < a.channels; ++l) {
      zp_sums_[l] = a.x_zero_point * weight_sums[l];
      multiplier_[l] = a.x_scale * a.w_scale[l];
      if (a.bias) bias_[l] = a.bias[l];
    }
  }

  // acc: [ow][padded] sums of output row `row`. A missing bias is zeros:
  // adding +0 changes no quantized value.
  void operator()(const int32_t* acc, int64_t padded, int64_t row) {
    const int64_t c = a_.channels;
    for (int64_t ox = 0; ox < a_.ow; ++ox) {
      const int32_t* in = acc + ox * padded;
      float* f = scratch_.data() + ox * c;
      for (int64_t l = 0; l < c; ++l) {
        float v = static_cast<float>(in[l] - zp_sums_[l]) * multiplier_[l] + bias_[l];
        v = v > a_.clamp_min ? v : a_.clamp_min;
        f[l] = v < a_.clamp_max ? v : a_.clamp_max;
      }
    }
    kQuantize(scratch_.data(), a_.ow * c, a_.out_scale, a_.out_zero_point, 0, 255, a_.out + row * a_.ow * c);
  }

 private:
  const WindowConvArgs& a_;
  std::vector<int32_t> zp_sums_;  // x_zero_point * each output's weight sum
  std::vector<float> multiplier_, bias_, scratch_;
};

}  // namespace qext::kernels::detail
