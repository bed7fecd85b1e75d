// qext::observe_channel_sum_: per-channel sums of calibration activations,
// for bias correction (quant/equalization.h) at static convert.
#pragma once

#include <ATen/core/Tensor.h>

namespace qext::ops {

// Adds x's per-channel sums along `dim` (in float64) to sums[:C] and the
// number of values per channel to sums[C]; sums is float64 [C + 1]. The mean
// is sums[:C] / sums[C]. A batch that is not floating point, empty, or sums
// to NaN/Inf changes nothing (the range observer on the same value reports it).
void observe_channel_sum_(const at::Tensor& x, at::Tensor sums, int64_t dim);

// The means of a sums buffer, or an undefined tensor if nothing was summed.
at::Tensor channel_means(const at::Tensor& sums);

}  // namespace qext::ops
