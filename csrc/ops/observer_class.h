// torch.classes.qext.Observer: the observers of quant/observers.h as a
// TorchScript class, so calibration can run inside scripted modules and a
// prepared (half-calibrated) module can be saved and loaded.
#pragma once

#include <torch/custom_class.h>

#include <mutex>

#include "quant/observers.h"

namespace qext::ops {

class ObserverClass : public torch::CustomClassHolder {
 public:
  static constexpr int64_t kFormatVersion = 1;
  using State = std::tuple<int64_t, std::string, std::string, double, double, int64_t,
                           std::optional<int64_t>, int64_t, int64_t, bool, int64_t, at::Tensor,
                           at::Tensor, at::Tensor, double, double>;

  ObserverClass(std::string kind, std::string method, double percentile,
                double averaging_constant, int64_t bins, std::optional<int64_t> axis,
                int64_t qmin, int64_t qmax, bool symmetric);
  explicit ObserverClass(quant::Observer observer) : observer_(std::move(observer)) {}

  // Every access goes through the lock: one prepared module may be calibrated
  // from several threads at once.
  void observe(const at::Tensor& x);
  // qext::observe in a prepared graph: a value that is not float32 at run
  // time (an integer index, a float64 constant) is noted, not observed; convert
  // keeps it float. Empty tensors are skipped. (Not pickled: convert carries the notes to its private
  // copy; after save/load such a value only reads as "not observed".)
  void observe_in_graph(const at::Tensor& x);
  std::string non_float() const;  // the dtype seen when not float32, else ""
  void note_non_float(const std::string& dtype);
  std::tuple<at::Tensor, at::Tensor> qparams() const;
  int64_t batches() const;
  std::tuple<at::Tensor, at::Tensor> min_max() const;
  at::Tensor histogram() const;
  State state() const;
  static c10::intrusive_ptr<ObserverClass> from_state(State state);

 private:
  mutable std::mutex mutex_;
  quant::Observer observer_;
  std::string non_float_;
};

void register_observer_class(torch::Library& m);

// qext::observe_moving_average_: QAT's activation range, x's finite min and
// max folded into the 0-d float32 buffers min_val / max_val by
// quant::moving_average_update (the moving_average observer's rule; min_val
// +inf means nothing seen yet). Any device; a batch without a finite value
// changes nothing.
void observe_moving_average_(const at::Tensor& x, at::Tensor min_val, at::Tensor max_val, double averaging_constant);

}  // namespace qext::ops
