#include "ops/embedding_lowbit.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace qext::ops {

at::Tensor embedding_lowbit(const at::Tensor& indices, const c10::intrusive_ptr<LowBitLinearWeight>& table) {
  constexpr const char* op = "qext::embedding_lowbit";
  TORCH_CHECK(table, op, ": table is None");
  TORCH_CHECK(indices.scalar_type() == at::kLong || indices.scalar_type() == at::kInt, op,
              ": expected int64 or int32 indices; got ", indices.scalar_type());
  const at::Tensor idx = indices.to(at::kLong).contiguous();
  const int64_t n = idx.numel(), rows = table->out_features(), dim = table->in_features();
  std::vector<int64_t> shape = indices.sizes().vec();
  shape.push_back(dim);
  at::Tensor out = at::empty(shape, indices.options().dtype(at::kFloat));
  const int64_t* ip = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK(ip[i] >= 0 && ip[i] < rows, op, ": index ", ip[i], " is out of range for a table of ", rows, " rows");
  }
  float* o = out.data_ptr<float>();
  const kernels::LowBitWeights& w = table->packed();
  at::parallel_for(0, n, std::max<int64_t>(1, 4096 / dim), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) w.dequantize_row(ip[i], o + i * dim);
  });
  return out;
}

}  // namespace qext::ops
