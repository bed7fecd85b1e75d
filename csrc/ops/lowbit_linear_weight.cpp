#include "ops/lowbit_linear_weight.h"

#include <ATen/ATen.h>

#include <string>

namespace qext::ops {

namespace {

constexpr const char* kClass = "qext::LowBitLinearWeight";

void check_bits_and_group(int64_t bits, int64_t group_size) {
  TORCH_CHECK(kernels::lowbit_supported(bits), kClass, ": bits must be 4, 2 or 1; got ", bits);
  TORCH_CHECK(group_size >= 0 && group_size % 4 == 0, kClass,
              ": group_size must be a multiple of 4 (e.g. 32, 64, 128), or 0 for one group per row; got ",
              group_size);
}

// Checks come before any size is read (the tensors may come from a file).
kernels::LowBitWeights checked_pack(const at::Tensor& levels, const at::Tensor& scales, int64_t bits,
                                    int64_t group_size) {
  check_bits_and_group(bits, group_size);
  TORCH_CHECK(levels.dim() == 2 && levels.scalar_type() == at::kChar && levels.size(0) > 0 && levels.size(1) > 0,
              kClass, ": expected non-empty int8 levels [out, in]; got ", levels.scalar_type(), " of shape ",
              levels.sizes());
  const int64_t n = levels.size(0), k = levels.size(1);
  const int64_t g = kernels::lowbit_group_size(group_size, k), groups = (k + g - 1) / g;
  TORCH_CHECK(scales.dim() == 2 && scales.scalar_type() == at::kFloat && scales.size(0) == n &&
                  scales.size(1) == groups,
              kClass, ": expected float32 scales [", n, ", ", groups, "]; got ", scales.scalar_type(), " of shape ",
              scales.sizes());
  TORCH_CHECK(at::isfinite(scales).all().item<bool>(), kClass, ": scales must be finite");
  const at::Tensor l = levels.contiguous(), s = scales.contiguous();
  try {
    return kernels::LowBitWeights(l.data_ptr<int8_t>(), s.data_ptr<float>(), n, k, static_cast<int>(bits),
                                  group_size);
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK(false, e.what());
  }
}

}  // namespace

LowBitLinearWeight::LowBitLinearWeight(const at::Tensor& levels, const at::Tensor& scales, int64_t bits,
                                       int64_t group_size)
    : scales_(scales.contiguous().clone()),
      group_size_(group_size),
      packed_(checked_pack(levels, scales, bits, group_size)) {}

c10::intrusive_ptr<LowBitLinearWeight> LowBitLinearWeight::from_float(const at::Tensor& weight, int64_t bits,
                                                                      int64_t group_size) {
  check_bits_and_group(bits, group_size);
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kFloat && weight.numel() > 0,
              "qext::quantize_linear_weight_lowbit: expected a non-empty float32 [out, in] weight; got ",
              weight.scalar_type(), " of shape ", weight.sizes());
  TORCH_CHECK(at::isfinite(weight).all().item<bool>(), "qext::quantize_linear_weight_lowbit: weight holds NaN or Inf");
  const int64_t n = weight.size(0), k = weight.size(1), g = kernels::lowbit_group_size(group_size, k);
  const int64_t groups = (k + g - 1) / g;
  // [N, groups, g], zero-padded: padding changes no group's max or |w| sum.
  const at::Tensor w = at::constant_pad_nd(weight, {0, groups * g - k}).reshape({n, groups, g});
  at::Tensor scales, levels;
  if (bits == 1) {
    const at::Tensor count = at::clamp_max(k - at::arange(groups, at::kLong) * g, g).to(at::kFloat);
    scales = w.abs().sum(-1) / count;
    levels = at::where(w >= 0, 1, -1).to(at::kChar);
  } else {
    const at::Tensor extreme = w.gather(-1, w.abs().argmax(-1, /*keepdim=*/true)).squeeze(-1);
    scales = extreme / static_cast<double>(kernels::lowbit_min_level(static_cast<int>(bits)));
    const at::Tensor safe = at::where(scales == 0, at::ones_like(scales), scales).unsqueeze(-1);
    levels = at::round(w / safe)
                 .clamp(kernels::lowbit_min_level(static_cast<int>(bits)), kernels::lowbit_max_level(static_cast<int>(bits)))
                 .to(at::kChar);
  }
  levels = levels.reshape({n, groups * g}).narrow(1, 0, k).contiguous();
  return c10::make_intrusive<LowBitLinearWeight>(levels, scales.contiguous(), bits, group_size);
}

at::Tensor LowBitLinearWeight::levels() const {
  const int64_t n = out_features(), k = in_features();
  at::Tensor l = at::empty({n, k}, at::kChar);
  int8_t* p = l.data_ptr<int8_t>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) p[i * k + j] = static_cast<int8_t>(packed_.level(i, j));
  return l;
}

at::Tensor LowBitLinearWeight::dequantized() const {
  const int64_t k = in_features(), g = packed_.group_size();
  const at::Tensor per_input = scales_.repeat_interleave(g, 1).narrow(1, 0, k);
  return levels().to(at::kFloat) * per_input;
}

LowBitLinearWeight::State LowBitLinearWeight::state() const {
  const int64_t n = out_features(), k = in_features(), b = bits(), per_byte = 8 / b;
  const std::lock_guard<std::mutex> lock(saved_codes_mutex_);
  if (saved_codes_.defined()) return {kFormatVersion, b, group_size_, k, saved_codes_, scales_};
  at::Tensor codes = at::zeros({n, (k + per_byte - 1) / per_byte}, at::kByte);
  uint8_t* c = codes.data_ptr<uint8_t>();
  const int64_t row_bytes = codes.size(1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int code = kernels::lowbit_code(packed_.level(i, j), static_cast<int>(b));
      c[i * row_bytes + j / per_byte] |= static_cast<uint8_t>(code << ((j % per_byte) * b));
    }
  saved_codes_ = codes;
  return {kFormatVersion, b, group_size_, k, codes, scales_};
}

c10::intrusive_ptr<LowBitLinearWeight> LowBitLinearWeight::from_state(State state) {
  const auto& [version, bits, group_size, k, codes, scales] = state;
  TORCH_CHECK(version == kFormatVersion, kClass, ": saved with format version ", version, ", this qext reads version ",
              kFormatVersion, "; re-quantize the model with this qext version");
  check_bits_and_group(bits, group_size);
  const int64_t per_byte = 8 / bits;
  TORCH_CHECK(k > 0 && codes.dim() == 2 && codes.scalar_type() == at::kByte && codes.size(0) > 0 &&
                  codes.size(1) == (k + per_byte - 1) / per_byte,
              kClass, ": saved codes do not fit ", k, " inputs at ", bits, " bits; got ", codes.scalar_type(),
              " of shape ", codes.sizes());
  const int64_t n = codes.size(0), row_bytes = codes.size(1);
  const at::Tensor cc = codes.contiguous();
  const uint8_t* c = cc.data_ptr<uint8_t>();
  at::Tensor levels = at::empty({n, k}, at::kChar);
  int8_t* l = levels.data_ptr<int8_t>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int code = (c[i * row_bytes + j / per_byte] >> ((j % per_byte) * bits)) & ((1 << bits) - 1);
      l[i * k + j] = static_cast<int8_t>(kernels::lowbit_level(code, static_cast<int>(bits)));
    }
  return c10::make_intrusive<LowBitLinearWeight>(levels, scales, bits, group_size);
}

}  // namespace qext::ops
