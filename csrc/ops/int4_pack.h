// int4 storage: two signed 4-bit values per byte along the last dimension
// (element 2i in the low nibble, 2i + 1 in the high one; an odd length is
// padded with 0). Composed of ATen ops, so it runs on any device.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace qext::ops {

// int8 values in [-8, 7], [..., n] -> uint8 [..., ceil(n / 2)].
at::Tensor pack_int4(const at::Tensor& q);
// The inverse: uint8 [..., m] -> int8 [..., n], n in {2m - 1, 2m}.
at::Tensor unpack_int4(const at::Tensor& packed, int64_t n);

}  // namespace qext::ops
