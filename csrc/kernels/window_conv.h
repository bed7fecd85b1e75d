// What the channels-in-lanes convolution kernels (depthwise, grouped) share:
// the padded NHWC image, the window geometry and the Uint8 requantizing
// epilogue of the GEMM (kernels/ref/scalar_rules.h). Torch-free.
#pragma once

#include <cstdint>

namespace qext::kernels {

struct WindowConvArgs {
  const uint8_t* image = nullptr;  // padded NHWC images: [n][hp][wp][channels], readable 64 bytes past the end
  int64_t hp = 0, wp = 0, channels = 0;
  int64_t kh = 0, kw = 0, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t n = 1;           // images
  int64_t oh = 0, ow = 0;  // output size (windows start at padded 0)
  int32_t x_zero_point = 0;
  float x_scale = 1.0f;
  const float* w_scale = nullptr;  // [channels]
  const float* bias = nullptr;     // [channels] or nullptr
  float clamp_min = 0.0f, clamp_max = 0.0f;
  float out_scale = 1.0f;
  int32_t out_zero_point = 0;
  uint8_t* out = nullptr;  // [n][oh][ow][channels]

  int64_t n_rows() const { return n * oh; }
};

}  // namespace qext::kernels
