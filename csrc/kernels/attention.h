// Float attention for short sequences, softmax(q k^T * scale + mask) v, one
// head at a time with the head's scores in cache (no flash-style rescaling:
// a whole score row is kept, S floats). The dynamic Transformers' attention
// runs here after quantize_dynamic: ATen's CPU scaled_dot_product_attention
// spends as long as the int8 Linears around it on MiniLM's 128-token heads.
//
// Torch-free. One implementation (kernels/attention_impl.h) over an 8-lane
// float vector type, compiled as plain C++ arrays for the reference path and
// as AVX2 + FMA for the x86 paths (AVX-512 machines run the AVX2 one). Every
// lane follows the same IEEE operations in the same order (explicit FMAs, no
// contraction), so every path gives the same bits.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace qext::kernels {

// q [batch, heads, L, E], k [batch, heads, S, E], v [batch, heads, S, Ev],
// each with unit stride along its last dimension; out [batch, heads, L, Ev]
// contiguous.
struct AttentionArgs {
  int64_t batch = 1, heads = 1, l = 0, s = 0, e = 0, ev = 0;
  const float* q = nullptr;
  int64_t q_batch = 0, q_head = 0, q_row = 0;
  const float* k = nullptr;
  int64_t k_batch = 0, k_head = 0, k_row = 0;
  const float* v = nullptr;
  int64_t v_batch = 0, v_head = 0, v_row = 0;
  // Optional additive mask, read at mask[b * mask_batch + h * mask_head +
  // i * mask_row + j * mask_col] (strides 0 where it broadcasts; mask_col is
  // 0 or 1).
  const float* mask = nullptr;
  int64_t mask_batch = 0, mask_head = 0, mask_row = 0, mask_col = 0;
  bool causal = false;  // key j > query i is masked (top-left aligned)
  float scale = 1.0f;
  float* out = nullptr;
  // Keys whose scores are decided without their dot products (causal-masked,
  // or a mask value <= -2^126 -- -inf, or finfo(float32).min as Hugging Face
  // pads with -- while every |q k * scale| is <= 2^90) skip the products, and
  // where their weights are 0 in a whole row tile, the softmax and value
  // terms too: the same bits as computing them (attention_impl.h). false
  // computes every key, for tests that check exactly that.
  bool skip_dead_keys = true;
};

// Query rows per work item: one item is a head's block of rows.
constexpr int64_t kAttentionRowBlock = 128;
inline int64_t attention_items(const AttentionArgs& a) {
  return a.batch * a.heads * ((a.l + kAttentionRowBlock - 1) / kAttentionRowBlock);
}

// Work items [begin, end). Per query row i and key j:
//   s[j] = fma-chain over e of q[i][e] * k[j][e] (e in order), * scale,
//          + mask[i][j]; -inf when causal and j > i
//   p[j] = exp(s[j] - max_j s) (attention_impl.h's exp), total = sum of p
//          in 8 lanes (j mod 8) folded by a fixed tree
//   out[i][c] = (fma-chain over j of p[j] * v[j][c]) / total
// A row whose scores are all -inf (fully masked) gives zeros, as ATen's
// does; a NaN or +inf score makes the row NaN.
// Dead keys (AttentionArgs::skip_dead_keys) follow this rule too: skipping
// them only leaves out operations whose results are known.
void attention_f32(const AttentionArgs& args, int64_t begin, int64_t end, Isa isa);

}  // namespace qext::kernels
