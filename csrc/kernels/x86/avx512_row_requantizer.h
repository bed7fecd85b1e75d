// The channels-in-lanes kernels' output epilogue on AVX-512 in one pass: an
// output row's int32 sums -> (sum - x_zp * weight_sum) * x_scale * w_scale +
// bias -> the fused activation's clamp and the uint8 rounding of Quantizer16
// (the GEMM's Uint8 epilogue, bit for bit), 16 channels at a time, no float
// row in between. window_conv_impl.h's RowRequantizer is the portable form.
#pragma once

#include <immintrin.h>

#include "kernels/aligned_buffer.h"
#include "kernels/window_conv.h"
#include "kernels/x86/avx512_epilogue.h"

namespace qext::kernels::detail {

namespace {

class RowRequantizer16 {
 public:
  // `weight_sums` [channels]: each output's weight sum, for the zero point.
  RowRequantizer16(const WindowConvArgs& a, const int32_t* weight_sums, int64_t padded)
      : a_(a),
        quantize_(a.out_scale, a.out_zero_point, 0, 255, a.clamp_min, a.clamp_max),
        zp_sums_(static_cast<size_t>(padded), true),
        multiplier_(static_cast<size_t>(padded), true),
        bias_(static_cast<size_t>(padded), true) {
    for (int64_t l = 0; l < a.channels; ++l) {
      zp_sums_.data()[l] = a.x_zero_point * weight_sums[l];
      multiplier_.data()[l] = a.x_scale * a.w_scale[l];
      bias_.data()[l] = a.bias ? a.bias[l] : 0.0f;  // adding +0 changes no quantized value
    }
  }

  // acc: [ow][padded] sums of output row `row`.
  void operator()(const int32_t* acc, int64_t padded, int64_t row) const {
    const int64_t c = a_.channels;
    uint8_t* out = a_.out + row * a_.ow * c;
    for (int64_t ox = 0; ox < a_.ow; ++ox) {
      const int32_t* in = acc + ox * padded;
      for (int64_t l = 0; l < c; l += kVecCols) {
        const __m512i v = _mm512_sub_epi32(_mm512_loadu_si512(in + l), _mm512_load_si512(zp_sums_.data() + l));
        const __m512 f = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_load_ps(multiplier_.data() + l)),
                                       _mm512_load_ps(bias_.data() + l));
        store_u8x16(out + ox * c + l, lanes_mask(c - l), quantize_(f));
      }
    }
  }

 private:
  const WindowConvArgs& a_;
  Quantizer16 quantize_;
  AlignedBuffer<int32_t> zp_sums_;  // x_zero_point * each output's weight sum; zeros past the channels
  AlignedBuffer<float> multiplier_, bias_;
};

}  // namespace

}  // namespace qext::kernels::detail
