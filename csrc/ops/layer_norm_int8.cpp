#include "ops/layer_norm_int8.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "kernels/quantize.h"

namespace qext::ops {

namespace {

// 255^2 * 32768 < 2^31: a block's sum of squares fits int32.
constexpr int64_t kSumBlock = 32768;

at::Tensor checked_affine(const char* op, const char* what, const std::optional<at::Tensor>& t, int64_t n) {
  if (!t || !t->defined()) return {};
  TORCH_CHECK(t->scalar_type() == at::kFloat && t->numel() == n, op, ": ", what, " must be float32 with ", n,
              " values; got ", t->scalar_type(), " ", t->sizes());
  return t->contiguous();
}

}  // namespace

at::Tensor layer_norm_int8(const at::Tensor& x, double x_scale, int64_t x_zero_point,
                           const std::vector<int64_t>& normalized_shape, const std::optional<at::Tensor>& weight,
                           const std::optional<at::Tensor>& bias, double eps, double out_scale,
                           int64_t out_zero_point) {
  constexpr const char* op = "qext::layer_norm_int8";
  TORCH_CHECK(x.scalar_type() == at::kByte, op, ": expected uint8; got ", x.scalar_type());
  for (const auto& [what, s, z] : {std::tuple{"input", x_scale, x_zero_point}, {"output", out_scale, out_zero_point}}) {
    TORCH_CHECK(std::isfinite(s) && s > 0 && z >= 0 && z <= 255, op, ": ", what,
                " scale must be finite and > 0 and zero point in [0, 255]; got ", s, ", ", z);
  }
  const auto dims = static_cast<int64_t>(normalized_shape.size());
  TORCH_CHECK(dims >= 1 && dims <= x.dim() &&
                  x.sizes().slice(static_cast<size_t>(x.dim() - dims)).equals(normalized_shape),
              op, ": normalized_shape ", normalized_shape, " must be the last dimensions of the input ", x.sizes());
  TORCH_CHECK(eps >= 0 && std::isfinite(eps), op, ": eps must be finite and >= 0; got ", eps);
  int64_t d = 1;
  for (int64_t s : normalized_shape) d *= s;
  const at::Tensor w = checked_affine(op, "weight", weight, d), b = checked_affine(op, "bias", bias, d);
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (x.numel() == 0) return out;
  const uint8_t* in = xc.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  const float* wp = w.defined() ? w.data_ptr<float>() : nullptr;
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  const auto zi = static_cast<int32_t>(x_zero_point), zo = static_cast<int32_t>(out_zero_point);
  const auto so = static_cast<float>(out_scale);
  const double eps_q = eps / (x_scale * x_scale);  // eps in squared input steps
  const kernels::Isa isa = kernels::active_isa();
  at::parallel_for(0, x.numel() / d, std::max<int64_t>(1, 4096 / d), [&](int64_t begin, int64_t end) {
    std::vector<float> normalized(static_cast<size_t>(d));
    for (int64_t r = begin; r < end; ++r) {
      const uint8_t* row = in + r * d;
      int64_t sum = 0, sum_sq = 0;  // exact
      // int32 partial sums (vectorizable) over blocks short enough not to overflow.
      for (int64_t start = 0; start < d; start += kSumBlock) {
        int32_t block_sum = 0, block_sq = 0;
        const int64_t stop = std::min(d, start + kSumBlock);
        const auto z16 = static_cast<int16_t>(zi);
        for (int64_t i = start; i < stop; ++i) {
          // int16 operands: the compiler pairs the squares with pmaddwd.
          const auto v = static_cast<int16_t>(static_cast<int16_t>(row[i]) - z16);
          block_sum += v;
          block_sq += static_cast<int32_t>(v) * static_cast<int32_t>(v);
        }
        sum += block_sum;
        sum_sq += block_sq;
      }
      const double mean = static_cast<double>(sum) / static_cast<double>(d);
      const double var = std::max(0.0, static_cast<double>(sum_sq) / static_cast<double>(d) - mean * mean);
      const auto mean_f = static_cast<float>(mean);
      const auto rstd = static_cast<float>(1.0 / std::sqrt(var + eps_q));
      float* v = normalized.data();
      for (int64_t i = 0; i < d; ++i) v[i] = (static_cast<float>(row[i] - zi) - mean_f) * rstd;
      if (wp) {
        for (int64_t i = 0; i < d; ++i) v[i] = v[i] * wp[i];
      }
      if (bp) {
        for (int64_t i = 0; i < d; ++i) v[i] = v[i] + bp[i];
      }
      kernels::quantize_u8(v, d, so, zo, 0, 255, o + r * d, isa);  // the scalar rule, vectorized
    }
  });
  return out;
}

}  // namespace qext::ops
