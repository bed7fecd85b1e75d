#include "passes/dynamic_linear_group.h"

#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "passes/attr_chain.h"

namespace qext::passes {

using torch::jit::Node;
using torch::jit::Value;

namespace {

// Argument i of a qext::linear_dynamic call (saved code may leave out the
// trailing ones equal to the schema's defaults).
std::optional<c10::IValue> argument(Node* n, size_t i, c10::IValue fallback) {
  if (i >= n->inputs().size()) return fallback;
  return torch::jit::toIValue(n->input(i));
}

// The call's (per_row, activation_bits) when it can join a group: constant
// settings and no fused ReLU or GELU.
std::optional<std::pair<bool, int64_t>> groupable(Node* n) {
  const auto per_row = argument(n, 3, false), relu = argument(n, 4, false), bits = argument(n, 5, int64_t{8}),
             gelu = argument(n, 6, false);
  if (!per_row || !relu || !bits || !gelu || !per_row->isBool() || !relu->isBool() || !bits->isInt() ||
      !gelu->isBool() || relu->toBool() || gelu->toBool()) {
    return std::nullopt;
  }
  return std::make_pair(per_row->toBool(), bits->toInt());
}

// Makes v available before `point`: true when it already is, or when it is
// read from self by a chain of prim::GetAttr (or is a constant), which is then
// moved there; false otherwise.
bool hoist_before(Value* v, Node* point) {
  Node* def = v->node();
  if (def->kind() == torch::jit::prim::Param || def->isBefore(point)) return true;
  if (def->kind() != torch::jit::prim::GetAttr && def->kind() != torch::jit::prim::Constant) return false;
  if (def->owningBlock() != point->owningBlock()) return false;
  for (Value* in : def->inputs())
    if (!hoist_before(in, point)) return false;
  def->moveBefore(point);
  return true;
}

// Replaces `calls` (in graph order, all reading calls[0]'s input) by one
// qext::linear_dynamic_group call placed before the first of them.
void merge(torch::jit::Graph& graph, const std::vector<Node*>& calls, bool per_row, int64_t bits) {
  static const c10::Symbol op = c10::Symbol::fromQualString("qext::linear_dynamic_group");
  Node* first = calls[0];
  torch::jit::WithInsertPoint guard(first);
  std::vector<Value*> weights, biases;
  for (Node* c : calls) {
    weights.push_back(c->input(1));
    biases.push_back(c->input(2));
  }
  Value* weight_list = graph.insertNode(graph.createList(weights[0]->type(), weights))->output();
  Value* bias_list = graph.insertNode(graph.createList(c10::OptionalType::ofTensor(), biases))->output();
  Node* group = graph.create(op, {first->input(0), weight_list, bias_list, graph.insertConstant(per_row),
                                  graph.insertConstant(bits)});
  graph.insertNode(group);
  group->output()->setType(c10::ListType::ofTensors());
  Node* unpack = graph.insertNode(graph.createListUnpack(group->output(), static_cast<int64_t>(calls.size())));
  for (size_t i = 0; i < calls.size(); ++i) {
    unpack->output(i)->setType(calls[i]->output()->type());
    calls[i]->output()->replaceAllUsesWith(unpack->output(i));
    calls[i]->destroy();
  }
}

}  // namespace

int64_t group_sibling_linears(torch::jit::Module& root) {
  static const c10::Symbol linear = c10::Symbol::fromQualString("qext::linear_dynamic");
  int64_t merged = 0;
  for (const auto& method : root.get_methods()) {
    const std::shared_ptr<torch::jit::Graph> graph = method.graph();
    torch::jit::Inline(*graph);
    // (input, block, per_row, activation_bits) -> its calls, in graph order;
    // the keys in the order they first appear, so the rewritten code (and a
    // saved file) is the same on every run
    using Key = std::tuple<Value*, torch::jit::Block*, bool, int64_t>;
    std::map<Key, std::vector<Node*>> siblings;
    std::vector<Key> keys;
    visit_nodes(graph->block(), [&](Node* n) {
      if (n->kind() != linear) return;
      if (const auto settings = groupable(n)) {
        const Key key{n->input(0), n->owningBlock(), settings->first, settings->second};
        if (!siblings.count(key)) keys.push_back(key);
        siblings[key].push_back(n);
      }
    });
    torch::jit::AliasDb aliases(graph);
    for (const Key& key : keys) {
      const std::vector<Node*>& calls = siblings[key];
      // an input written in place between two calls would differ between them
      if (calls.size() < 2 || aliases.hasWriters(std::get<0>(key))) continue;
      std::vector<Node*> group{calls[0]};
      for (size_t i = 1; i < calls.size(); ++i) {
        // its weight and bias must be readable where the group runs
        if (hoist_before(calls[i]->input(1), calls[0]) && hoist_before(calls[i]->input(2), calls[0]))
          group.push_back(calls[i]);
      }
      if (group.size() < 2) continue;
      merge(*graph, group, std::get<2>(key), std::get<3>(key));
      merged += static_cast<int64_t>(group.size());
    }
  }
  return merged;
}

}  // namespace qext::passes
