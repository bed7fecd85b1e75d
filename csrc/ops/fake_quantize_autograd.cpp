// Autograd for qext::fake_quantize, y = (clamp(round(x/s) + z, qmin, qmax) - z) * s.
//
// Input: the straight-through estimator (dy/dx = 1 where round(x/s) + z lies
// in [qmin, qmax], 0 where it was clamped). Scale and zero point, when they
// require grad, get the LSQ gradients (Esser et al. 2020; round() treated as
// the identity):
//   inside:   dy/ds = round(x/s) - x/s     dy/dz = 0
//   clamped:  dy/ds = q_edge - z           dy/dz = -s
// summed over everything but the channel axis. LSQ's gradient scaling
// (1/sqrt(numel * qmax)) is left to the caller (python/qext/qat).
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>

#include "quant/tensor_quant.h"

namespace qext::ops {

namespace {

int64_t normalized_axis(const at::Tensor& x, std::optional<int64_t> axis) {
  return *axis < 0 ? *axis + x.dim() : *axis;
}

// Shape that lines up per-channel parameters with x along `axis`.
std::vector<int64_t> broadcast_shape(const at::Tensor& x, std::optional<int64_t> axis) {
  std::vector<int64_t> shape(x.dim(), 1);
  if (axis) shape[normalized_axis(x, axis)] = -1;
  return shape;
}

// Sums an elementwise gradient down to the parameter's shape.
at::Tensor reduce_to_param(const at::Tensor& g, const at::Tensor& param, std::optional<int64_t> axis) {
  if (!axis) return g.sum().reshape(param.sizes());
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < g.dim(); ++d) {
    if (d != normalized_axis(g, axis)) dims.push_back(d);
  }
  return (dims.empty() ? g : g.sum(dims)).reshape(param.sizes());
}

// x / s, its rounding, and the kernels' pre-clamp grid index round(x / s) + z,
// with per-channel s and z lined up along `axis`.
struct GridPosition {
  at::Tensor s, z, ratio, rounded, index;
};

GridPosition grid_position(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                           std::optional<int64_t> axis) {
  const auto shape = broadcast_shape(x, axis);
  GridPosition p;
  p.s = scale.to(at::kFloat).reshape(shape);
  p.z = zero_point.to(at::kFloat).reshape(shape);
  p.ratio = x / p.s;
  p.rounded = at::round(p.ratio);
  p.index = p.rounded + p.z;
  return p;
}

class FakeQuantizeFunction : public torch::autograd::Function<FakeQuantizeFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& scale, const at::Tensor& zero_point,
                            std::optional<int64_t> axis, int64_t qmin, int64_t qmax) {
    // The common case (only x needs a gradient) keeps just the inside mask.
    const bool lsq = scale.requires_grad() || zero_point.requires_grad();
    if (lsq) {
      ctx->save_for_backward({x, scale, zero_point});
    } else {
      const at::Tensor t = grid_position(x, scale, zero_point, axis).index;
      ctx->save_for_backward({(t >= static_cast<double>(qmin)) & (t <= static_cast<double>(qmax))});
    }
    ctx->saved_data["axis"] = axis ? c10::IValue(*axis) : c10::IValue();
    ctx->saved_data["qmin"] = qmin;
    ctx->saved_data["qmax"] = qmax;
    at::AutoDispatchBelowADInplaceOrView guard;
    return quant::fake_quantize(x, scale, zero_point, axis, qmin, qmax);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    if (saved.size() == 1) {
      return {grads[0] * saved[0], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const at::Tensor &x = saved[0], &scale = saved[1], &zero_point = saved[2];
    const c10::IValue axis_iv = ctx->saved_data["axis"];
    const std::optional<int64_t> axis = axis_iv.isNone() ? std::nullopt : std::optional(axis_iv.toInt());
    const double qmin = static_cast<double>(ctx->saved_data["qmin"].toInt());
    const double qmax = static_cast<double>(ctx->saved_data["qmax"].toInt());
    // Same rule as the kernels: inside iff round(x / s) + z in [qmin, qmax].
    const GridPosition p = grid_position(x, scale, zero_point, axis);
    const at::Tensor &s = p.s, &z = p.z;
    const at::Tensor below = p.index < qmin, above = p.index > qmax;
    const at::Tensor inside = ~(below | above);
    const at::Tensor& g = grads[0];

    at::Tensor grad_scale, grad_zero_point;
    if (ctx->needs_input_grad(1)) {
      const at::Tensor edge = at::where(below, qmin - z, qmax - z);
      grad_scale = reduce_to_param(g * at::where(inside, p.rounded - p.ratio, edge), scale, axis);
    }
    if (ctx->needs_input_grad(2)) {
      grad_zero_point = reduce_to_param(g * at::where(inside, at::zeros_like(s), -s), zero_point, axis);
    }
    return {g * inside, grad_scale, grad_zero_point, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor fake_quantize_autograd(const at::Tensor& x, const at::Tensor& scale,
                                  const at::Tensor& zero_point, std::optional<int64_t> axis,
                                  int64_t qmin, int64_t qmax) {
  return FakeQuantizeFunction::apply(x, scale, zero_point, axis, qmin, qmax);
}

}  // namespace

TORCH_LIBRARY_IMPL(qext, Autograd, m) { m.impl("fake_quantize", &fake_quantize_autograd); }

}  // namespace qext::ops
