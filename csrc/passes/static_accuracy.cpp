// Static quantization's accuracy tools on the graph: where cross-layer
// equalization applies, and the calibration sums bias correction reads.
#include <ATen/ATen.h>

#include <cmath>
#include <map>

#include "ops/channel_sums.h"
#include "passes/name_match.h"
#include "passes/static_passes.h"
#include "passes/static_patterns.h"
#include "quant/equalization.h"

namespace qext::passes {

using torch::jit::Node;
using torch::jit::Value;

namespace {

const c10::Symbol kChannelSum = c10::Symbol::fromQualString("qext::observe_channel_sum_");

bool has_weight_matrix(const StaticLayer& l) {
  return l.weight && l.unsupported.empty() && (l.kind == "conv2d" || l.kind == "conv1d" || l.kind == "linear");
}

int64_t groups_of(const StaticLayer& l) { return l.kind == "linear" ? 1 : l.conv.groups; }

at::Tensor weight_of(const StaticLayer& l) { return l.weight->owner.attr(l.weight->attr).toTensor(); }

struct Pair {
  StaticLayer first, second;
  std::optional<at::Tensor> bias;  // first's bias as equalized so far
};

}  // namespace

int equalize_layers(torch::jit::Module& root, torch::jit::Graph& graph, const std::vector<std::string>& exclude) {
  std::map<Node*, StaticLayer> candidates;
  for (StaticLayer& l : find_static_layers(root, graph)) {
    if (!has_weight_matrix(l) || first_match(exclude, l.name) || !weight_of(l).is_floating_point()) continue;
    if (weight_reads(root, graph, *l.weight) != 1) continue;  // scaling a shared weight changes its other uses
    candidates.emplace(l.node, l);
  }
  std::vector<Pair> pairs;
  for (const auto& [node, first] : candidates) {
    // ReLU commutes with a positive per-channel scale; ReLU6, hardtanh and
    // clamps (fixed bounds) do not.
    if (first.activation && !first.relu) continue;
    Node* reader = single_data_user(first.output());
    const auto second = reader ? candidates.find(reader) : candidates.end();
    if (second == candidates.end() || reader->input(0) != first.output()) continue;
    if ((first.kind == "linear") != (second->second.kind == "linear")) continue;
    const at::Tensor w1 = weight_of(first), w2 = weight_of(second->second);
    if (w1.size(0) != w2.size(1) * groups_of(second->second)) continue;
    const c10::IValue bias = constant_or_attr(root, first.bias()).value_or(c10::IValue("unknown"));
    if (!bias.isNone() && !bias.isTensor()) continue;  // a bias computed at run time cannot be rescaled here
    pairs.push_back({first, second->second, bias.isTensor() ? std::optional(bias.toTensor()) : std::nullopt});
  }
  // A layer in two pairs (the depthwise conv between two pointwise ones) is
  // rescaled by both: sweep until no scale moves by more than 1e-4.
  for (int sweep = 0; sweep < 64; ++sweep) {
    double largest_step = 0.0;
    for (Pair& p : pairs) {
      const at::Tensor w1 = weight_of(p.first), w2 = weight_of(p.second);
      const int64_t groups2 = groups_of(p.second);
      const at::Tensor s = quant::equalization_scales(w1, w2, groups2);
      auto [new_w1, new_b1, new_w2] = quant::apply_equalization(w1, p.bias, w2, groups2, s);
      p.first.weight->owner.setattr(p.first.weight->attr, new_w1);
      p.second.weight->owner.setattr(p.second.weight->attr, new_w2);
      p.bias = new_b1;
      largest_step = std::max(largest_step, s.log().abs().max().item<double>());
    }
    if (largest_step < 1e-4) break;
  }
  for (Pair& p : pairs) {
    if (!p.bias) continue;
    const std::string attr = unique_attribute_name(root, "_qext_equalized_bias_" + p.first.name);
    root.register_attribute(attr, c10::TensorType::get(), *p.bias);
    torch::jit::WithInsertPoint guard(p.first.node);
    p.first.node->replaceInput(2, graph.insertGetAttr(graph.inputs()[0], attr));
  }
  return static_cast<int>(pairs.size());
}

void insert_channel_sums(torch::jit::Module& root, torch::jit::Graph& graph, const std::vector<std::string>& exclude) {
  std::map<std::pair<Value*, int64_t>, bool> done;
  for (const StaticLayer& l : find_static_layers(root, graph)) {
    if (!has_weight_matrix(l) || first_match(exclude, l.name)) continue;
    Value* x = l.inputs()[0];
    if (!done.emplace(std::make_pair(x, l.input_channel_dim()), true).second) continue;
    const at::Tensor w = weight_of(l);
    const int64_t channels = l.kind == "linear" ? w.size(1) : w.size(1) * groups_of(l);
    const std::string attr = unique_attribute_name(root, "_qext_channel_sums_" + l.name);
    root.register_attribute(attr, c10::TensorType::get(), at::zeros({channels + 1}, at::kDouble));
    Node* def = x->node();
    // After x's definition; a graph or loop-body input: first in its block.
    torch::jit::WithInsertPoint guard(def->kind() == torch::jit::prim::Param ? def->owningBlock()->nodes().front()
                                                                             : def->next());
    Value* sums = graph.insertGetAttr(graph.inputs()[0], attr);
    Node* n = graph.create(kChannelSum, {x, sums, graph.insertConstant(l.input_channel_dim())}, 0);
    graph.insertNode(n);
  }
}

std::map<std::pair<Value*, int64_t>, at::Tensor> take_channel_means(const torch::jit::Module& root,
                                                                     torch::jit::Graph& graph) {
  std::vector<Node*> nodes;
  visit_nodes(graph.block(), [&](Node* n) {
    if (n->kind() == kChannelSum) nodes.push_back(n);
  });
  std::map<std::pair<Value*, int64_t>, at::Tensor> means;
  for (Node* n : nodes) {
    const auto sums = optional_tensor(root, n->input(1));
    const auto dim = torch::jit::toIValue(n->input(2));
    if (sums && dim && dim->isInt()) {
      if (at::Tensor mean = ops::channel_means(*sums); mean.defined()) means[{n->input(0), dim->toInt()}] = mean;
    }
    n->destroy();
  }
  return means;
}

}  // namespace qext::passes
