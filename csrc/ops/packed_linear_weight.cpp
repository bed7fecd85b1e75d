#include "ops/packed_linear_weight.h"

#include <ATen/ATen.h>

#include "ops/linear_dynamic.h"
#include "quant/tensor_quant.h"

namespace qext::ops {

namespace {

// Checks come before any size is read (the weight may come from a file).
kernels::PackedWeights checked_pack(const at::Tensor& weight, int64_t activation_bits) {
  activation_qmax("qext::PackedLinearWeight", activation_bits);  // 8 or 7, else a clear error
  TORCH_CHECK(weight.dim() == 2, "qext::PackedLinearWeight: expected a 2-D [out, in] weight; got ",
              weight.dim(), "-D");
  TORCH_CHECK(weight.scalar_type() == at::kChar,
              "qext::PackedLinearWeight: expected an int8 weight; got ", weight.scalar_type());
  TORCH_CHECK(weight.size(0) > 0 && weight.size(1) > 0,
              "qext::PackedLinearWeight: weight must not be empty; got shape ", weight.sizes());
  const at::Tensor w = weight.contiguous();
  return kernels::PackedWeights(w.data_ptr<int8_t>(), w.size(0), w.size(1), kernels::active_isa(),
                                static_cast<int>(activation_bits));
}

}  // namespace

PackedLinearWeight::PackedLinearWeight(const at::Tensor& weight, const at::Tensor& scales, int64_t activation_bits)
    : activation_bits_(activation_bits),
      packed_(checked_pack(weight, activation_bits)),
      scales_(scales.to(at::kFloat).contiguous().clone()) {
  TORCH_CHECK(scales_.dim() == 1 && scales_.numel() == weight.size(0),
              "qext::PackedLinearWeight: expected ", weight.size(0), " scales; got shape ",
              scales.sizes());
  TORCH_CHECK(at::all(at::isfinite(scales_) & (scales_ > 0)).item<bool>(),
              "qext::PackedLinearWeight: scales must be finite and > 0");
}

c10::intrusive_ptr<PackedLinearWeight> PackedLinearWeight::from_float(const at::Tensor& weight, bool per_channel,
                                                                      int64_t qmax, int64_t activation_bits) {
  TORCH_CHECK(weight.dim() == 2, "qext::quantize_linear_weight: expected a 2-D [out, in] weight; got ",
              weight.dim(), "-D");
  TORCH_CHECK(weight.scalar_type() == at::kFloat,
              "qext::quantize_linear_weight: expected a float32 weight; got ", weight.scalar_type());
  const std::optional<int64_t> axis = per_channel ? std::optional<int64_t>(0) : std::nullopt;
  TORCH_CHECK(qmax >= 1 && qmax <= 127, "qext::quantize_linear_weight: qmax must be in [1, 127]; got ", qmax);
  auto [scale, zp] = quant::tensor_qparams(weight, axis, -qmax, qmax, /*symmetric=*/true);
  at::Tensor q = quant::quantize(weight, scale, zp, axis, -qmax, qmax);
  at::Tensor scales = per_channel ? scale : scale.reshape({1}).expand({weight.size(0)});
  return c10::make_intrusive<PackedLinearWeight>(q, scales, activation_bits);
}

c10::intrusive_ptr<PackedLinearWeight> PackedLinearWeight::from_state(State state) {
  const int64_t version = std::get<0>(state);
  TORCH_CHECK(version == kFormatVersion || version == kFormatVersionSevenBitActivations,
              "qext::PackedLinearWeight: saved with format version ", version, ", this qext reads versions ",
              kFormatVersion, " and ", kFormatVersionSevenBitActivations,
              "; re-quantize the model with this qext version");
  return c10::make_intrusive<PackedLinearWeight>(std::get<1>(state), std::get<2>(state),
                                                 version == kFormatVersionSevenBitActivations ? 7 : 8);
}

std::pair<at::Tensor, at::Tensor> PackedLinearWeight::on_device(const c10::Device& device) const {
  const std::lock_guard<std::mutex> lock(device_mutex_);
  for (const auto& copy : device_copies_) {
    if (copy.first.device() == device) return copy;
  }
  // [N, K] rows viewed as [K, N] columns: the column-major b cuBLASLt's int8
  // GEMM takes, with no transpose per call.
  device_copies_.emplace_back(weight().to(device).t(), scales_.to(device));
  return device_copies_.back();
}

at::Tensor PackedLinearWeight::weight() const {
  at::Tensor w = at::empty({packed_.n(), packed_.k()}, at::kChar);
  packed_.unpack(w.data_ptr<int8_t>());
  return w;
}

PackedLinearWeight::State PackedLinearWeight::state() const {
  // Narrow weights take the byte kernel whatever the hint: their files stay
  // version 1.
  const bool hint_matters = activation_bits_ == 7 && !packed_.narrow();
  return {hint_matters ? kFormatVersionSevenBitActivations : kFormatVersion,
          shared_weight_.defined() ? shared_weight_ : weight(), scales_};
}

}  // namespace qext::ops
