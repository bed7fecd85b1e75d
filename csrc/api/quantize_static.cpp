#include <ATen/ATen.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <algorithm>
#include <sstream>

#include "api/report_storage.h"
#include "passes/module_copy.h"
#include "passes/static_passes.h"
#include "passes/static_patterns.h"
#include "qext/qext.h"

namespace qext {

namespace {

constexpr const char* kExcludeAttr = "_qext_static_exclude";
constexpr const char* kWeightBitsAttr = "_qext_static_weight_bits";
constexpr const char* kCheckFiniteAttr = "_qext_static_check_finite";
// quantize_static measures the per-layer SQNR on at most this many batches.
constexpr size_t kSqnrBatches = 16;

}  // namespace

torch::jit::Module prepare_static(const torch::jit::Module& model, const StaticConfig& config) {
  TORCH_CHECK(config.weight_bits >= 2 && config.weight_bits <= 8,
              "qext::prepare_static: weight_bits must be in [2, 8]; got ", config.weight_bits);
  torch::jit::Module out = passes::private_copy(model);
  out.eval();
  for (const auto& method : out.get_methods()) {
    std::shared_ptr<torch::jit::Graph> graph = method.graph();
    torch::jit::Inline(*graph);
    // Settles functional branches such as F.relu's `if inplace:` so patterns
    // (conv -> relu) are visible.
    torch::jit::ConstantPropagation(graph);
    passes::inline_known_ifs(out, *graph);  // e.g. Conv2d's padding_mode branch
    torch::jit::EliminateDeadCode(graph);
    if (config.fold_batch_norm) passes::fold_batch_norms(out, *graph);
    passes::insert_observers(out, *graph, config);
    torch::jit::EliminateDeadCode(graph);
  }
  c10::List<std::string> exclude;
  for (const auto& p : config.exclude) exclude.push_back(p);
  passes::set_attribute(out, kExcludeAttr, c10::ListType::create(c10::StringType::get()), exclude);
  passes::set_attribute(out, kWeightBitsAttr, c10::IntType::get(), config.weight_bits);
  passes::set_attribute(out, kCheckFiniteAttr, c10::BoolType::get(), config.check_finite);
  return out;
}

void calibrate(torch::jit::Module& prepared, const std::vector<std::vector<c10::IValue>>& inputs) {
  TORCH_CHECK(prepared.hasattr(kExcludeAttr),
              "qext::calibrate: the module was not prepared by qext::prepare_static");
  TORCH_CHECK(!inputs.empty(), "qext::calibrate: the calibration data is empty; pass at least one input batch");
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    try {
      prepared.forward(inputs[i]);
    } catch (const std::exception& e) {
      TORCH_CHECK(false, "qext::calibrate: calibration batch ", i, " failed: ", error_summary(e));
    }
  }
}

namespace api {

torch::jit::Module convert(const torch::jit::Module& prepared, bool probe) {
  TORCH_CHECK(prepared.hasattr(kExcludeAttr),
              "qext::convert: the module was not prepared by qext::prepare_static");
  std::vector<std::string> exclude;
  for (const auto& p : prepared.attr(kExcludeAttr).toListRef()) exclude.push_back(p.toStringRef());
  const int64_t weight_bits = prepared.hasattr(kWeightBitsAttr) ? prepared.attr(kWeightBitsAttr).toInt() : 8;
  const bool check_finite = !prepared.hasattr(kCheckFiniteAttr) || prepared.attr(kCheckFiniteAttr).toBool();
  torch::jit::Module out = passes::private_copy(prepared);
  QuantizationReport report;
  report.mode = "static";
  for (const auto& method : out.get_methods()) {
    // The copy's graphs were compiled again from the saved code, where the
    // constants prepare folded (int lists such as pooling sizes) are literals.
    std::shared_ptr<torch::jit::Graph> graph = method.graph();
    torch::jit::ConstantPropagation(graph);
    auto rows = passes::convert_static_layers(out, *graph, exclude, weight_bits, check_finite, probe);
    report.layers.insert(report.layers.end(), rows.begin(), rows.end());
  }
  api::store_report(out, report, {{"qext_version", version()}, {"mode", "static"},
                                  {"weight_bits", std::to_string(weight_bits)},
                                  {"check_finite", check_finite ? "true" : "false"}});
  return out;
}

}  // namespace api

torch::jit::Module convert(const torch::jit::Module& prepared) { return api::convert(prepared, false); }

torch::jit::Module quantize_static(const torch::jit::Module& model,
                                   const std::vector<std::vector<c10::IValue>>& calibration_inputs,
                                   const StaticConfig& config) {
  TORCH_CHECK(!calibration_inputs.empty(),
              "qext::quantize_static: the calibration data is empty; pass at least one input batch");
  torch::jit::Module prepared = prepare_static(model, config);
  calibrate(prepared, calibration_inputs);
  torch::jit::Module out = convert(prepared);
  const size_t sqnr_batches = std::min(calibration_inputs.size(), kSqnrBatches);
  measure_sqnr(prepared, out, {calibration_inputs.begin(), calibration_inputs.begin() + sqnr_batches});
  return out;
}

}  // namespace qext
