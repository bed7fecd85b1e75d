#include "ops/packed_rnn_weight.h"

#include <ATen/ATen.h>

namespace qext::ops {

namespace {

constexpr const char* kClass = "qext::PackedRnnWeight";

PackedRnnWeight::Mode mode_of(const std::string& name) {
  TORCH_CHECK(name == "lstm" || name == "gru", kClass, ": mode must be 'lstm' or 'gru'; got '", name, "'");
  return name == "lstm" ? PackedRnnWeight::Mode::Lstm : PackedRnnWeight::Mode::Gru;
}

}  // namespace

PackedRnnWeight::PackedRnnWeight(Mode mode, int64_t num_layers, bool bidirectional,
                                 std::vector<c10::intrusive_ptr<PackedLinearWeight>> weights,
                                 std::vector<at::Tensor> biases)
    : mode_(mode), num_layers_(num_layers), bidirectional_(bidirectional), weights_(std::move(weights)),
      biases_(std::move(biases)) {
  TORCH_CHECK(num_layers >= 1 && num_layers <= 1024, kClass, ": num_layers must be in [1, 1024]; got ", num_layers);
  const int64_t cells = num_layers * directions();
  TORCH_CHECK(static_cast<int64_t>(weights_.size()) == 2 * cells, kClass, ": expected ", 2 * cells,
              " weights (w_ih, w_hh per layer and direction); got ", weights_.size());
  TORCH_CHECK(biases_.empty() || static_cast<int64_t>(biases_.size()) == 2 * cells, kClass, ": expected 0 or ",
              2 * cells, " biases; got ", biases_.size());
  for (const auto& w : weights_) TORCH_CHECK(w, kClass, ": a weight is None");
  hidden_ = hh(0, 0)->in_features();
  const int64_t rows = gates() * hidden_;
  for (int64_t l = 0; l < num_layers; ++l) {
    for (int64_t d = 0; d < directions(); ++d) {
      TORCH_CHECK(ih(l, d)->out_features() == rows && hh(l, d)->out_features() == rows &&
                      hh(l, d)->in_features() == hidden_,
                  kClass, ": layer ", l, " direction ", d, ": expected weights [", rows, ", *] and [", rows, ", ",
                  hidden_, "]; got [", ih(l, d)->out_features(), ", ", ih(l, d)->in_features(), "] and [",
                  hh(l, d)->out_features(), ", ", hh(l, d)->in_features(), "]");
      TORCH_CHECK(l == 0 || ih(l, d)->in_features() == hidden_ * directions(), kClass, ": layer ", l,
                  " reads ", ih(l, d)->in_features(), " features; the layer below gives ", hidden_ * directions());
    }
  }
  for (auto& b : biases_) {
    TORCH_CHECK(b.dim() == 1 && b.size(0) == rows, kClass, ": each bias must be [", rows, "]; got ", b.sizes());
    b = b.to(at::kFloat).contiguous();
  }
}

c10::intrusive_ptr<PackedRnnWeight> PackedRnnWeight::from_float(const std::string& mode,
                                                                const std::vector<at::Tensor>& params,
                                                                bool has_biases, int64_t num_layers,
                                                                bool bidirectional, bool per_channel, int64_t qmax) {
  const int64_t per_cell = has_biases ? 4 : 2;
  const int64_t cells = num_layers * (bidirectional ? 2 : 1);
  TORCH_CHECK(static_cast<int64_t>(params.size()) == per_cell * cells, kClass, ": expected ", per_cell * cells,
              " parameters (", per_cell, " per layer and direction); got ", params.size(),
              " (LSTM projections, proj_size > 0, are not supported)");
  std::vector<c10::intrusive_ptr<PackedLinearWeight>> weights;
  std::vector<at::Tensor> biases;
  for (int64_t c = 0; c < cells; ++c) {
    for (int64_t i = 0; i < 2; ++i) {
      const at::Tensor& w = params[c * per_cell + i];
      TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kFloat, kClass, ": expected float32 2-D weights; got ",
                  w.scalar_type(), " of shape ", w.sizes());
      weights.push_back(PackedLinearWeight::from_float(w.contiguous(), per_channel, qmax));
      if (has_biases) biases.push_back(params[c * per_cell + 2 + i].detach().clone());
    }
  }
  return c10::make_intrusive<PackedRnnWeight>(mode_of(mode), num_layers, bidirectional, std::move(weights),
                                              std::move(biases));
}

int64_t PackedRnnWeight::packed_bytes() const {
  int64_t bytes = 0;
  for (const auto& w : weights_) bytes += w->out_features() * (w->in_features() + static_cast<int64_t>(sizeof(float)));
  for (const auto& b : biases_) bytes += static_cast<int64_t>(b.nbytes());
  return bytes;
}

PackedRnnWeight::State PackedRnnWeight::state() const {
  std::vector<at::Tensor> ws, scales;
  for (const auto& w : weights_) {
    ws.push_back(w->weight());
    scales.push_back(w->scales());
  }
  return {kFormatVersion, mode_ == Mode::Lstm ? "lstm" : "gru", num_layers_, bidirectional_, ws, scales, biases_};
}

c10::intrusive_ptr<PackedRnnWeight> PackedRnnWeight::from_state(State s) {
  TORCH_CHECK(std::get<0>(s) == kFormatVersion, kClass, ": saved with format version ", std::get<0>(s),
              ", this qext reads version ", kFormatVersion, "; re-quantize the model with this qext version");
  const auto& ws = std::get<4>(s);
  const auto& scales = std::get<5>(s);
  TORCH_CHECK(ws.size() == scales.size(), kClass, ": ", ws.size(), " weights but ", scales.size(), " scales");
  std::vector<c10::intrusive_ptr<PackedLinearWeight>> weights;
  for (size_t i = 0; i < ws.size(); ++i) {
    weights.push_back(PackedLinearWeight::from_state({PackedLinearWeight::kFormatVersion, ws[i], scales[i]}));
  }
  return c10::make_intrusive<PackedRnnWeight>(mode_of(std::get<1>(s)), std::get<2>(s), std::get<3>(s),
                                              std::move(weights), std::get<6>(s));
}

}  // namespace qext::ops
