#include "ops/observer_class.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>

namespace qext::ops {

namespace {

quant::ObserverConfig make_config(std::string kind, std::string method, double percentile,
                                  double averaging_constant, int64_t bins,
                                  std::optional<int64_t> axis, int64_t qmin, int64_t qmax,
                                  bool symmetric) {
  quant::ObserverConfig c;
  c.kind = std::move(kind);
  c.method = std::move(method);
  c.percentile = percentile;
  c.averaging_constant = averaging_constant;
  c.bins = bins;
  c.axis = axis;
  c.qmin = qmin;
  c.qmax = qmax;
  c.symmetric = symmetric;
  return c;
}

template <typename T>
at::Tensor to_tensor(const std::vector<T>& v, at::ScalarType type) {
  return at::tensor(c10::ArrayRef<T>(v), at::TensorOptions().dtype(type));
}

template <typename T>
std::vector<T> from_tensor(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}

}  // namespace

ObserverClass::ObserverClass(std::string kind, std::string method, double percentile,
                             double averaging_constant, int64_t bins,
                             std::optional<int64_t> axis, int64_t qmin, int64_t qmax,
                             bool symmetric)
    : observer_(make_config(std::move(kind), std::move(method), percentile, averaging_constant,
                            bins, axis, qmin, qmax, symmetric)) {}

void ObserverClass::observe(const at::Tensor& x) {
  std::lock_guard<std::mutex> lock(mutex_);
  observer_.observe(x);
}

void ObserverClass::observe_in_graph(const at::Tensor& x) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (x.scalar_type() != at::kFloat) {
    non_float_ = c10::toString(x.scalar_type());
    return;
  }
  if (x.numel() == 0) return;  // (an empty cache or batch): nothing to see
  observer_.observe(x);
}

std::string ObserverClass::non_float() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return non_float_;
}

void ObserverClass::note_non_float(const std::string& dtype) {
  std::lock_guard<std::mutex> lock(mutex_);
  non_float_ = dtype;
}

std::tuple<at::Tensor, at::Tensor> ObserverClass::qparams() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return observer_.qparams();
}

int64_t ObserverClass::batches() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return observer_.batches();
}

std::tuple<at::Tensor, at::Tensor> ObserverClass::min_max() const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto [lo, hi] = observer_.range();
  return {to_tensor(lo, at::kFloat), to_tensor(hi, at::kFloat)};
}

at::Tensor ObserverClass::histogram() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return to_tensor(observer_.state().hist, at::kDouble);
}

ObserverClass::State ObserverClass::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto& c = observer_.config();
  const auto& s = observer_.state();
  return {kFormatVersion, c.kind, c.method, c.percentile, c.averaging_constant, c.bins, c.axis,
          c.qmin, c.qmax, c.symmetric, s.batches, to_tensor(s.min, at::kFloat),
          to_tensor(s.max, at::kFloat), to_tensor(s.hist, at::kDouble), s.hist_lo, s.hist_hi};
}

c10::intrusive_ptr<ObserverClass> ObserverClass::from_state(State st) {
  TORCH_CHECK(std::get<0>(st) == kFormatVersion, "qext::Observer: saved with format version ",
              std::get<0>(st), ", this qext reads version ", kFormatVersion);
  quant::ObserverState s;
  s.batches = std::get<10>(st);
  s.min = from_tensor<float>(std::get<11>(st));
  s.max = from_tensor<float>(std::get<12>(st));
  s.hist = from_tensor<double>(std::get<13>(st));
  s.hist_lo = static_cast<float>(std::get<14>(st));
  s.hist_hi = static_cast<float>(std::get<15>(st));
  return c10::make_intrusive<ObserverClass>(quant::Observer(
      make_config(std::get<1>(st), std::get<2>(st), std::get<3>(st), std::get<4>(st),
                  std::get<5>(st), std::get<6>(st), std::get<7>(st), std::get<8>(st),
                  std::get<9>(st)),
      std::move(s)));
}

void register_observer_class(torch::Library& m) {
  m.class_<ObserverClass>("Observer")
      .def(torch::init<std::string, std::string, double, double, int64_t, std::optional<int64_t>,
                       int64_t, int64_t, bool>())
      .def("observe",
           [](const c10::intrusive_ptr<ObserverClass>& self, const at::Tensor& x) { self->observe(x); })
      .def("calculate_qparams", &ObserverClass::qparams)
      .def("min_max", &ObserverClass::min_max)
      .def("histogram", &ObserverClass::histogram)
      .def("batches", &ObserverClass::batches)
      .def_pickle([](const c10::intrusive_ptr<ObserverClass>& self) { return self->state(); },
                  [](ObserverClass::State st) { return ObserverClass::from_state(std::move(st)); });
}

void observe_moving_average_(const at::Tensor& x, at::Tensor min_val, at::Tensor max_val, double averaging_constant) {
  constexpr const char* op = "qext::observe_moving_average_";
  TORCH_CHECK(x.is_floating_point(), op, ": expected a float tensor; got ", x.scalar_type());
  for (const at::Tensor* t : {&min_val, &max_val}) {
    TORCH_CHECK(t->dim() == 0 && t->scalar_type() == at::kFloat, op,
                ": min_val and max_val must be 0-d float32 tensors; got ", t->scalar_type(), " ", t->sizes());
  }
  TORCH_CHECK(averaging_constant > 0.0 && averaging_constant <= 1.0, op, ": averaging_constant must be in (0, 1]; got ",
              averaging_constant);
  at::Tensor values = x.detach().to(at::kFloat);
  const at::Tensor finite = at::isfinite(values);
  if (!finite.all().item<bool>()) values = values.masked_select(finite);
  if (values.numel() == 0) return;
  const auto [lo, hi] = at::aminmax(values);
  float mn = min_val.item<float>(), mx = max_val.item<float>();
  quant::moving_average_update(mn, mx, lo.item<float>(), hi.item<float>(), averaging_constant,
                               /*first=*/!std::isfinite(mn));
  min_val.fill_(mn);
  max_val.fill_(mx);
}

}  // namespace qext::ops
