// What the channels-in-lanes convolution kernels (depthwise, grouped) share:
// the NHWC image and its padding, the window geometry and the Uint8 requantizing
// epilogue of the GEMM (kernels/ref/scalar_rules.h). Torch-free.
#pragma once

#include <cstdint>

namespace qext::kernels {

struct WindowConvArgs {
  // NHWC images. Grouped kernels: [n][hp][wp][channels], padding included,
  // readable 64 bytes past the end. Depthwise kernels: the images without
  // their padding, [n][hp - 2 pad_h][wp - 2 pad_w][channels], read only
  // within those bytes; the padding (x_zero_point) is virtual.
  const uint8_t* image = nullptr;
  int64_t hp = 0, wp = 0, channels = 0;  // padded sizes
  int64_t pad_h = 0, pad_w = 0;          // depthwise: rows / columns of padding on each side, not stored
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
  // The stored image's sizes.
  int64_t h() const { return hp - 2 * pad_h; }
  int64_t w() const { return wp - 2 * pad_w; }
};

}  // namespace qext::kernels
