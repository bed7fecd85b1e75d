// Observers: watch float tensors during calibration and pick the range to
// quantize them with. Per tensor or per channel; symmetric or asymmetric.
//
//   min_max         the running min and max (torch.ao MinMaxObserver)
//   moving_average  exponential moving average of each batch's min and max
//   histogram       a histogram of the values; the range is chosen by
//                   percentile, entropy (KL divergence, TensorRT-style) or
//                   minimum expected squared quantization error (MSE)
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "quant/qparams.h"

namespace qext::quant {

struct ObserverConfig {
  std::string kind = "min_max";      // min_max | moving_average | histogram
  std::string method = "percentile";  // histogram only: percentile | entropy | mse
  double percentile = 99.99;          // histogram/percentile: share of values kept, in %
  double averaging_constant = 0.01;   // moving_average: weight of each new batch
  int64_t bins = 2048;                // histogram
  std::optional<int64_t> axis;        // per-channel axis (min_max / moving_average only)
  int64_t qmin = 0, qmax = 255;
  bool symmetric = false;
};

// Throws std::invalid_argument naming the bad field.
void validate(const ObserverConfig& config);

// The moving-average range rule, shared by the moving_average observer and
// QAT's activation fake-quantize (qext::observe_moving_average_): the first
// batch sets [min, max]; each later one moves them averaging_constant of the
// way to its own (in float32: min += a * (lo - min)).
void moving_average_update(float& min, float& max, float lo, float hi, double averaging_constant, bool first);

// Everything an observer has learnt, for pickling.
struct ObserverState {
  int64_t batches = 0;
  std::vector<float> min, max;  // per channel (size 1 per tensor)
  std::vector<double> hist;
  float hist_lo = 0.0f, hist_hi = 0.0f;
};

// Also checks a (possibly loaded) state against its config: sizes, counts,
// finiteness and ordering of every field.
void validate(const ObserverConfig& config, const ObserverState& state);

class Observer {
 public:
  explicit Observer(ObserverConfig config, ObserverState state = {});
  const ObserverState& state() const { return s_; }

  // Folds one batch in. Errors on NaN/Inf, an empty tensor, a non-float
  // tensor, or a channel count that changed.
  void observe(const at::Tensor& x);
  int64_t batches() const { return s_.batches; }
  // The chosen [min, max] per channel (one entry per tensor). Errors when
  // nothing was observed.
  std::pair<std::vector<float>, std::vector<float>> range() const;
  // Scale (float32) and zero point (int32); [C] per channel, [] per tensor.
  std::tuple<at::Tensor, at::Tensor> qparams() const;
  const ObserverConfig& config() const { return config_; }
 private:
  void observe_histogram(const at::Tensor& x);
  std::pair<float, float> histogram_range() const;

  ObserverConfig config_;
  ObserverState s_;
};

// The histogram range rules on their own (bins over [lo, hi]), so they can be
// tested against reference implementations.
std::pair<float, float> percentile_range(const std::vector<double>& hist, float lo, float hi,
                                         double percentile);
std::pair<float, float> mse_range(const std::vector<double>& hist, float lo, float hi,
                                  int64_t qmin, int64_t qmax, bool symmetric);
std::pair<float, float> entropy_range(const std::vector<double>& hist, float lo, float hi,
                                      int64_t qmin, int64_t qmax);

}  // namespace qext::quant
