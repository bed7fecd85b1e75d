#include "ops/int4_pack.h"

#include <ATen/ATen.h>

namespace qext::ops {

at::Tensor pack_int4(const at::Tensor& q) {
  constexpr const char* op = "qext::pack_int4";
  TORCH_CHECK(q.scalar_type() == at::kChar && q.dim() >= 1, op, ": expected an int8 tensor of at least 1 dimension; got ",
              q.scalar_type(), " of shape ", q.sizes());
  if (q.numel() > 0) {
    const auto [lo, hi] = at::aminmax(q);
    TORCH_CHECK(lo.item<int64_t>() >= -8 && hi.item<int64_t>() <= 7, op, ": values must lie in [-8, 7]; got [",
                lo.item<int64_t>(), ", ", hi.item<int64_t>(), "]");
  }
  const int64_t n = q.size(-1);
  at::Tensor nibbles = at::constant_pad_nd(q.to(at::kShort), {0, n % 2}).bitwise_and(0xF);
  std::vector<int64_t> pairs = q.sizes().vec();
  pairs.back() = (n + 1) / 2;
  pairs.push_back(2);
  nibbles = nibbles.reshape(pairs);
  return nibbles.select(-1, 0).bitwise_or(nibbles.select(-1, 1).bitwise_left_shift(4)).to(at::kByte);
}

at::Tensor unpack_int4(const at::Tensor& packed, int64_t n) {
  constexpr const char* op = "qext::unpack_int4";
  TORCH_CHECK(packed.scalar_type() == at::kByte && packed.dim() >= 1, op,
              ": expected a uint8 tensor of at least 1 dimension; got ", packed.scalar_type(), " of shape ",
              packed.sizes());
  const int64_t m = packed.size(-1);
  TORCH_CHECK(n >= 0 && (n + 1) / 2 == m, op, ": ", m, " bytes hold ", 2 * m - 1, " or ", 2 * m,
              " int4 values; asked for ", n);
  const at::Tensor bytes = packed.to(at::kShort);
  // Sign-extend a nibble: (v ^ 8) - 8 maps 0..15 to 0..7, -8..-1.
  auto signed_nibble = [](const at::Tensor& v) { return v.bitwise_xor(8) - 8; };
  const at::Tensor low = signed_nibble(bytes.bitwise_and(0xF));
  const at::Tensor high = signed_nibble(bytes.bitwise_right_shift(4));
  std::vector<int64_t> sizes = packed.sizes().vec();
  sizes.back() = 2 * m;
  return at::stack({low, high}, -1).reshape(sizes).narrow(-1, 0, n).to(at::kChar).contiguous();
}

}  // namespace qext::ops
