#include "ops/device_quantize.h"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

#include "quant/qparams.h"
#include "quant/tensor_quant.h"

namespace qext::ops {

namespace {

// The axis as a non-negative dimension (or none).
std::optional<int64_t> normalized_axis(const char* op, const at::Tensor& x, std::optional<int64_t> axis) {
  if (!axis) return std::nullopt;
  TORCH_CHECK(x.dim() > 0, op, ": per-channel axis given for a 0-d tensor");
  const int64_t ax = *axis < 0 ? *axis + x.dim() : *axis;
  TORCH_CHECK(ax >= 0 && ax < x.dim(), op, ": axis ", *axis, " is out of range for a ", x.dim(), "-d tensor");
  return ax;
}

// A per-channel parameter reshaped to broadcast along `axis` of a dim-d tensor.
at::Tensor along_axis(const at::Tensor& p, std::optional<int64_t> axis, int64_t dim) {
  if (!axis) return p.reshape({});
  std::vector<int64_t> shape(dim, 1);
  shape[*axis] = p.numel();
  return p.reshape(shape);
}

void check_params(const char* op, const at::Tensor& scale, const at::Tensor& zero_point, int64_t channels) {
  TORCH_CHECK(scale.scalar_type() == at::kFloat, op, ": scale must be float32; got ", scale.scalar_type());
  TORCH_CHECK(scale.numel() == channels && zero_point.numel() == channels, op, ": expected ", channels,
              " scale(s) and zero point(s); got ", scale.numel(), " and ", zero_point.numel());
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> choose_qparams_aten(const at::Tensor& x, std::optional<int64_t> axis,
                                                       int64_t qmin, int64_t qmax, bool symmetric) {
  constexpr const char* op = "qext::choose_qparams";
  TORCH_CHECK(x.scalar_type() == at::kFloat, op, ": expected a float32 tensor; got ", x.scalar_type());
  quant::quantized_dtype(op, qmin, qmax);
  TORCH_CHECK(x.numel() > 0, op, ": cannot choose qparams from an empty tensor");
  const std::optional<int64_t> ax = normalized_axis(op, x, axis);
  const at::Tensor rows = ax ? x.movedim(*ax, 0).reshape({x.size(*ax), -1}) : x.reshape({1, -1});
  TORCH_CHECK(rows.size(1) > 0, op, ": every channel is empty");
  TORCH_CHECK(at::isfinite(rows).all().item<bool>(), op, ": the tensor holds NaN or Inf; qparams need finite data");
  // The ranges come back to the host; the rule is the CPU one, so both devices
  // hand out the same scale and zero point.
  const auto [lo, hi] = at::aminmax(rows, /*dim=*/1);
  const at::Tensor lo_h = lo.cpu(), hi_h = hi.cpu();
  const int64_t channels = rows.size(0);
  at::Tensor scale = at::empty({channels}, at::kFloat);
  at::Tensor zp = at::empty({channels}, at::kInt);
  for (int64_t c = 0; c < channels; ++c) {
    const quant::QParams p = quant::choose_qparams(lo_h.data_ptr<float>()[c], hi_h.data_ptr<float>()[c],
                                                   static_cast<int32_t>(qmin), static_cast<int32_t>(qmax),
                                                   symmetric);
    scale.data_ptr<float>()[c] = p.scale;
    zp.data_ptr<int32_t>()[c] = p.zero_point;
  }
  if (!ax) return {scale.reshape({}).to(x.device()), zp.reshape({}).to(x.device())};
  return {scale.to(x.device()), zp.to(x.device())};
}

at::Tensor quantize_aten(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                         std::optional<int64_t> axis, int64_t qmin, int64_t qmax) {
  constexpr const char* op = "qext::quantize";
  TORCH_CHECK(x.scalar_type() == at::kFloat, op, ": expected a float32 tensor; got ", x.scalar_type());
  const at::ScalarType dtype = quant::quantized_dtype(op, qmin, qmax);
  const std::optional<int64_t> ax = normalized_axis(op, x, axis);
  check_params(op, scale, zero_point, ax ? x.size(*ax) : 1);
  const at::Tensor s = along_axis(scale.to(x.device()), ax, x.dim());
  const at::Tensor z = along_axis(zero_point.to(x.device(), at::kFloat), ax, x.dim());
  // round-half-even(x / scale) + zero_point, then the clamps written so that
  // NaN lands on qmin, as in the scalar rule.
  at::Tensor t = at::round(x / s) + z;
  const at::Tensor lo = at::scalar_tensor(static_cast<double>(qmin), t.options());
  const at::Tensor hi = at::scalar_tensor(static_cast<double>(qmax), t.options());
  t = at::where(t > lo, t, lo);
  t = at::where(t < hi, t, hi);
  return t.to(dtype);
}

at::Tensor dequantize_aten(const at::Tensor& q, const at::Tensor& scale, const at::Tensor& zero_point,
                           std::optional<int64_t> axis) {
  constexpr const char* op = "qext::dequantize";
  TORCH_CHECK(q.scalar_type() == at::kByte || q.scalar_type() == at::kChar, op,
              ": expected a uint8 or int8 tensor; got ", q.scalar_type());
  const std::optional<int64_t> ax = normalized_axis(op, q, axis);
  check_params(op, scale, zero_point, ax ? q.size(*ax) : 1);
  const at::Tensor s = along_axis(scale.to(q.device()), ax, q.dim());
  const at::Tensor z = along_axis(zero_point.to(q.device(), at::kInt), ax, q.dim());
  return (q.to(at::kInt) - z).to(at::kFloat) * s;
}

}  // namespace qext::ops
