#include "passes/native_fast_paths.h"

#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <vector>

#include "passes/attr_chain.h"

namespace qext::passes {

using torch::jit::Node;

namespace {

bool is_native_fast_path(const Node* node) {
  static const auto encoder = c10::Symbol::fromQualString("aten::_transformer_encoder_layer_fwd");
  static const auto mha = c10::Symbol::fromQualString("aten::_native_multi_head_attention");
  return node->kind() == encoder || node->kind() == mha;
}

bool reads_quantized_weight(const torch::jit::Module& root, Node* node,
                            const std::set<std::string>& quantized) {
  for (torch::jit::Value* input : node->inputs()) {
    const auto ref = resolve_attr(root, input);
    if (ref && quantized.count(ref->qualified())) return true;
  }
  return false;
}

}  // namespace

int disable_native_fast_paths(const torch::jit::Module& root, torch::jit::Graph& graph,
                              const std::set<std::string>& quantized) {
  std::vector<Node*> fast_paths;
  visit_nodes(graph.block(), [&](Node* node) {
    if (is_native_fast_path(node) && reads_quantized_weight(root, node, quantized)) {
      fast_paths.push_back(node);
    }
  });
  int disabled = 0;
  for (Node* node : fast_paths) {
    // Walk out to the nearest if/else and force the other branch.
    torch::jit::Block* block = node->owningBlock();
    while (block->owningNode() && block->owningNode()->kind() != torch::jit::prim::If) {
      block = block->owningNode()->owningBlock();
    }
    Node* branch = block->owningNode();
    if (!branch || branch->blocks().size() != 2) continue;
    const bool fast_is_then = branch->blocks()[0] == block;
    torch::jit::WithInsertPoint guard(branch);
    torch::jit::Value* forced = graph.insertConstant(!fast_is_then);
    // TorchScript's early-return lowering may reuse the condition later as the
    // "already returned" flag: pin those uses too.
    torch::jit::Value* condition = branch->input(0);
    branch->replaceInput(0, forced);
    condition->replaceAllUsesAfterNodeWith(branch, forced);
    // Keep only the slow branch, so nothing reads the float weights any more.
    inline_if_branch(branch, !fast_is_then);
    ++disabled;
  }
  if (disabled) {
    torch::jit::EliminateDeadCode(graph.shared_from_this());
  }
  return disabled;
}

}  // namespace qext::passes
