#include "passes/dynamic_attention.h"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <vector>

#include "passes/attr_chain.h"

namespace qext::passes {

using torch::jit::Node;
using torch::jit::Value;

namespace {

// The constant `v` holds, if it is one.
std::optional<c10::IValue> constant(Value* v) { return torch::jit::toIValue(v); }

// scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal,
// *, scale, enable_gqa) with dropout_p a constant 0 and enable_gqa false.
bool without_dropout(Node* n) {
  if (n->inputs().size() < 6) return false;
  const auto dropout = constant(n->input(4));
  if (!dropout || !dropout->isDouble() || dropout->toDouble() != 0.0) return false;
  if (n->inputs().size() >= 8) {
    const auto gqa = constant(n->input(7));
    if (!gqa || !gqa->isBool() || gqa->toBool()) return false;
  }
  return true;
}

}  // namespace

int64_t rewrite_attention(torch::jit::Module& root) {
  static const c10::Symbol sdpa = c10::Symbol::fromQualString("aten::scaled_dot_product_attention");
  static const c10::Symbol op = c10::Symbol::fromQualString("qext::attention");
  int64_t rewritten = 0;
  for (const auto& method : root.get_methods()) {
    const std::shared_ptr<torch::jit::Graph> graph = method.graph();
    torch::jit::Inline(*graph);
    std::vector<Node*> calls;
    visit_nodes(graph->block(), [&](Node* n) {
      if (n->kind() == sdpa && without_dropout(n)) calls.push_back(n);
    });
    for (Node* n : calls) {
      torch::jit::WithInsertPoint guard(n);
      Value* scale = n->inputs().size() >= 7 ? n->input(6) : graph->insertConstant(c10::IValue());
      Node* call = graph->create(op, {n->input(0), n->input(1), n->input(2), n->input(3), n->input(5), scale});
      graph->insertNode(call);
      call->output()->setType(n->output()->type());
      n->output()->replaceAllUsesWith(call->output());
      n->destroy();
      ++rewritten;
    }
  }
  return rewritten;
}

}  // namespace qext::passes
