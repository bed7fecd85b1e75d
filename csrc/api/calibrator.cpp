// qext::Calibrator: streamed calibration, then conversion with the SQNR
// measured on the first batches, optionally within an accuracy budget.
#include "api/prepared_module.h"
#include "qext/qext.h"

namespace qext {

Calibrator::Calibrator(torch::jit::Module prepared) : prepared_(std::move(prepared)) {
  api::check_prepared(prepared_, "qext::Calibrator");
}

void Calibrator::add(const std::vector<c10::IValue>& batch) {
  api::calibrate_batch(prepared_, batch, batches_);
  ++batches_;
  if (!keeping_) return;
  sqnr_batches_.push_back(batch);
  // The count over kept + [batch] grows while the batch is still wanted.
  keeping_ = sqnr_batch_count(sqnr_batches_) == sqnr_batches_.size();
  if (!keeping_) sqnr_batches_.pop_back();
}

torch::jit::Module Calibrator::convert() const {
  TORCH_CHECK(batches_ > 0, "qext::convert: the calibration data is empty; pass at least one input batch");
  torch::jit::Module out = qext::convert(prepared_);
  measure_sqnr(prepared_, out, sqnr_batches_);
  return out;
}

namespace {

// The int8 layer with the lowest SQNR (the most sensitive), or nullptr.
const LayerReport* least_accurate(const QuantizationReport& rep) {
  const LayerReport* worst = nullptr;
  for (const LayerReport& l : rep.layers) {
    if (l.status == "int8" && l.sqnr_db && (!worst || *l.sqnr_db < *worst->sqnr_db)) worst = &l;
  }
  return worst;
}

// Puts the prepared module's configured exclude list back, however the
// search ends.
class ExcludeRestorer {
 public:
  explicit ExcludeRestorer(torch::jit::Module& prepared)
      : prepared_(prepared), configured_(prepared.attr(api::kExcludeAttr)) {}
  ~ExcludeRestorer() { prepared_.setattr(api::kExcludeAttr, configured_); }
  c10::List<std::string> configured() const {
    c10::List<std::string> copy;
    for (const c10::IValue& pattern : configured_.toListRef()) copy.push_back(pattern.toStringRef());
    return copy;
  }

 private:
  torch::jit::Module& prepared_;
  c10::IValue configured_;
};

}  // namespace

torch::jit::Module Calibrator::convert_within(const std::function<double(torch::jit::Module)>& metric,
                                              double float_score, double max_drop, int64_t max_float_layers) {
  TORCH_CHECK(max_drop >= 0.0, "qext::Calibrator::convert_within: max_drop must be >= 0; got ", max_drop);
  const ExcludeRestorer restorer(prepared_);
  c10::List<std::string> exclude = restorer.configured();
  for (int64_t kept_float = 0;; ++kept_float) {
    torch::jit::Module quantized = convert();
    if (float_score - metric(quantized) <= max_drop) return quantized;
    if (max_float_layers >= 0 && kept_float >= max_float_layers) return quantized;
    const QuantizationReport rep = report(quantized);
    const LayerReport* worst = least_accurate(rep);
    if (!worst) return quantized;
    exclude.push_back(worst->name);
    prepared_.setattr(api::kExcludeAttr, exclude);  // convert reads it
  }
}

torch::jit::Module quantize_static_accuracy_aware(const torch::jit::Module& model,
                                                  const std::vector<std::vector<c10::IValue>>& calibration_inputs,
                                                  const std::function<double(torch::jit::Module)>& metric,
                                                  double max_drop, const StaticConfig& config, int64_t max_float_layers) {
  TORCH_CHECK(!calibration_inputs.empty(),
              "qext::quantize_static_accuracy_aware: the calibration data is empty; pass at least one input batch");
  Calibrator calibrator(prepare_static(model, config));
  for (const auto& batch : calibration_inputs) calibrator.add(batch);
  return calibrator.convert_within(metric, metric(model), max_drop, max_float_layers);
}

}  // namespace qext
