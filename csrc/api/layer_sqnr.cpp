// Per-layer SQNR of a static int8 model against its float model.
#include <ATen/ATen.h>

#include <cmath>
#include <map>

#include "api/report_storage.h"
#include "ops/probe.h"
#include "passes/module_copy.h"
#include "passes/static_passes.h"
#include "qext/qext.h"

namespace qext {

namespace {

struct Energy {
  double signal = 0.0, noise = 0.0;
};

std::map<std::string, at::Tensor> run_probed(torch::jit::Module& module, const std::vector<c10::IValue>& inputs) {
  ops::ProbeSession session;
  module.forward(inputs);
  return session.take();
}

}  // namespace

void measure_sqnr(const torch::jit::Module& prepared, torch::jit::Module& quantized,
                  const std::vector<std::vector<c10::IValue>>& inputs) {
  torch::jit::Module reference = passes::private_copy(prepared);
  for (const auto& method : reference.get_methods()) passes::probe_float_layers(reference, *method.graph());
  torch::jit::Module probed = api::convert(prepared, /*probe=*/true);

  at::NoGradGuard no_grad;
  std::map<std::string, Energy> energy;
  for (const auto& batch : inputs) {
    const auto ref = run_probed(reference, batch);
    for (const auto& [key, q] : run_probed(probed, batch)) {
      const auto it = ref.find(key);
      if (it == ref.end() || !it->second.sizes().equals(q.sizes())) continue;
      // Float arithmetic, double sums: converting whole activations to
      // double made this most of quantize_static's time on ResNet-50.
      const at::Tensor& r = it->second;
      energy[key].signal += r.square().sum(at::kDouble).item<double>();
      energy[key].noise += (r - q).square().sum(at::kDouble).item<double>();
    }
  }

  QuantizationReport report = qext::report(quantized);
  for (LayerReport& l : report.layers) {
    const auto it = energy.find(l.name);
    if (l.status != "int8" || it == energy.end()) continue;
    const Energy& e = it->second;
    // Identical outputs: report +inf as "no measurable noise" (stored as is,
    // printed as inf; JSON gets null).
    l.sqnr_db = e.noise > 0 ? 10.0 * std::log10(e.signal / e.noise) : INFINITY;
  }
  std::map<std::string, std::string> metadata;
  if (quantized.hasattr(api::kMetadataAttr)) {
    for (const auto& kv : quantized.attr(api::kMetadataAttr).toGenericDict()) {
      metadata[kv.key().toStringRef()] = kv.value().toStringRef();
    }
  }
  api::store_report(quantized, report, metadata);
}

}  // namespace qext
