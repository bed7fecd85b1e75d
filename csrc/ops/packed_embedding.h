// The int8 table of one nn.Embedding (weight-only: lookups dequantize the
// rows they read). TorchScript: __torch__.torch.classes.qext.PackedEmbedding.
// Pickled as (format version, int8 weight [V, D], float scales [V]), the
// tensors themselves: a tied output layer that shares them (GPT-2's lm_head
// and wte) is stored once.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/custom_class.h>

#include <c10/util/FunctionRef.h>

#include <tuple>

namespace qext::ops {

class PackedEmbedding : public torch::CustomClassHolder {
 public:
  static constexpr int64_t kFormatVersion = 1;
  using State = std::tuple<int64_t, at::Tensor, at::Tensor>;

  // weight: int8 [V, D], symmetric per row; scales: float32 [V], finite, > 0.
  PackedEmbedding(const at::Tensor& weight, const at::Tensor& scales);
  // Symmetric int8 per row of a float [V, D] table, values in [-qmax, qmax].
  static c10::intrusive_ptr<PackedEmbedding> from_float(const at::Tensor& weight, int64_t qmax = 127);
  static c10::intrusive_ptr<PackedEmbedding> from_state(State state);
  State state() const { return {kFormatVersion, weight_, scales_}; }

  const at::Tensor& weight() const { return weight_; }
  const at::Tensor& scales() const { return scales_; }
  int64_t rows() const { return weight_.size(0); }
  int64_t dim() const { return weight_.size(1); }

 private:
  at::Tensor weight_, scales_;
};

// What every embedding op shares: `indices` (int64 or int32, any shape)
// checked against `rows` (out of range is an error), the float32 output
// [*indices.shape, dim], and fill_row(index, output row) for each lookup over
// ATen's threads (at least `grain` lookups per chunk).
at::Tensor embedding_lookup(const char* op, const at::Tensor& indices, int64_t rows, int64_t dim, int64_t grain,
                            c10::function_ref<void(int64_t, float*)> fill_row);

// Rows `indices` (int64 or int32, any shape) of the table, dequantized:
// float32 [*indices.shape, D]. Out-of-range indices are an error.
at::Tensor embedding_int8(const at::Tensor& indices, const c10::intrusive_ptr<PackedEmbedding>& table);

}  // namespace qext::ops
