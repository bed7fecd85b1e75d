#include <ATen/ATen.h>

#include <map>

#include "ops/linear_dynamic.h"
#include "ops/observer_class.h"
#include "passes/name_match.h"
#include "passes/static_passes.h"
#include "passes/static_patterns.h"
#include "quant/batch_norm_fold.h"

namespace qext::passes {

using torch::jit::Node;
using torch::jit::Value;

std::optional<at::Tensor> optional_tensor(const torch::jit::Module& root, Value* v) {
  const auto iv = constant_or_attr(root, v);
  if (!iv || !iv->isTensor()) return std::nullopt;
  return iv->toTensor();
}

int weight_reads(const torch::jit::Module& root, torch::jit::Graph& graph, const AttrRef& ref) {
  int reads = 0;
  visit_nodes(graph.block(), [&](Node* n) {
    if (n->kind() != torch::jit::prim::GetAttr) return;
    const auto found = resolve_attr(root, n->output());
    reads += found && found->qualified() == ref.qualified();
  });
  return reads;
}

int fold_batch_norms(torch::jit::Module& root, torch::jit::Graph& graph) {
  std::vector<std::pair<StaticLayer, Node*>> pairs;
  for (StaticLayer& l : find_static_layers(root, graph)) {
    if (l.kind == "add" || !l.weight || !l.unsupported.empty()) continue;
    // The BN must be the only reader of the conv output, shape queries aside
    // (BatchNorm2d checks input.dim(); folding does not change shapes).
    Node* bn = nullptr;
    bool only_bn = true;
    for (const auto& use : l.node->output()->uses()) {
      const auto kind = use.user->kind();
      if (kind == torch::jit::aten::dim || kind == torch::jit::aten::size) continue;
      only_bn = only_bn && kind == torch::jit::aten::batch_norm && !bn && use.offset == 0;
      bn = use.user;
    }
    if (!only_bn || !bn) continue;
    if (weight_reads(root, graph, *l.weight) != 1) continue;  // a shared weight cannot absorb one BN
    pairs.emplace_back(l, bn);
  }
  int folded = 0;
  for (auto& [l, bn] : pairs) {
    const auto mean = optional_tensor(root, bn->input(3)), var = optional_tensor(root, bn->input(4));
    const auto eps = constant_or_attr(root, bn->input(7));
    if (!mean || !var || !eps || !eps->isDouble()) continue;
    const at::Tensor w = l.weight->owner.attr(l.weight->attr).toTensor();
    const auto gamma = optional_tensor(root, bn->input(1)), beta = optional_tensor(root, bn->input(2));
    const auto bias = optional_tensor(root, l.bias());
    auto [fw, fb] = quant::fold_batch_norm(w, bias, gamma ? *gamma : at::ones_like(*var),
                                           beta ? *beta : at::zeros_like(*mean), *mean, *var,
                                           eps->toDouble());
    l.weight->owner.setattr(l.weight->attr, fw);  // this instance's slot only
    const std::string bias_attr = unique_attribute_name(root, "_qext_folded_bias_" + l.name);
    root.register_attribute(bias_attr, c10::TensorType::get(), fb);
    torch::jit::WithInsertPoint guard(l.node);
    l.node->replaceInput(2, graph.insertGetAttr(graph.inputs()[0], bias_attr));
    bn->output()->replaceAllUsesWith(l.node->output());
    bn->destroy();
    ++folded;
  }
  return folded;
}

namespace {

// True when `scale` multiplies channel dimension `channel_dim` (-1: last, as a
// linear's output; -3: an NCHW image's) of a value with c channels, and
// broadcasts along nothing else without adding dimensions: [C] for the last
// dimension; [C, 1, 1] or [1, C, 1, 1] for NCHW.
bool is_channel_scale(const at::Tensor& scale, int64_t c, int64_t channel_dim) {
  if (scale.scalar_type() != at::kFloat || scale.numel() != c) return false;
  if (channel_dim == -1) return scale.dim() == 1;
  return (scale.dim() == 3 || (scale.dim() == 4 && scale.size(0) == 1)) && scale.size(-3) == c &&
         scale.size(-2) == 1 && scale.size(-1) == 1;
}

bool is_nhwc_to_nchw(torch::jit::Node* permute) {
  const auto dims = torch::jit::toIValue(permute->input(1));
  return dims && dims->isIntList() && dims->toIntVector() == std::vector<int64_t>{0, 3, 1, 2};
}

}  // namespace

int fold_channel_scales(torch::jit::Module& root, torch::jit::Graph& graph) {
  struct Fold {
    StaticLayer layer;
    Node* mul;
    Value* scaled;  // what the mul multiplies: the layer's output, or its NCHW permute
    at::Tensor scale;
  };
  std::vector<Fold> folds;
  for (StaticLayer& l : find_static_layers(root, graph)) {
    if ((l.kind != "linear" && l.kind != "conv2d") || !l.weight || !l.unsupported.empty() || l.activation) continue;
    Value* scaled = l.node->output();
    Node* user = single_data_user(scaled);
    int64_t channel_dim = l.kind == "linear" ? -1 : -3;
    if (user && l.kind == "linear" && user->kind() == torch::jit::aten::permute && is_nhwc_to_nchw(user)) {
      scaled = user->output();  // ConvNeXt: linear on NHWC, permuted back to NCHW, then scaled
      user = single_data_user(scaled);
      channel_dim = -3;
    }
    if (!user || user->kind() != torch::jit::aten::mul || user->inputs().size() != 2) continue;
    Value* other = user->input(0) == scaled ? user->input(1) : user->input(0);
    if (other == scaled) continue;
    const auto scale = optional_tensor(root, other);
    const at::Tensor w = l.weight->owner.attr(l.weight->attr).toTensor();
    if (!scale || !is_channel_scale(*scale, w.size(0), channel_dim)) continue;
    if (weight_reads(root, graph, *l.weight) != 1) continue;  // a shared weight cannot absorb one scale
    folds.push_back({l, user, scaled, *scale});
  }
  at::NoGradGuard no_grad;
  for (Fold& f : folds) {
    StaticLayer& l = f.layer;
    const at::Tensor w = l.weight->owner.attr(l.weight->attr).toTensor();
    const at::Tensor s = f.scale.reshape({w.size(0)});
    std::vector<int64_t> per_row(static_cast<size_t>(w.dim()), 1);
    per_row[0] = w.size(0);
    l.weight->owner.setattr(l.weight->attr, (w * s.view(per_row)).contiguous());  // this instance's slot only
    if (const auto bias = optional_tensor(root, l.bias())) {
      const std::string bias_attr = unique_attribute_name(root, "_qext_scaled_bias_" + l.name);
      root.register_attribute(bias_attr, c10::TensorType::get(), (*bias * s).contiguous());
      torch::jit::WithInsertPoint guard(l.node);
      l.node->replaceInput(2, graph.insertGetAttr(graph.inputs()[0], bias_attr));
    }
    f.mul->output()->replaceAllUsesWith(f.scaled);
    f.mul->destroy();
  }
  return static_cast<int>(folds.size());
}

void insert_observers(torch::jit::Module& root, torch::jit::Graph& graph, const StaticConfig& cfg) {
  std::map<Value*, bool> observed;
  const auto class_type = c10::getCustomClassType<c10::intrusive_ptr<ops::ObserverClass>>();
  // The observe or range-fixing fake_quantize node watching v, or watching
  // what a pass-through chain ending at v reads; nullptr if none.
  auto source_of_range = [&](Value* v) -> Node* {
    while (true) {
      Node* def = v->node();
      if (def->kind() == c10::Symbol::fromQualString("qext::observe") || fixed_qparams(root, def)) return def;
      if (!is_pass_through(def)) return nullptr;
      v = def->input(0);
    }
  };
  auto insert_after_def = [&](Value* v, Node* n) {
    Node* def = v->node();
    // A parameter of the graph or of a loop body (a loop-carried value):
    // first thing in that block, where v is in scope.
    n->insertBefore(def->kind() == torch::jit::prim::Param ? def->owningBlock()->nodes().front() : def->next());
    v->replaceAllUsesAfterNodeWith(n, n->output());
    observed[v] = observed[n->output()] = true;
  };
  auto observe = [&](Value* v) {
    if (observed.count(v)) return;
    // A range fixed by fake_quantize (qext.qat.convert) at v or on its reader.
    bool fixed = fixed_qparams(root, v->node()).has_value();
    for (const auto& use : v->uses()) fixed = fixed || fixed_qparams(root, use.user);
    if (fixed) {
      observed[v] = true;
      return;
    }
    // max_pool2d(observed) etc. share the observer (or the fixed range), so
    // convert can run them on uint8.
    Node* source = source_of_range(v);
    if (source && source->kind() != c10::Symbol::fromQualString("qext::observe")) {
      insert_after_def(v, graph.createClone(source, [&](Value* in) { return in == source->input(0) ? v : in; }));
      return;
    }
    std::string shared = source ? source->input(1)->node()->s(torch::jit::attr::name) : "";
    auto observer = c10::make_intrusive<ops::ObserverClass>(observer_name(cfg.observer),
                                                            histogram_method_name(cfg.histogram_method),
                                                            cfg.percentile, 0.01, 2048, std::nullopt,
                                                            0, ops::activation_qmax("qext::prepare_static", cfg.activation_bits), false);
    std::string attr = shared;
    if (attr.empty()) {
      attr = unique_attribute_name(root, "_qext_observer_" + std::to_string(observed.size()));
      root.register_attribute(attr, class_type, observer);
    }
    Node* get = graph.createGetAttr(graph.inputs()[0], attr);
    Node* n = graph.create(c10::Symbol::fromQualString("qext::observe"), {v, get->output()});
    n->output()->setType(v->type());
    insert_after_def(v, n);
    get->insertBefore(n);
  };
  for (const StaticLayer& l : find_static_layers(root, graph)) {
    if (!l.unsupported.empty() || first_match(cfg.exclude, l.name)) continue;
    for (Value* v : l.inputs()) observe(v);
    observe(l.output());
  }
}

}  // namespace qext::passes
