#include "ops/packed_embedding.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "quant/tensor_quant.h"

namespace qext::ops {

namespace {
constexpr const char* kClass = "qext::PackedEmbedding";
}

PackedEmbedding::PackedEmbedding(const at::Tensor& weight, const at::Tensor& scales) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kChar && weight.numel() > 0, kClass,
              ": expected a non-empty int8 table [V, D]; got ", weight.scalar_type(), " of shape ", weight.sizes());
  TORCH_CHECK(scales.dim() == 1 && scales.size(0) == weight.size(0) && scales.scalar_type() == at::kFloat, kClass,
              ": expected float32 scales [", weight.size(0), "]; got ", scales.scalar_type(), " of shape ",
              scales.sizes());
  TORCH_CHECK(at::all(at::isfinite(scales) & (scales > 0)).item<bool>(), kClass, ": scales must be finite and > 0");
  weight_ = weight.contiguous();
  scales_ = scales.contiguous();
}

c10::intrusive_ptr<PackedEmbedding> PackedEmbedding::from_float(const at::Tensor& weight, int64_t qmax) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kFloat, kClass,
              ": expected a float32 table [V, D]; got ", weight.scalar_type(), " of shape ", weight.sizes());
  TORCH_CHECK(qmax >= 1 && qmax <= 127, kClass, ": qmax must be in [1, 127]; got ", qmax);
  auto [scale, zp] = quant::tensor_qparams(weight, 0, -qmax, qmax, /*symmetric=*/true);
  const at::Tensor q = quant::quantize(weight, scale, zp, 0, -qmax, qmax);
  return c10::make_intrusive<PackedEmbedding>(q, scale.to(at::kFloat));
}

c10::intrusive_ptr<PackedEmbedding> PackedEmbedding::from_state(State s) {
  TORCH_CHECK(std::get<0>(s) == kFormatVersion, kClass, ": saved with format version ", std::get<0>(s),
              ", this qext reads version ", kFormatVersion, "; re-quantize the model with this qext version");
  return c10::make_intrusive<PackedEmbedding>(std::get<1>(s), std::get<2>(s));
}

at::Tensor embedding_lookup(const char* op, const at::Tensor& indices, int64_t rows, int64_t dim, int64_t grain,
                            c10::function_ref<void(int64_t, float*)> fill_row) {
  TORCH_CHECK(indices.scalar_type() == at::kLong || indices.scalar_type() == at::kInt, op,
              ": expected int64 or int32 indices; got ", indices.scalar_type());
  const at::Tensor idx = indices.to(at::kLong).contiguous();
  const int64_t n = idx.numel();
  std::vector<int64_t> shape = indices.sizes().vec();
  shape.push_back(dim);
  at::Tensor out = at::empty(shape, indices.options().dtype(at::kFloat));
  const int64_t* ip = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK(ip[i] >= 0 && ip[i] < rows, op, ": index ", ip[i], " is out of range for a table of ", rows, " rows");
  }
  float* o = out.data_ptr<float>();
  at::parallel_for(0, n, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) fill_row(ip[i], o + i * dim);
  });
  return out;
}

at::Tensor embedding_int8(const at::Tensor& indices, const c10::intrusive_ptr<PackedEmbedding>& table) {
  constexpr const char* op = "qext::embedding_int8";
  TORCH_CHECK(table, op, ": table is None");
  const int64_t dim = table->dim();
  const int8_t* w = table->weight().data_ptr<int8_t>();
  const float* s = table->scales().data_ptr<float>();
  return embedding_lookup(op, indices, table->rows(), dim, std::max<int64_t>(1, 16384 / dim),
                          [&](int64_t index, float* out) {
                            const int8_t* row = w + index * dim;
                            for (int64_t d = 0; d < dim; ++d) out[d] = static_cast<float>(row[d]) * s[index];
                          });
}

}  // namespace qext::ops
