// Autograd for qext::fake_quantize: the straight-through estimator. The input
// gradient passes unchanged where the value was inside the quantization range
// and is zero where it was clamped (scale and zero point get no gradient).
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>

#include "quant/tensor_quant.h"

namespace qext::ops {

namespace {

// Shape that lines up per-channel parameters with x along `axis`.
std::vector<int64_t> broadcast_shape(const at::Tensor& x, std::optional<int64_t> axis) {
  std::vector<int64_t> shape(x.dim(), 1);
  if (axis) shape[*axis < 0 ? *axis + x.dim() : *axis] = -1;
  return shape;
}

class FakeQuantizeSte : public torch::autograd::Function<FakeQuantizeSte> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& scale, const at::Tensor& zero_point,
                            std::optional<int64_t> axis, int64_t qmin, int64_t qmax) {
    // Same rule as the kernels: inside the range iff round(x / s) + z in [qmin, qmax].
    const auto shape = broadcast_shape(x, axis);
    const at::Tensor t = at::round(x / scale.to(at::kFloat).reshape(shape)) +
                         zero_point.to(at::kFloat).reshape(shape);
    ctx->save_for_backward({(t >= static_cast<double>(qmin)) & (t <= static_cast<double>(qmax))});
    at::AutoDispatchBelowADInplaceOrView guard;
    return quant::fake_quantize(x, scale, zero_point, axis, qmin, qmax);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor inside = ctx->get_saved_variables()[0];
    return {grads[0] * inside, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor fake_quantize_autograd(const at::Tensor& x, const at::Tensor& scale,
                                  const at::Tensor& zero_point, std::optional<int64_t> axis,
                                  int64_t qmin, int64_t qmax) {
  return FakeQuantizeSte::apply(x, scale, zero_point, axis, qmin, qmax);
}

}  // namespace

TORCH_LIBRARY_IMPL(qext, Autograd, m) { m.impl("fake_quantize", &fake_quantize_autograd); }

}  // namespace qext::ops
