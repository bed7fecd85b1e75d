// Pooling ops on uint8 activations (static quantization). The output keeps
// the input's (scale, zero point); uint8 [N, C, H, W] in any memory format in,
// channels-last out. Average pooling needs the zero point (padding is real 0).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

namespace qext::ops {

at::Tensor max_pool2d_int8(const at::Tensor& x, std::vector<int64_t> kernel_size, std::vector<int64_t> stride,
                           std::vector<int64_t> padding, std::vector<int64_t> dilation, bool ceil_mode);

at::Tensor avg_pool2d_int8(const at::Tensor& x, int64_t zero_point, std::vector<int64_t> kernel_size,
                           std::vector<int64_t> stride, std::vector<int64_t> padding, bool ceil_mode,
                           bool count_include_pad, std::optional<int64_t> divisor_override);

at::Tensor adaptive_avg_pool2d_int8(const at::Tensor& x, int64_t zero_point, std::vector<int64_t> output_size);

}  // namespace qext::ops
