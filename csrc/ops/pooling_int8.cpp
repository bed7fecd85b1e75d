#include "ops/pooling_int8.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "kernels/pooling.h"
#include "ops/memory_pool.h"

namespace qext::ops {

namespace {

// PyTorch's conventions: one value means both axes; an empty stride means the kernel size.
std::pair<int64_t, int64_t> pair_arg(const char* op, const char* name, const std::vector<int64_t>& v,
                                     const std::vector<int64_t>& fallback = {}) {
  const auto& use = v.empty() ? fallback : v;
  TORCH_CHECK(use.size() == 1 || use.size() == 2, op, ": ", name, " must have 1 or 2 values; got ", use.size());
  return {use[0], use.size() == 2 ? use[1] : use[0]};
}

at::Tensor checked_input(const char* op, const at::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == at::kByte && x.dim() == 4, op, ": expected uint8 activations [N, C, H, W]; got ",
              x.scalar_type(), " of shape ", x.sizes());
  // As PyTorch: only the batch may be empty.
  TORCH_CHECK(x.size(1) > 0 && x.size(2) > 0 && x.size(3) > 0, op,
              ": expected non-empty C, H and W; got shape ", x.sizes());
  return x.contiguous(at::MemoryFormat::ChannelsLast);
}

at::Tensor output_like(const at::Tensor& x, int64_t oh, int64_t ow) {
  return pooled_empty({x.size(0), x.size(1), oh, ow}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
}

// fn(row_begin, row_end) over the n * oh output rows, in parallel.
template <typename Fn>
void for_rows(int64_t rows, int64_t bytes_per_row, Fn fn) {
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(bytes_per_row, 1));
  at::parallel_for(0, rows, grain, fn);
}

void check_zero_point(const char* op, int64_t zero_point) {
  TORCH_CHECK(zero_point >= 0 && zero_point <= 255, op, ": zero_point must be in [0, 255]; got ", zero_point);
}

}  // namespace

at::Tensor max_pool2d_int8(const at::Tensor& x, std::vector<int64_t> kernel_size, std::vector<int64_t> stride,
                           std::vector<int64_t> padding, std::vector<int64_t> dilation, bool ceil_mode) {
  constexpr const char* op = "qext::max_pool2d_int8";
  const at::Tensor xc = checked_input(op, x);
  const auto [kh, kw] = pair_arg(op, "kernel_size", kernel_size);
  const auto [sh, sw] = pair_arg(op, "stride", stride, kernel_size);
  const auto [ph, pw] = pair_arg(op, "padding", padding);
  const auto [dh, dw] = pair_arg(op, "dilation", dilation);
  TORCH_CHECK(kh > 0 && kw > 0 && sh > 0 && sw > 0 && dh > 0 && dw > 0, op,
              ": kernel size, stride and dilation must be > 0");
  TORCH_CHECK(ph >= 0 && pw >= 0 && 2 * ph <= kh && 2 * pw <= kw, op,
              ": padding must be >= 0 and at most half the kernel size");
  const kernels::NhwcShape s{xc.size(0), xc.size(2), xc.size(3), xc.size(1)};
  const int64_t oh = kernels::pooled_size(s.h, kh, sh, ph, dh, ceil_mode);
  const int64_t ow = kernels::pooled_size(s.w, kw, sw, pw, dw, ceil_mode);
  TORCH_CHECK(oh > 0 && ow > 0, op, ": input ", x.sizes(), " is smaller than the pooling window");
  at::Tensor out = output_like(xc, oh, ow);
  const uint8_t* in = xc.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  const kernels::Isa isa = kernels::active_isa();
  for_rows(s.n * oh, ow * s.c * kh * kw, [&](int64_t b, int64_t e) {
    kernels::max_pool2d_u8(in, s, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, o, b, e, isa);
  });
  return out;
}

