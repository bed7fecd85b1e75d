#include "passes/dynamic_embedding.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>

#include "passes/attr_chain.h"
#include "passes/dynamic_linear.h"

namespace qext::passes {

using torch::jit::Graph;
using torch::jit::Module;
using torch::jit::Node;
using torch::jit::Value;

namespace {

std::string skip_reason(const Module& root, const DynamicConfig& cfg, const std::optional<AttrRef>& ref, Node* node,
                        const std::string& name) {
  if (!cfg.quantize_embeddings) return "quantize_embeddings is off";
  if (!ref || !ref->owner.attr(ref->attr).isTensor()) return "table is computed at run time, not a module attribute";
  const at::Tensor w = ref->owner.attr(ref->attr).toTensor();
  if (w.scalar_type() != at::kFloat) return "table is " + std::string(c10::toString(w.scalar_type())) + ", only float32 is quantized";
  if (w.dim() != 2 || w.numel() == 0) return "table is not a non-empty 2-D tensor";
  // max_norm: embedding_renorm_ edits the table in place (traced graphs read
  // it through detach; scripted F.embedding drops the renorm).
  bool renormed = false;
  visit_nodes(node->owningGraph()->block(), [&](Node* n) {
    if (n->kind() != torch::jit::aten::embedding_renorm_) return;
    Value* v = n->input(0);
    while (v->node()->kind() == torch::jit::aten::detach || v->node()->kind() == torch::jit::aten::alias) {
      v = v->node()->input(0);
    }
    const auto renormed_ref = resolve_attr(root, v);
    renormed = renormed || (renormed_ref && renormed_ref->qualified() == ref->qualified());
  });
  if (renormed) return "max_norm renormalizes the table in place";
  if (std::string why = config_skip_reason(cfg, ref->owner, name, w.numel()); !why.empty()) return why;
  if (!at::isfinite(w).all().item<bool>()) return "table holds NaN or Inf";
  return "";
}

}  // namespace

EmbeddingRewrite rewrite_dynamic_embeddings(Module& root, const DynamicConfig& cfg) {
  EmbeddingRewrite out;
  auto& rows = out.rows;
  std::map<std::string, size_t> row_of;
  std::map<std::string, std::string> packed_attr;
  for (const auto& method : root.get_methods()) {
    const std::shared_ptr<Graph> graph = method.graph();
    torch::jit::Inline(*graph);
    std::vector<Node*> nodes;
    visit_nodes(graph->block(), [&](Node* n) {
      if (n->kind() == torch::jit::aten::embedding) nodes.push_back(n);
    });
    for (Node* node : nodes) {
      const auto ref = resolve_attr(root, node->input(0));
      const std::string name = !ref ? "<computed table>" : ref->attr == "weight" ? ref->owner_path : ref->qualified();
      if (!row_of.count(name)) {
        LayerReport row{name, "embedding", "float", skip_reason(root, cfg, ref, node, name)};
        if (ref && ref->owner.attr(ref->attr).isTensor()) {
          row.bytes_before = row.bytes_after = static_cast<int64_t>(ref->owner.attr(ref->attr).toTensor().nbytes());
        }
        if (row.reason.empty()) {
          const at::Tensor w = ref->owner.attr(ref->attr).toTensor();
          const std::string attr = unique_attribute_name(root, "_qext_table_" + name);
          if (uses_lowbit_weights(cfg)) {
            const auto table = ops::LowBitLinearWeight::from_float(w, cfg.weight_bits, cfg.group_size);
            out.tables.lowbit[w.data_ptr()] = table;
            root.register_attribute(attr, c10::getCustomClassType<decltype(table)>(), table);
            row.status = "int" + std::to_string(cfg.weight_bits);
            row.bytes_after = table->saved_code_bytes() + static_cast<int64_t>(table->scales().nbytes());
          } else {
            const auto table = ops::PackedEmbedding::from_float(w, int8_weight_qmax(cfg));
            out.tables.int8[w.data_ptr()] = table;
            root.register_attribute(attr, c10::getCustomClassType<decltype(table)>(), table);
            row.status = "int8";
            row.bytes_after = table->rows() * (table->dim() + static_cast<int64_t>(sizeof(float)));
          }
          packed_attr[name] = attr;
          out.float_tables.push_back(*ref);
        }
        row_of[name] = rows.size();
        rows.push_back(row);
      }
      if (rows[row_of[name]].status == "float") continue;
      torch::jit::WithInsertPoint guard(node);
      Value* table = graph->insertGetAttr(graph->inputs()[0], packed_attr[name]);
      const char* lookup = uses_lowbit_weights(cfg) ? "qext::embedding_lowbit" : "qext::embedding_int8";
      Node* op = graph->create(c10::Symbol::fromQualString(lookup), {node->input(1), table});
      graph->insertNode(op);
      op->output()->setType(node->output()->type());
      node->output()->replaceAllUsesWith(op->output());
      node->destroy();
    }
    torch::jit::EliminateDeadCode(graph);
  }
  return out;
}

void release_float_tables(const Module& root, EmbeddingRewrite& rewrite) {
  for (AttrRef& ref : rewrite.float_tables) {
    if (release_if_unread(root, ref)) continue;
    for (LayerReport& row : rewrite.rows) {
      if (row.name != ref.owner_path && row.name != ref.qualified()) continue;
      row.reason = "float table kept too: other code still reads it";
      row.bytes_after += static_cast<int64_t>(ref.owner.attr(ref.attr).toTensor().nbytes());
    }
  }
}

}  // namespace qext::passes
