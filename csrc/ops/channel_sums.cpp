#include "ops/channel_sums.h"

#include <ATen/ATen.h>
#include <ATen/WrapDimUtils.h>

#include <vector>

namespace qext::ops {

void observe_channel_sum_(const at::Tensor& x, at::Tensor sums, int64_t dim) {
  constexpr const char* op = "qext::observe_channel_sum_";
  TORCH_CHECK(sums.dim() == 1 && sums.size(0) >= 2 && sums.scalar_type() == at::kDouble, op,
              ": sums must be a float64 [C + 1] tensor; got ", sums.scalar_type(), " ", sums.sizes());
  if (!x.is_floating_point() || x.numel() == 0) return;
  TORCH_CHECK(x.dim() >= 1, op, ": expected a tensor with a channel dimension; got a 0-d tensor");
  const int64_t d = at::maybe_wrap_dim(dim, x.dim());
  const int64_t channels = sums.size(0) - 1;
  TORCH_CHECK(x.size(d) == channels, op, ": expected ", channels, " channels along dimension ", d, "; got shape ",
              x.sizes());
  std::vector<int64_t> others;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i != d) others.push_back(i);
  }
  // sum() over an empty dimension list would reduce everything.
  const at::Tensor per_channel = others.empty() ? x.detach().to(at::kDouble)
                                                : x.detach().sum(others, /*keepdim=*/false, at::kDouble);
  if (!at::isfinite(per_channel).all().item<bool>()) return;
  sums.narrow(0, 0, channels).add_(per_channel.to(sums.device()));
  sums.narrow(0, channels, 1).add_(static_cast<double>(x.numel() / channels));
}

at::Tensor channel_means(const at::Tensor& sums) {
  const int64_t channels = sums.size(0) - 1;
  const double count = sums[channels].item<double>();
  if (count <= 0) return {};
  return (sums.narrow(0, 0, channels) / count).to(at::kFloat);
}

}  // namespace qext::ops