at::Tensor avg_pool2d_int8(const at::Tensor& x, int64_t zero_point, std::vector<int64_t> kernel_size,
                           std::vector<int64_t> stride, std::vector<int64_t> padding, bool ceil_mode,
                           bool count_include_pad, std::optional<int64_t> divisor_override) {
  constexpr const char* op = "qext::avg_pool2d_int8";
  const at::Tensor xc = checked_input(op, x);
  check_zero_point(op, zero_point);
  const auto [kh, kw] = pair_arg(op, "kernel_size", kernel_size);
  const auto [sh, sw] = pair_arg(op, "stride", stride, kernel_size);
  const auto [ph, pw] = pair_arg(op, "padding", padding);
  TORCH_CHECK(kh > 0 && kw > 0 && sh > 0 && sw > 0, op, ": kernel size and stride must be > 0");
  TORCH_CHECK(ph >= 0 && pw >= 0 && 2 * ph <= kh && 2 * pw <= kw, op,
              ": padding must be >= 0 and at most half the kernel size");
  TORCH_CHECK(!divisor_override || *divisor_override > 0, op, ": divisor_override must be > 0");
  const kernels::NhwcShape s{xc.size(0), xc.size(2), xc.size(3), xc.size(1)};
  const int64_t oh = kernels::pooled_size(s.h, kh, sh, ph, 1, ceil_mode);
  const int64_t ow = kernels::pooled_size(s.w, kw, sw, pw, 1, ceil_mode);
  TORCH_CHECK(oh > 0 && ow > 0, op, ": input ", x.sizes(), " is smaller than the pooling window");
  const kernels::PoolAxis rows = kernels::avg_pool_axis(s.h, oh, kh, sh, ph, count_include_pad);
  const kernels::PoolAxis cols = kernels::avg_pool_axis(s.w, ow, kw, sw, pw, count_include_pad);
  at::Tensor out = output_like(xc, oh, ow);
  const uint8_t* in = xc.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  const kernels::Isa isa = kernels::active_isa();
  for_rows(s.n * oh, ow * s.c * kh * kw, [&](int64_t b, int64_t e) {
    kernels::avg_pool2d_u8(in, s, rows, cols, divisor_override.value_or(0), static_cast<int32_t>(zero_point), o, b, e,
                           isa);
  });
  return out;
}

at::Tensor adaptive_avg_pool2d_int8(const at::Tensor& x, int64_t zero_point, std::vector<int64_t> output_size) {
  constexpr const char* op = "qext::adaptive_avg_pool2d_int8";
  const at::Tensor xc = checked_input(op, x);
  check_zero_point(op, zero_point);
  const auto [oh, ow] = pair_arg(op, "output_size", output_size);
  TORCH_CHECK(oh > 0 && ow > 0, op, ": output_size must be > 0");
  const kernels::NhwcShape s{xc.size(0), xc.size(2), xc.size(3), xc.size(1)};
  // Windows are computed per output row and column: bound them before
  // allocating (an output larger than the input only repeats its pixels).
  constexpr int64_t kMaxSide = int64_t{1} << 16;
  TORCH_CHECK(oh <= std::max(s.h, kMaxSide) && ow <= std::max(s.w, kMaxSide), op, ": output_size ", oh, "x", ow,
              " is too large for an input of ", s.h, "x", s.w, " (at most max(input, 65536) per side)");
  const kernels::PoolAxis rows = kernels::adaptive_pool_axis(s.h, oh), cols = kernels::adaptive_pool_axis(s.w, ow);
  at::Tensor out = output_like(xc, oh, ow);
  const uint8_t* in = xc.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  const int64_t window = ((s.h + oh - 1) / oh + 1) * ((s.w + ow - 1) / ow + 1);
  const kernels::Isa isa = kernels::active_isa();
  for_rows(s.n * oh, ow * s.c * window, [&](int64_t b, int64_t e) {
    kernels::avg_pool2d_u8(in, s, rows, cols, 0, static_cast<int32_t>(zero_point), o, b, e, isa);
  });
  return out;
}

}  // namespace qext::ops
