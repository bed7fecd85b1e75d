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
  std::tuple<at::Tensor, at::Tensor> qparams() const;
  int64_t batches() const;
  std::tuple<at::Tensor, at::Tensor> min_max() const;
  at::Tensor histogram() const;
  State state() const;
  static c10::intrusive_ptr<ObserverClass> from_state(State state);

 private:
  mutable std::mutex mutex_;
  quant::Observer observer_;
};

void register_observer_class(torch::Library& m);

}  // namespace qext::ops
