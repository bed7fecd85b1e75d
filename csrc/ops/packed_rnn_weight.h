// The int8 weights of one nn.LSTM or nn.GRU (every layer and direction) for
// qext::lstm_dynamic / qext::gru_dynamic. TorchScript:
// __torch__.torch.classes.qext.PackedRnnWeight. Pickled portably as (format
// version, "lstm" | "gru", layers, bidirectional, int8 weights, their scales,
// float biases), weights and biases in aten::lstm's order: per layer, per
// direction, (w_ih, w_hh) and (b_ih, b_hh); biases empty without bias.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/custom_class.h>

#include <string>
#include <tuple>
#include <vector>

#include "ops/packed_linear_weight.h"

namespace qext::ops {

class PackedRnnWeight : public torch::CustomClassHolder {
 public:
  static constexpr int64_t kFormatVersion = 1;
  using State = std::tuple<int64_t, std::string, int64_t, bool, std::vector<at::Tensor>, std::vector<at::Tensor>,
                           std::vector<at::Tensor>>;
  enum class Mode { Lstm, Gru };

  // From aten::lstm / aten::gru's float parameter list (no LSTM projections).
  static c10::intrusive_ptr<PackedRnnWeight> from_float(const std::string& mode, const std::vector<at::Tensor>& params,
                                                        bool has_biases, int64_t num_layers, bool bidirectional,
                                                        bool per_channel, int64_t qmax = 127);
  static c10::intrusive_ptr<PackedRnnWeight> from_state(State state);
  State state() const;

  Mode mode() const { return mode_; }
  int64_t gates() const { return mode_ == Mode::Lstm ? 4 : 3; }
  int64_t num_layers() const { return num_layers_; }
  int64_t directions() const { return bidirectional_ ? 2 : 1; }
  int64_t hidden_size() const { return hidden_; }
  int64_t input_size() const { return ih(0, 0)->in_features(); }
  const c10::intrusive_ptr<PackedLinearWeight>& ih(int64_t layer, int64_t dir) const { return weights_[2 * cell(layer, dir)]; }
  const c10::intrusive_ptr<PackedLinearWeight>& hh(int64_t layer, int64_t dir) const { return weights_[2 * cell(layer, dir) + 1]; }
  // Undefined without bias.
  at::Tensor b_ih(int64_t layer, int64_t dir) const { return biases_.empty() ? at::Tensor() : biases_[2 * cell(layer, dir)]; }
  at::Tensor b_hh(int64_t layer, int64_t dir) const { return biases_.empty() ? at::Tensor() : biases_[2 * cell(layer, dir) + 1]; }
  // int8 weight bytes + scales + float biases.
  int64_t packed_bytes() const;

  PackedRnnWeight(Mode mode, int64_t num_layers, bool bidirectional,
                  std::vector<c10::intrusive_ptr<PackedLinearWeight>> weights, std::vector<at::Tensor> biases);

 private:
  int64_t cell(int64_t layer, int64_t dir) const { return layer * directions() + dir; }

  Mode mode_;
  int64_t num_layers_;
  bool bidirectional_;
  int64_t hidden_ = 0;
  std::vector<c10::intrusive_ptr<PackedLinearWeight>> weights_;
  std::vector<at::Tensor> biases_;
};

}  // namespace qext::ops
