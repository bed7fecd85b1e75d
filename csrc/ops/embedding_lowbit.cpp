#include "ops/embedding_lowbit.h"

#include <ATen/ATen.h>

#include "ops/packed_embedding.h"

namespace qext::ops {

at::Tensor embedding_lowbit(const at::Tensor& indices, const c10::intrusive_ptr<LowBitLinearWeight>& table) {
  constexpr const char* op = "qext::embedding_lowbit";
  TORCH_CHECK(table, op, ": table is None");
  const kernels::LowBitWeights& w = table->packed();
  return embedding_lookup(op, indices, table->out_features(), table->in_features(),
                          std::max<int64_t>(1, 4096 / table->in_features()),
                          [&](int64_t index, float* out) { w.dequantize_row(index, out); });
}

}  // namespace qext::ops
