// The output side of the channels-in-lanes convolution kernels (depthwise,
// grouped): one output row's int32 sums to uint8 with the GEMM's Uint8
// epilogue (ref::epilogue_float, then the path's quantizer, bit-identical to
// ref::quantize_one). Compiled into each ISA file with that path's flags.
#pragma once

#include <vector>

#include "kernels/aligned_buffer.h"
#include "kernels/isa_paths.h"
#include "kernels/window_conv.h"

namespace qext::kernels::detail {

// The per-channel constants of the requantizing epilogue, zeros past the
// channels up to `padded`, aligned for vector loads: x_zero_point * each
// output's weight sum (`weight_sums` [channels]), x_scale * w_scale, and the
// bias (a missing bias is zeros: adding +0 changes no quantized value).
struct RowConstants {
  RowConstants(const WindowConvArgs& a, const int32_t* weight_sums, int64_t padded)
      : zp_sums(static_cast<size_t>(padded), true),
        multiplier(static_cast<size_t>(padded), true),
        bias(static_cast<size_t>(padded), true) {
    for (int64_t l = 0; l < a.channels; ++l) {
      zp_sums.data()[l] = a.x_zero_point * weight_sums[l];
      multiplier.data()[l] = a.x_scale * a.w_scale[l];
      bias.data()[l] = a.bias ? a.bias[l] : 0.0f;
    }
  }
  AlignedBuffer<int32_t> zp_sums;
  AlignedBuffer<float> multiplier, bias;
};

// The epilogue in one pass on a path's vectors: sums -> float (the
// scalar rules' order) -> the path's quantizer, which applies the fused
// activation's clamp (monotonic, so clamp then quantize) and rounds like
// ref::quantize_one, bit for bit; no float row in between. `V` gives
//   kLanes, Quantizer (scale, zp, qmin, qmax, clamp_min, clamp_max), and
//   float_of(acc, zp_sums, multiplier, bias): the lanes' float results
//   (acc unaligned, the constants aligned); store(dst, q, lanes) their bytes.
template <class V>
class VectorRowRequantizer {
 public:
  VectorRowRequantizer(const WindowConvArgs& a, const int32_t* weight_sums, int64_t padded)
      : a_(a), quantize_(a.out_scale, a.out_zero_point, 0, 255, a.clamp_min, a.clamp_max), k_(a, weight_sums, padded) {}
  // (`padded`, the sums' row stride, is a multiple of V::kLanes: whole vectors are read.)

  // acc: [ow][padded] sums of output row `row`.
  void operator()(const int32_t* acc, int64_t padded, int64_t row) const {
    const int64_t c = a_.channels;
    uint8_t* out = a_.out + row * a_.ow * c;
    for (int64_t ox = 0; ox < a_.ow; ++ox) {
      const int32_t* in = acc + ox * padded;
      for (int64_t l = 0; l < c; l += V::kLanes)
        V::store(out + ox * c + l, quantize_(V::float_of(in + l, k_.zp_sums.data() + l, k_.multiplier.data() + l,
                                                         k_.bias.data() + l)),
                 c - l);
    }
  }

 private:
  const WindowConvArgs& a_;
  const typename V::Quantizer quantize_;
  const RowConstants k_;
};

// The portable form: the float epilogue into a scratch row, then the path's
// quantizer over it (the reference path's epilogue).
template <QuantizeU8Fn kQuantize>
class RowRequantizer {
 public:
  // `padded`: the sums' row stride (unused here; the vector forms read whole vectors).
  RowRequantizer(const WindowConvArgs& a, const int32_t* weight_sums, int64_t /*padded*/)
      : a_(a), k_(a, weight_sums, a.channels), scratch_(a.ow * a.channels) {}

  // acc: [ow][padded] sums of output row `row`.
  void operator()(const int32_t* acc, int64_t padded, int64_t row) {
    const int64_t c = a_.channels;
    const int32_t* zp_sums = k_.zp_sums.data();
    const float *multiplier = k_.multiplier.data(), *bias = k_.bias.data();
    for (int64_t ox = 0; ox < a_.ow; ++ox) {
      const int32_t* in = acc + ox * padded;
      float* f = scratch_.data() + ox * c;
      for (int64_t l = 0; l < c; ++l) {
        float v = static_cast<float>(in[l] - zp_sums[l]) * multiplier[l] + bias[l];
        v = v > a_.clamp_min ? v : a_.clamp_min;
        f[l] = v < a_.clamp_max ? v : a_.clamp_max;
      }
    }
    kQuantize(scratch_.data(), a_.ow * c, a_.out_scale, a_.out_zero_point, 0, 255, a_.out + row * a_.ow * c);
  }

 private:
  const WindowConvArgs& a_;
  const RowConstants k_;
  std::vector<float> scratch_;
};

}  // namespace qext::kernels::detail
