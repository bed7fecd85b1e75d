#include <ATen/ATen.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "api/prepared_module.h"
#include "api/report_storage.h"
#include "ops/observer_class.h"
#include "passes/module_copy.h"
#include "passes/native_fast_paths.h"
#include "passes/static_passes.h"
#include "passes/static_patterns.h"
#include "qext/qext.h"

namespace qext {

namespace {

using api::kActivationBitsAttr;
using api::kBiasCorrectionAttr;
using api::kCheckFiniteAttr;
using api::kEqualizedAttr;
using api::kExcludeAttr;
using api::kWeightBitsAttr;

// The observers of a prepared module (root attributes), by attribute name.
std::map<std::string, c10::intrusive_ptr<ops::ObserverClass>> observers_of(const torch::jit::Module& prepared) {
  const auto observer_type = c10::getCustomClassType<c10::intrusive_ptr<ops::ObserverClass>>();
  std::map<std::string, c10::intrusive_ptr<ops::ObserverClass>> found;
  for (const auto& attr : prepared.named_attributes(/*recurse=*/false)) {
    if (attr.value.type() == observer_type) found[attr.name] = attr.value.toCustomClass<ops::ObserverClass>();
  }
  return found;
}

// One row per layer over all methods: a layer that runs int8 in one method
// (forward) and float in another (a helper such as torchvision's
// _forward_impl, inlined into forward and never called on its own) is int8.
void add_row(QuantizationReport& report, LayerReport row) {
  for (LayerReport& seen : report.layers) {
    if (seen.name != row.name || seen.kind != row.kind) continue;
    if (seen.status != "int8" && row.status == "int8") seen = std::move(row);
    return;
  }
  report.layers.push_back(std::move(row));
}

}  // namespace

// The per-layer SQNR uses the first calibration batches, up to this many
// samples and batches: a stable figure for little extra time.
size_t sqnr_batch_count(const std::vector<std::vector<c10::IValue>>& inputs) {
  constexpr int64_t kSqnrSamples = 32;
  constexpr size_t kSqnrBatches = 16;
  size_t n = 0;
  for (int64_t samples = 0; n < inputs.size() && n < kSqnrBatches && samples < kSqnrSamples; ++n) {
    const auto& first = inputs[n];
    const bool sized = !first.empty() && first[0].isTensor() && first[0].toTensor().dim() > 0;
    samples += sized ? first[0].toTensor().size(0) : 1;
  }
  return n;
}

torch::jit::Module prepare_static(const torch::jit::Module& model, const StaticConfig& config) {
  TORCH_CHECK(config.weight_bits >= 2 && config.weight_bits <= 8,
              "qext::prepare_static: weight_bits must be in [2, 8]; got ", config.weight_bits);
  TORCH_CHECK(config.activation_bits == 8 || config.activation_bits == 7,
              "qext::prepare_static: activation_bits must be 8 or 7; got ", config.activation_bits);
  torch::jit::Module out = passes::private_copy(model);
  out.eval();
  int64_t equalized = 0;
  for (const auto& method : out.get_methods()) {
    std::shared_ptr<torch::jit::Graph> graph = method.graph();
    torch::jit::Inline(*graph);
    passes::freeze_training_flags(out, *graph);  // the int8 model is for inference
    // Settles functional branches such as F.relu's `if inplace:` so patterns
    // (conv -> relu) are visible.
    torch::jit::ConstantPropagation(graph);
    passes::inline_known_ifs(out, *graph);  // e.g. Conv2d's padding_mode branch
    torch::jit::EliminateDeadCode(graph);
    // nn.TransformerEncoderLayer / MultiheadAttention pick a native fused op
    // at run time in eval mode, which would bypass every observer: keep only
    // their decomposed path, whose Linear layers become int8.
    std::set<std::string> weights;
    for (const passes::StaticLayer& l : passes::find_static_layers(out, *graph)) {
      if (l.weight && l.unsupported.empty()) weights.insert(l.weight->qualified());
    }
    passes::disable_native_fast_paths(out, *graph, weights);
    if (config.fold_batch_norm) {
      passes::fold_batch_norms(out, *graph);
      passes::fold_channel_scales(out, *graph);
    }
    if (config.equalize) equalized += passes::equalize_layers(out, *graph, config.exclude);
    passes::insert_observers(out, *graph, config);
    if (config.bias_correction) passes::insert_channel_sums(out, *graph, config.exclude);
    torch::jit::EliminateDeadCode(graph);
  }
  c10::List<std::string> exclude;
  for (const auto& p : config.exclude) exclude.push_back(p);
  passes::set_attribute(out, kExcludeAttr, c10::ListType::create(c10::StringType::get()), exclude);
  passes::set_attribute(out, kWeightBitsAttr, c10::IntType::get(), config.weight_bits);
  passes::set_attribute(out, kActivationBitsAttr, c10::IntType::get(), config.activation_bits);
  passes::set_attribute(out, kCheckFiniteAttr, c10::BoolType::get(), config.check_finite);
  passes::set_attribute(out, kEqualizedAttr, c10::IntType::get(), equalized);
  passes::set_attribute(out, kBiasCorrectionAttr, c10::BoolType::get(), config.bias_correction);
  return out;
}

void calibrate(torch::jit::Module& prepared, const std::vector<std::vector<c10::IValue>>& inputs,
               int64_t first_batch) {
  api::check_prepared(prepared, "qext::calibrate");
  TORCH_CHECK(!inputs.empty(), "qext::calibrate: the calibration data is empty; pass at least one input batch");
  for (size_t i = 0; i < inputs.size(); ++i) api::calibrate_batch(prepared, inputs[i], first_batch + static_cast<int64_t>(i));
}

namespace api {

void check_prepared(const torch::jit::Module& module, const char* who) {
  TORCH_CHECK(module.hasattr(kExcludeAttr), who, ": the module was not prepared by qext::prepare_static");
}

void calibrate_batch(torch::jit::Module& prepared, const std::vector<c10::IValue>& batch, int64_t index) {
  at::NoGradGuard no_grad;
  try {
    prepared.forward(batch);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "qext::calibrate: calibration batch ", index, " failed: ", error_summary(e));
  }
}

torch::jit::Module convert(const torch::jit::Module& prepared, bool probe) {
  check_prepared(prepared, "qext::convert");
  std::vector<std::string> exclude;
  for (const auto& p : prepared.attr(kExcludeAttr).toListRef()) exclude.push_back(p.toStringRef());
  const int64_t weight_bits = prepared.hasattr(kWeightBitsAttr) ? prepared.attr(kWeightBitsAttr).toInt() : 8;
  const bool check_finite = !prepared.hasattr(kCheckFiniteAttr) || prepared.attr(kCheckFiniteAttr).toBool();
  torch::jit::Module out = passes::private_copy(prepared);
  const auto copies = observers_of(out);
  const auto observers = observers_of(prepared);
  bool calibrated = observers.empty();  // nothing to calibrate (or QAT's fixed ranges only)
  for (const auto& [name, observer] : observers) {
    calibrated = calibrated || observer->batches() > 0 || !observer->non_float().empty();
    // Notes of values seen as integers are not pickled: carry them over.
    if (copies.count(name) && !observer->non_float().empty()) copies.at(name)->note_non_float(observer->non_float());
  }
  TORCH_CHECK(calibrated, "qext::convert: the module was never calibrated (no observer saw data); run "
              "calibration inputs through the prepared module first");
  QuantizationReport report;
  report.mode = "static";
  for (const auto& method : out.get_methods()) {
    // The copy's graphs were compiled again from the saved code, where the
    // constants prepare folded (int lists such as pooling sizes) are literals.
    std::shared_ptr<torch::jit::Graph> graph = method.graph();
    torch::jit::ConstantPropagation(graph);
    for (LayerReport& row : passes::convert_static_layers(out, *graph, exclude, weight_bits, check_finite, probe)) {
      add_row(report, std::move(row));
    }
  }
  const auto flag = [&](const char* attr) { return prepared.hasattr(attr) && prepared.attr(attr).toBool(); };
  const auto count = [&](const char* attr, int64_t absent) {
    return prepared.hasattr(attr) ? prepared.attr(attr).toInt() : absent;
  };
  const int64_t equalized = count(kEqualizedAttr, 0), activation_bits = count(kActivationBitsAttr, 8);
  api::store_report(out, report, {{"qext_version", version()}, {"mode", "static"},
                                  {"weight_bits", std::to_string(weight_bits)},
                                  {"activation_bits", std::to_string(activation_bits)},
                                  {"check_finite", check_finite ? "true" : "false"},
                                  {"equalized_pairs", std::to_string(equalized)},
                                  {"bias_correction", flag(kBiasCorrectionAttr) ? "true" : "false"}});
  return out;
}

}  // namespace api

torch::jit::Module convert(const torch::jit::Module& prepared) { return api::convert(prepared, false); }

torch::jit::Module quantize_static(const torch::jit::Module& model,
                                   const std::vector<std::vector<c10::IValue>>& calibration_inputs,
                                   const StaticConfig& config) {
  TORCH_CHECK(!calibration_inputs.empty(),
              "qext::quantize_static: the calibration data is empty; pass at least one input batch");
  Calibrator calibrator(prepare_static(model, config));
  for (const auto& batch : calibration_inputs) calibrator.add(batch);
  return calibrator.convert();
}

const char* observer_name(Observer observer) {
  switch (observer) {
    case Observer::MinMax: return "min_max";
    case Observer::MovingAverage: return "moving_average";
    case Observer::Histogram: return "histogram";
  }
  return "min_max";
}

const char* histogram_method_name(HistogramMethod method) {
  switch (method) {
    case HistogramMethod::Percentile: return "percentile";
    case HistogramMethod::Entropy: return "entropy";
    case HistogramMethod::Mse: return "mse";
  }
  return "percentile";
}

std::vector<std::string> static_pass_through_ops() { return passes::pass_through_ops(); }

}  // namespace qext
