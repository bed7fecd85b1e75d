// Where a quantized module keeps its report and metadata: plain TorchScript
// attributes on the root module, so they survive save/load in C++ and Python.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <map>
#include <string>

#include "qext/qext.h"

namespace qext::api {

inline constexpr const char* kReportAttr = "_qext_report";
inline constexpr const char* kMetadataAttr = "_qext_metadata";

void store_report(torch::jit::Module& module, const QuantizationReport& report,
                  const std::map<std::string, std::string>& metadata);

std::string json_escape(const std::string& s);

// qext::convert, optionally recording each int8 layer's output (qext::_probe).
torch::jit::Module convert(const torch::jit::Module& prepared, bool probe);

}  // namespace qext::api
