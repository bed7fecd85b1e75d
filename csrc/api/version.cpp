#include "qext/qext.h"

#include "kernels/isa.h"
#include "kernels/kernel_table.h"

#ifndef QEXT_VERSION
#error "QEXT_VERSION must be defined by the build"
#endif

namespace qext {

std::string version() { return QEXT_VERSION; }

std::string active_isa() { return kernels::isa_name(kernels::active_isa()); }

void set_isa(const std::string& name) { kernels::set_active_isa(kernels::isa_from_name(name)); }

std::vector<std::pair<std::string, std::string>> kernels_in_use() {
  const kernels::KernelTable& t = kernels::kernel_table(kernels::active_isa());
  return {{"gemm", t.gemm_kernel},         {"depthwise", t.depthwise_kernel},
          {"grouped", t.grouped_kernel},   {"lowbit_gemm", t.lowbit_kernel},
          {"quantize", t.quantize_kernel},
          {"elementwise", t.elementwise_kernel},
          {"lut", t.lut_kernel}, {"pooling", t.pooling_kernel}, {"attention", t.attention_kernel}};
}

std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (kernels::Isa isa : kernels::supported_isas()) names.emplace_back(kernels::isa_name(isa));
  return names;
}

}  // namespace qext
