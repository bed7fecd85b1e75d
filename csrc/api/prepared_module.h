// What prepare_static leaves on the prepared module's root for calibration
// and convert to read, and the one step both calibration entry points take.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <vector>

namespace qext::api {

inline constexpr const char* kExcludeAttr = "_qext_static_exclude";
inline constexpr const char* kWeightBitsAttr = "_qext_static_weight_bits";
inline constexpr const char* kActivationBitsAttr = "_qext_static_activation_bits";
inline constexpr const char* kCheckFiniteAttr = "_qext_static_check_finite";
inline constexpr const char* kEqualizedAttr = "_qext_static_equalized_pairs";
inline constexpr const char* kBiasCorrectionAttr = "_qext_static_bias_correction";

// Throws unless `module` came from prepare_static; `who` names the caller.
void check_prepared(const torch::jit::Module& module, const char* who);

// Runs calibration batch number `index` through the prepared module; a
// failure names the batch.
void calibrate_batch(torch::jit::Module& prepared, const std::vector<c10::IValue>& batch, int64_t index);

}  // namespace qext::api
