#include "ops/attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <limits>

#include "kernels/attention.h"

namespace qext::ops {

namespace {

// The kernel keeps a head's K transposed, its V packed and a tile's score
// rows (at most 8) per thread: heads up to 16 MB of them stay on it, longer
// ones go to ATen's flash attention.
constexpr int64_t kMaxBufferBytes = int64_t{16} << 20;

bool runs_on_kernel(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const std::optional<at::Tensor>& mask, bool is_causal) {
  for (const at::Tensor* t : {&q, &k, &v}) {
    if (!t->device().is_cpu() || t->scalar_type() != at::kFloat || t->dim() != q.dim()) return false;
    if (c10::GradMode::is_enabled() && t->requires_grad()) return false;
  }
  if (q.dim() < 2 || q.dim() > 4) return false;
  const int64_t d = q.dim();
  if (q.sizes().slice(0, d - 2) != k.sizes().slice(0, d - 2) || k.sizes().slice(0, d - 2) != v.sizes().slice(0, d - 2))
    return false;
  if (k.size(-1) != q.size(-1) || v.size(-2) != k.size(-2)) return false;
  if (q.numel() == 0 || k.numel() == 0 || v.numel() == 0) return false;
  if ((k.size(-2) + 8) * (q.size(-1) + v.size(-1) + 8) * int64_t{sizeof(float)} > kMaxBufferBytes) return false;
  if (mask) {
    // (a mask with more dimensions than q would add dimensions to the output)
    if (is_causal || !mask->device().is_cpu() || mask->dim() > d) return false;
    if (mask->scalar_type() != at::kFloat && mask->scalar_type() != at::kBool) return false;
    if (c10::GradMode::is_enabled() && mask->requires_grad()) return false;
    // broadcastable to [..., L, S]
    const int64_t target[4] = {1, 1, q.size(-2), k.size(-2)};
    for (int64_t i = 1; i <= mask->dim(); ++i) {
      const int64_t want = i <= 2 ? target[4 - i] : (d - i >= 0 ? q.size(d - i) : 1);
      if (mask->size(-i) != 1 && mask->size(-i) != want) return false;
    }
  }
  return true;
}

// t as [B, H, rows, cols] (a view), its last dimension with unit stride.
at::Tensor as_4d(at::Tensor t) {
  while (t.dim() < 4) t = t.unsqueeze(0);
  return t.stride(3) == 1 || t.size(3) == 1 ? t : t.contiguous();
}

}  // namespace

at::Tensor attention(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                     const std::optional<at::Tensor>& attn_mask, bool is_causal, std::optional<double> scale) {
  if (!runs_on_kernel(query, key, value, attn_mask, is_causal)) {
    return at::scaled_dot_product_attention(query, key, value, attn_mask, 0.0, is_causal, scale);
  }
  const at::Tensor q = as_4d(query), k = as_4d(key), v = as_4d(value);
  kernels::AttentionArgs a;
  a.batch = q.size(0), a.heads = q.size(1), a.l = q.size(2), a.s = k.size(2), a.e = q.size(3), a.ev = v.size(3);
  a.q = q.data_ptr<float>(), a.q_batch = q.stride(0), a.q_head = q.stride(1), a.q_row = q.stride(2);
  a.k = k.data_ptr<float>(), a.k_batch = k.stride(0), a.k_head = k.stride(1), a.k_row = k.stride(2);
  a.v = v.data_ptr<float>(), a.v_batch = v.stride(0), a.v_head = v.stride(1), a.v_row = v.stride(2);
  at::Tensor mask;
  if (attn_mask) {
    // A bool mask says which keys to keep: 0 there, -inf elsewhere.
    mask = attn_mask->scalar_type() == at::kBool
               ? at::where(*attn_mask, 0.0f, -std::numeric_limits<float>::infinity())
               : *attn_mask;
    mask = as_4d(mask).expand({a.batch, a.heads, a.l, a.s});
    a.mask = mask.data_ptr<float>();
    a.mask_batch = mask.stride(0), a.mask_head = mask.stride(1), a.mask_row = mask.stride(2);
    a.mask_col = a.s == 1 ? 0 : mask.stride(3);
  }
  a.causal = is_causal;
  a.scale = static_cast<float>(scale ? *scale : 1.0 / std::sqrt(static_cast<double>(a.e)));
  at::Tensor out = at::empty({a.batch, a.heads, a.l, a.ev}, q.options());
  a.out = out.data_ptr<float>();
  const kernels::Isa isa = kernels::active_isa();
  at::parallel_for(0, kernels::attention_items(a), 1,
                   [&](int64_t begin, int64_t end) { kernels::attention_f32(a, begin, end, isa); });
  std::vector<int64_t> shape(query.sizes().begin(), query.sizes().end());
  shape.back() = a.ev;
  return out.view(shape);
}

}  // namespace qext::ops
