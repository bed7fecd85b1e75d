// The depthwise kernel of kernels/depthwise.h: the walk over output pixels and
// the epilogue, shared by the ISA paths (ref, AVX2, AVX-512), each of which
// supplies its channel-block multiply-accumulate and its quantizer
// (bit-identical to ref::quantize_one) and compiles this with its own flags.
#pragma once

#include <vector>

#include "kernels/depthwise.h"
#include "kernels/isa_paths.h"

namespace qext::kernels::detail {

// Each path provides the multiply-accumulate of one channel block:
//   out[0, kBlock) = sum over taps t of x_t[c0 + l] * w[t * w_stride + c0 + l]
// with the accumulators in registers across the taps. Channels past the last
// are read (image slack) but multiplied by zero-padded weights.
using DepthwiseMacFn = void (*)(const uint8_t* const* taps, int64_t count, const int16_t* w, int64_t w_stride,
                                int64_t c0, int32_t* out);

// The GEMM's Uint8 epilogue (ref::epilogue_float, then quantize) over one pixel's
// channels, `multiplier` = x_scale * w_scale[c] and `bias` zeros when absent
// (adding +0 changes no quantized value).
template <QuantizeU8Fn kQuantize>
void depthwise_epilogue(const DepthwiseArgs& a, const int32_t* acc, const float* multiplier, const float* bias,
                        float* scratch, uint8_t* out) {
  const int64_t c = a.channels;
  for (int64_t l = 0; l < c; ++l) {
    float v = static_cast<float>(acc[l] - a.x_zero_point * a.weight_sums[l]) * multiplier[l] + bias[l];
    v = v > a.clamp_min ? v : a.clamp_min;
    scratch[l] = v < a.clamp_max ? v : a.clamp_max;
  }
  kQuantize(scratch, c, a.out_scale, a.out_zero_point, 0, 255, out);
}

template <int kBlock, DepthwiseMacFn kMacs, QuantizeU8Fn kQuantize>
void depthwise_rows(const DepthwiseArgs& a, int64_t row_begin, int64_t row_end) {
  static_assert(kDepthwiseBlock % kBlock == 0, "the weight padding must hold whole blocks");
  const int64_t c = a.channels, count = a.kh * a.kw;
  const int64_t padded = (c + kDepthwiseBlock - 1) / kDepthwiseBlock * kDepthwiseBlock;
  std::vector<const uint8_t*> taps(static_cast<size_t>(count));
  std::vector<int32_t> acc(static_cast<size_t>(padded));
  std::vector<float> multiplier(static_cast<size_t>(c)), bias(static_cast<size_t>(c), 0.0f), scratch(static_cast<size_t>(c));
  for (int64_t l = 0; l < c; ++l) {
    multiplier[l] = a.x_scale * a.w_scale[l];
    if (a.bias) bias[l] = a.bias[l];
  }
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / a.oh, oy = row % a.oh;
    const uint8_t* image = a.image + n * a.hp * a.wp * c;
    for (int64_t ox = 0; ox < a.ow; ++ox) {
      for (int64_t i = 0; i < a.kh; ++i) {
        const uint8_t* line = image + ((oy * a.sh + i * a.dh) * a.wp + ox * a.sw) * c;
        for (int64_t j = 0; j < a.kw; ++j) taps[i * a.kw + j] = line + j * a.dw * c;
      }
      for (int64_t c0 = 0; c0 < c; c0 += kBlock) kMacs(taps.data(), count, a.weights, padded, c0, acc.data() + c0);
      depthwise_epilogue<kQuantize>(a, acc.data(), multiplier.data(), bias.data(), scratch.data(),
                                    a.out + (row * a.ow + ox) * c);
    }
  }
}

}  // namespace qext::kernels::detail
