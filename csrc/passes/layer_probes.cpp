#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include "passes/static_passes.h"
#include "passes/static_patterns.h"

namespace qext::passes {

void insert_probe(torch::jit::Graph& graph, torch::jit::Value* v, const std::string& key) {
  torch::jit::WithInsertPoint guard(v->node()->next());
  torch::jit::Node* n = graph.create(c10::Symbol::fromQualString("qext::_probe"), {v, graph.insertConstant(key)});
  graph.insertNode(n);
  n->output()->setType(v->type());
}

void probe_float_layers(torch::jit::Module& root, torch::jit::Graph& graph) {
  const auto observe = c10::Symbol::fromQualString("qext::observe");
  std::vector<torch::jit::Node*> observers;
  visit_nodes(graph.block(), [&](torch::jit::Node* n) {
    if (n->kind() == observe) observers.push_back(n);
  });
  for (torch::jit::Node* n : observers) {
    n->output()->replaceAllUsesWith(n->input(0));
    n->destroy();
  }
  take_channel_means(root, graph);  // bias correction's sums: calibration only
  for (const StaticLayer& l : find_static_layers(root, graph)) {
    if (l.unsupported.empty()) insert_probe(graph, l.output(), l.name);
  }
}

}  // namespace qext::passes
