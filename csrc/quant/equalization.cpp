#include "quant/equalization.h"

#include <ATen/ATen.h>

#include <vector>

namespace qext::quant {

namespace {

// Per-output-channel view shape of s for a weight of w's rank: [C, 1, 1, ...].
std::vector<int64_t> channel_shape(int64_t channels, int64_t rank) {
  std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
  shape[0] = channels;
  return shape;
}

// s [C] spread over w2 [O, C / groups, ...]: entry (o, j) reads s[g(o) * C / groups + j].
at::Tensor input_channel_factor(const at::Tensor& s, const at::Tensor& w2, int64_t groups) {
  const int64_t out = w2.size(0), per_group = w2.size(1);
  at::Tensor f = s.view({groups, 1, per_group}).expand({groups, out / groups, per_group}).reshape({out, per_group});
  std::vector<int64_t> shape(f.sizes().begin(), f.sizes().end());
  shape.resize(static_cast<size_t>(w2.dim()), 1);
  return f.view(shape);
}

// [O, C, taps...] -> [O, C] by `reduce` over the taps (a no-op for linear weights).
template <typename Reduce>
at::Tensor over_taps(const at::Tensor& w, Reduce reduce) {
  return w.dim() > 2 ? reduce(w.flatten(2)) : w;
}

void check_pair(const at::Tensor& w1, const at::Tensor& w2, int64_t groups2) {
  TORCH_CHECK(w1.dim() >= 2 && w2.dim() >= 2 && groups2 >= 1 && w2.size(0) % groups2 == 0 &&
                  w1.size(0) == w2.size(1) * groups2,
              "qext: cross-layer equalization needs W2's input channels to be W1's output channels; got W1 ",
              w1.sizes(), ", W2 ", w2.sizes(), " with ", groups2, " groups");
}

}  // namespace

at::Tensor equalization_scales(const at::Tensor& w1, const at::Tensor& w2, int64_t groups2) {
  check_pair(w1, w2, groups2);
  const at::Tensor r1 = w1.detach().abs().flatten(1).amax(1).to(at::kDouble);
  const int64_t out = w2.size(0), per_group = w2.size(1);
  const at::Tensor r2 = over_taps(w2.detach().abs(), [](const at::Tensor& t) { return t.amax(2); })
                            .view({groups2, out / groups2, per_group}).amax(1)
                            .reshape({-1}).to(at::kDouble);
  const at::Tensor usable = (r1 > 0) & (r2 > 0);
  return at::where(usable, at::sqrt(r1 / at::where(usable, r2, at::ones_like(r2))), at::ones_like(r1)).to(at::kFloat);
}

std::tuple<at::Tensor, std::optional<at::Tensor>, at::Tensor> apply_equalization(
    const at::Tensor& w1, const std::optional<at::Tensor>& b1, const at::Tensor& w2, int64_t groups2,
    const at::Tensor& s) {
  check_pair(w1, w2, groups2);
  TORCH_CHECK(s.dim() == 1 && s.size(0) == w1.size(0), "qext: equalization scales must be [", w1.size(0), "]");
  const at::Tensor new_w1 = w1 / s.view(channel_shape(w1.size(0), w1.dim())).to(w1.scalar_type());
  std::optional<at::Tensor> new_b1;
  if (b1 && b1->defined()) new_b1 = *b1 / s.to(b1->scalar_type());
  const at::Tensor new_w2 = w2 * input_channel_factor(s, w2, groups2).to(w2.scalar_type());
  return {new_w1.contiguous(), new_b1, new_w2.contiguous()};
}

at::Tensor quantization_bias_shift(const at::Tensor& w, const at::Tensor& w_quantized, const at::Tensor& input_mean,
                                   int64_t groups) {
  TORCH_CHECK(w.sizes() == w_quantized.sizes() && w.dim() >= 2 && groups >= 1 && w.size(0) % groups == 0 &&
                  input_mean.dim() == 1 && input_mean.size(0) == w.size(1) * groups,
              "qext: bias correction needs a weight [O, C/groups, ...] and input means [C]; got ", w.sizes(),
              " and ", input_mean.sizes(), " with ", groups, " groups");
  const int64_t out = w.size(0), per_group = w.size(1);
  // Taps of one input channel share its mean: sum the error over them first.
  const at::Tensor error = over_taps(w_quantized.to(at::kDouble) - w.to(at::kDouble),
                                     [](const at::Tensor& t) { return t.sum(2); });
  const at::Tensor per_out = at::bmm(error.view({groups, out / groups, per_group}),
                                     input_mean.to(at::kDouble).view({groups, per_group, 1}));
  return per_out.reshape({out}).to(at::kFloat);
}

}  // namespace qext::quant
