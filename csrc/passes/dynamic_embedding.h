// The dynamic-quantization rewrite of embedding tables: aten::embedding over a
// module weight (nn.Embedding, F.embedding) becomes qext::embedding_int8 with
// a weight-only int8 table (symmetric per row), or qext::embedding_lowbit with
// a 4-, 2- or 1-bit one (DynamicConfig::weight_bits < 8, group-wise scales).
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <map>

#include "ops/lowbit_linear_weight.h"
#include "ops/packed_embedding.h"
#include "passes/attr_chain.h"
#include "qext/qext.h"

namespace qext::passes {

// The tables made, by the float weight's data pointer: a Linear reading the
// same weight (a tied output layer) reuses the table.
struct EmbeddingTables {
  std::map<const void*, c10::intrusive_ptr<ops::PackedEmbedding>> int8;
  std::map<const void*, c10::intrusive_ptr<ops::LowBitLinearWeight>> lowbit;
};

struct EmbeddingRewrite {
  std::vector<LayerReport> rows;  // one per table, int8 or float with the reason
  EmbeddingTables tables;
  std::vector<AttrRef> float_tables;  // the quantized tables' float weights
};

// Rewrites `root` in place (callers pass a private copy).
EmbeddingRewrite rewrite_dynamic_embeddings(torch::jit::Module& root, const DynamicConfig& config);

// Drops the float tables nothing reads any more: after the Linear rewrite,
// so a tied output layer (which read the same weight) has let go of it.
void release_float_tables(const torch::jit::Module& root, EmbeddingRewrite& rewrite);

}  // namespace qext::passes
