#include "passes/static_patterns.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <unordered_set>

namespace qext::passes {

using torch::jit::Node;
using torch::jit::Value;
namespace aten = torch::jit::aten;

namespace {

std::optional<std::vector<int64_t>> int_list(const torch::jit::Module& root, Value* v) {
  const auto iv = constant_or_attr(root, v);
  if (!iv) return std::nullopt;
  if (iv->isIntList()) return iv->toIntVector();
  if (iv->isTuple()) {
    std::vector<int64_t> out;
    for (const auto& e : iv->toTupleRef().elements()) {
      if (!e.isInt()) return std::nullopt;
      out.push_back(e.toInt());
    }
    return out;
  }
  return std::nullopt;
}

std::string weight_name(const AttrRef& ref) {
  return ref.attr == "weight" && !ref.owner_path.empty() ? ref.owner_path : ref.qualified();
}

// Fills weight, name and (for convs) geometry; sets `unsupported` on failure.
void describe_weighted(const torch::jit::Module& root, StaticLayer& l, int64_t weight_dim,
                       Value* stride, Value* padding, Value* dilation, Value* groups) {
  l.weight = resolve_attr(root, l.node->input(1));
  if (!l.weight) {
    l.name = "<computed weight>";
    l.unsupported = "weight is computed at run time, not a module attribute";
    return;
  }
  l.name = weight_name(*l.weight);
  const c10::IValue w = l.weight->owner.attr(l.weight->attr);
  if (!w.isTensor() || w.toTensor().dim() != weight_dim || w.toTensor().scalar_type() != at::kFloat) {
    l.unsupported = "weight is not a float32 " + std::to_string(weight_dim) + "-D tensor";
    return;
  }
  if (l.kind != "conv2d" && l.kind != "conv1d") return;
  const auto s = int_list(root, stride), d = int_list(root, dilation);
  auto p = int_list(root, padding);
  const auto g = constant_or_attr(root, groups);
  if (!s || !d || !g || !g->isInt()) {
    l.unsupported = "stride/dilation/groups are not constant integers";
    return;
  }
  if (!p) {  // padding='valid' or 'same' (F.conv2d's string overload)
    const auto mode = constant_or_attr(root, padding);
    if (!mode || !mode->isString()) {
      l.unsupported = "padding is neither constant integers nor 'valid' / 'same'";
      return;
    }
    const at::Tensor wt = w.toTensor();
    std::vector<int64_t> pads;
    for (int64_t i = 0; i < wt.dim() - 2; ++i) {
      const int64_t dil = (*d)[d->size() == 1 ? 0 : i], total = dil * (wt.size(2 + i) - 1);
      if (mode->toStringRef() == "valid") {
        pads.push_back(0);
      } else if (mode->toStringRef() == "same" && total % 2 == 0) {
        pads.push_back(total / 2);  // PyTorch allows 'same' with stride 1 only
      } else {
        l.unsupported = "padding='" + mode->toStringRef() + "' needs uneven padding (an even kernel size)";
        return;
      }
    }
    p = pads;
  }
  l.conv = {*s, *p, *d, g->toInt()};
  if (l.kind == "conv1d") {  // runs as a conv2d over a [N, C, 1, L] view
    if (s->size() != 1 || p->size() != 1 || d->size() != 1) {
      l.unsupported = "conv1d geometry is not one value per argument";
      return;
    }
    l.conv = {{1, (*s)[0]}, {0, (*p)[0]}, {1, (*d)[0]}, g->toInt()};
  }
}

std::optional<double> constant_bound(const torch::jit::Module& root, Value* v) {
  const auto iv = constant_or_attr(root, v);
  if (iv && (iv->isDouble() || iv->isInt())) return iv->toScalar().toDouble();
  return std::nullopt;
}

// The activation fused after l (its output's only reader), if any.
void describe_activation(const torch::jit::Module& root, StaticLayer& l) {
  if (l.kind == "cat" || l.kind == "mul" || l.kind == "layer_norm" || is_table_kind(l.kind)) return;
  if (Node* relu = single_relu_user(l.node->output())) {
    l.activation = relu;
    l.relu = true;
    return;
  }
  Node* user = single_data_user(l.node->output());
  if (l.kind == "add" || !user) return;
  static const auto relu6 = c10::Symbol::fromQualString("aten::relu6");
  static const auto relu6_ = c10::Symbol::fromQualString("aten::relu6_");
  const auto k = user->kind();
  if (k == relu6 || k == relu6_) {
    l.clamp_min = 0.0;
    l.clamp_max = 6.0;
  } else if ((k == aten::hardtanh || k == aten::hardtanh_ || k == aten::clamp || k == aten::clamp_) &&
             user->inputs().size() == 3) {
    // clamp's bounds may be None (one-sided); hardtanh's are numbers.
    const bool lo_none = torch::jit::toIValue(user->input(1)).has_value() && torch::jit::toIValue(user->input(1))->isNone();
    const bool hi_none = torch::jit::toIValue(user->input(2)).has_value() && torch::jit::toIValue(user->input(2))->isNone();
    const auto lo = constant_bound(root, user->input(1)), hi = constant_bound(root, user->input(2));
    if ((!lo && !lo_none) || (!hi && !hi_none) || (lo && hi && *lo > *hi)) return;
    l.clamp_min = lo;
    l.clamp_max = hi;
  } else {
    return;
  }
  l.activation = user;
}

// Eval-mode batch_norm with module statistics: a per-channel affine map,
// converted to a per-channel uint8 table. Named after its module.
void describe_batch_norm(const torch::jit::Module& root, StaticLayer& l, int index) {
  Node* n = l.node;
  const auto stats = resolve_attr(root, n->input(3));
  l.name = stats && !stats->owner_path.empty() ? stats->owner_path : "batch_norm@" + std::to_string(index);
  const auto training = constant_or_attr(root, n->input(5));
  const auto eps = constant_or_attr(root, n->input(7));
  bool params = true;
  for (size_t i : {1, 2, 3, 4}) {
    const auto v = constant_or_attr(root, n->input(i));
    params = params && v && (v->isTensor() ? v->toTensor().scalar_type() == at::kFloat : i <= 2 && v->isNone());
  }
  if (!training || !training->isBool() || training->toBool()) {
    l.unsupported = "BatchNorm in training mode (batch statistics)";
  } else if (!params || !eps || !eps->isDouble()) {
    l.unsupported = "BatchNorm parameters or statistics are not float32 module attributes";
  }
}

// layer_norm over constant trailing dimensions with module (or no) affine parameters.
void describe_layer_norm(const torch::jit::Module& root, StaticLayer& l, int index) {
  Node* n = l.node;
  const auto weight = resolve_attr(root, n->input(2));
  l.name = weight && !weight->owner_path.empty() ? weight->owner_path : "layer_norm@" + std::to_string(index);
  bool params = true;
  for (size_t i : {2, 3}) {
    const auto v = constant_or_attr(root, n->input(i));
    params = params && v && (v->isNone() || (v->isTensor() && v->toTensor().scalar_type() == at::kFloat));
  }
  const auto eps = constant_or_attr(root, n->input(4));
  if (!int_list(root, n->input(1))) {
    l.unsupported = "normalized_shape is not constant";
  } else if (!params || !eps || !eps->isDouble()) {
    l.unsupported = "LayerNorm weight/bias are not float32 module attributes";
  }
}

}  // namespace

std::optional<c10::IValue> constant_or_attr(const torch::jit::Module& root, Value* v) {
  if (auto iv = torch::jit::toIValue(v)) return iv;
  if (const auto ref = resolve_attr(root, v)) {
    // An attribute the graph assigns (a cache filled on the first call) has no
    // value to fold.
    bool assigned = false;
    visit_nodes(v->owningGraph()->block(), [&](Node* s) {
      assigned = assigned || (s->kind() == torch::jit::prim::SetAttr && s->s(torch::jit::attr::name) == ref->attr);
    });
    if (assigned) return std::nullopt;
    return ref->owner.attr(ref->attr);
  }
  // Module code often rebuilds its tuple attributes: self.stride unpacked and
  // re-listed. Follow those few shapes of graph.
  Node* n = v->node();
  if (n->kind() == torch::jit::prim::ListConstruct) {
    c10::List<int64_t> out;
    for (Value* in : n->inputs()) {
      const auto e = constant_or_attr(root, in);
      if (!e || !e->isInt()) return std::nullopt;
      out.push_back(e->toInt());
    }
    return out;
  }
  if (n->kind() == torch::jit::prim::TupleUnpack) {
    const auto t = constant_or_attr(root, n->input(0));
    if (!t || !t->isTuple()) return std::nullopt;
    return t->toTupleRef().elements().at(v->offset());
  }
  if (n->kind() == torch::jit::aten::eq || n->kind() == torch::jit::aten::ne) {
    const auto a = constant_or_attr(root, n->input(0)), b = constant_or_attr(root, n->input(1));
    if (!a || !b || !(a->isString() || a->isInt() || a->isBool()) || a->tagKind() != b->tagKind()) {
      return std::nullopt;
    }
    return (*a == *b) == (n->kind() == torch::jit::aten::eq);
  }
  if (n->kind() == torch::jit::aten::__is__ || n->kind() == torch::jit::aten::__isnot__) {
    // Only None has a known identity: `self.bias_k is not None` with bias_k
    // unset settles MultiheadAttention's bias_k/bias_v branches.
    const auto a = constant_or_attr(root, n->input(0)), b = constant_or_attr(root, n->input(1));
    if (!a || !b || !(a->isNone() || b->isNone())) return std::nullopt;
    return (a->isNone() && b->isNone()) == (n->kind() == torch::jit::aten::__is__);
  }
  if (n->kind() == torch::jit::aten::__not__) {
    const auto a = constant_or_attr(root, n->input(0));
    if (!a || !a->isBool()) return std::nullopt;
    return !a->toBool();
  }
  if (n->kind() == torch::jit::prim::TupleIndex || n->kind() == torch::jit::aten::__getitem__) {
    const auto t = constant_or_attr(root, n->input(0));
    const auto i = constant_or_attr(root, n->input(1));
    if (!t || !i || !i->isInt()) return std::nullopt;
    if (t->isTuple()) return t->toTupleRef().elements().at(i->toInt());
    if (t->isIntList()) return t->toIntVector().at(i->toInt());
  }
  return std::nullopt;
}

int freeze_training_flags(const torch::jit::Module& root, torch::jit::Graph& graph) {
  std::vector<Node*> reads;
  visit_nodes(graph.block(), [&](Node* n) {
    if (n->kind() == torch::jit::prim::GetAttr && n->s(torch::jit::attr::name) == "training") reads.push_back(n);
  });
  int frozen = 0;
  for (Node* n : reads) {
    const auto value = constant_or_attr(root, n->output());
    if (!value || !value->isBool() || value->toBool()) continue;
    torch::jit::WithInsertPoint guard(n);
    n->output()->replaceAllUsesWith(graph.insertConstant(false));
    ++frozen;
  }
  return frozen;
}

int inline_known_ifs(const torch::jit::Module& root, torch::jit::Graph& graph) {
  int inlined = 0;
  for (bool changed = true; changed;) {
    changed = false;
    Node* found = nullptr;
    bool take_then = false;
    visit_nodes(graph.block(), [&](Node* n) {
      if (found || n->kind() != torch::jit::prim::If) return;
      const auto cond = constant_or_attr(root, n->input(0));
      if (cond && cond->isBool()) {
        found = n;
        take_then = cond->toBool();
      }
    });
    if (found) {
      inline_if_branch(found, take_then);
      changed = true;
      ++inlined;
    }
  }
  return inlined;
}

std::optional<ActivationQParams> fixed_qparams(const torch::jit::Module& root, const Node* node) {
  static const auto fake_quantize = c10::Symbol::fromQualString("qext::fake_quantize");
  if (node->kind() != fake_quantize) return std::nullopt;
  const auto scale = constant_or_attr(root, node->input(1)), zp = constant_or_attr(root, node->input(2));
  const auto axis = torch::jit::toIValue(node->input(3));
  const auto qmin = torch::jit::toIValue(node->input(4)), qmax = torch::jit::toIValue(node->input(5));
  if (!scale || !zp || !scale->isTensor() || !zp->isTensor() || !axis || !axis->isNone() ||
      !qmin || !qmax || qmin->toInt() != 0 || qmax->toInt() != 255) {
    return std::nullopt;
  }
  const at::Tensor s = scale->toTensor(), z = zp->toTensor();
  if (s.numel() != 1 || z.numel() != 1 || s.scalar_type() != at::kFloat) return std::nullopt;
  return ActivationQParams{s.item<double>(), z.to(at::kDouble).round().item<int64_t>()};
}

const std::vector<std::string>& pass_through_ops() {
  // Layout ops move uint8 values without changing them; dropout in eval
  // (train = False) is the identity.
  static const std::vector<std::string> ops{
      "aten::max_pool2d", "aten::avg_pool2d", "aten::adaptive_avg_pool2d", "aten::flatten",   "aten::reshape",
      "aten::view",       "aten::contiguous", "aten::permute",             "aten::transpose", "aten::unflatten",
      "aten::squeeze",    "aten::unsqueeze",  "aten::relu",                "aten::dropout",   "aten::feature_dropout"};
  return ops;
}

bool is_pass_through(const Node* node) {
  static const std::unordered_set<c10::Symbol> kinds = [] {
    std::unordered_set<c10::Symbol> out;
    for (const auto& name : pass_through_ops()) out.insert(c10::Symbol::fromQualString(name));
    return out;
  }();
  static const auto adaptive_avg_pool = c10::Symbol::fromQualString("aten::adaptive_avg_pool2d");
  static const auto dropout = c10::Symbol::fromQualString("aten::dropout");
  static const auto feature_dropout = c10::Symbol::fromQualString("aten::feature_dropout");
  if (!kinds.count(node->kind())) return false;
  if (node->kind() == adaptive_avg_pool) {  // the int8 op needs the output size up front
    const auto size = torch::jit::toIValue(node->input(1));
    return size && size->isIntList();
  }
  if (node->kind() == dropout || node->kind() == feature_dropout) {  // only the eval form is the identity
    const auto train = torch::jit::toIValue(node->input(2));
    return train && train->isBool() && !train->toBool();
  }
  return true;
}

std::optional<std::vector<Value*>> cat_operands(Node* cat) {
  static const auto append = c10::Symbol::fromQualString("aten::append");
  static const auto len = c10::Symbol::fromQualString("aten::len");
  static const auto getitem = c10::Symbol::fromQualString("aten::__getitem__");
  Value* list = cat->input(0);
  Node* construct = list->node();
  if (construct->kind() != torch::jit::prim::ListConstruct || construct->owningBlock() != cat->owningBlock()) {
    return std::nullopt;
  }
  std::vector<Value*> out(construct->inputs().begin(), construct->inputs().end());
  std::vector<Node*> appends;
  for (const torch::jit::Use& use : list->uses()) {
    Node* user = use.user;
    if (user == cat) continue;
    if (user->owningBlock() != cat->owningBlock()) return std::nullopt;  // changed or read in a loop / branch
    if (user->kind() == append && use.offset == 0) {
      if (user->isBefore(cat)) appends.push_back(user);
    } else if (user->kind() != aten::cat && user->kind() != len && user->kind() != getitem) {
      return std::nullopt;  // any other use may change the list
    }
  }
  std::sort(appends.begin(), appends.end(), [](Node* a, Node* b) { return a->isBefore(b); });
  for (Node* a : appends) out.push_back(a->input(1));
  return out;
}

std::vector<Value*> StaticLayer::inputs() const {
  if (kind == "add" || kind == "mul") return {node->input(0), node->input(1)};
  if (kind == "cat") return *cat_operands(node);  // found valid when the layer was
  return {node->input(0)};
}

// The elementwise functions run as tables, by node kind (out-of-place, and
// in-place when nothing reads the input again).
static std::optional<std::string> table_kind(const Node* node) {
  static const std::vector<std::pair<std::string, std::string>> kinds{
      {"aten::sigmoid", "sigmoid"}, {"aten::sigmoid_", "sigmoid"},       {"aten::hardswish", "hardswish"},
      {"aten::hardswish_", "hardswish"}, {"aten::hardsigmoid", "hardsigmoid"}, {"aten::hardsigmoid_", "hardsigmoid"},
      {"aten::silu", "silu"},           {"aten::silu_", "silu"},             {"aten::gelu", "gelu"},
      {"aten::tanh", "tanh"},           {"aten::tanh_", "tanh"}};
  const std::string k = node->kind().toQualString();
  for (const auto& [op, kind] : kinds) {
    if (k != op) continue;
    const bool in_place = op.back() == '_';
    if (in_place && node->input(0)->uses().size() > 1) return std::nullopt;
    if (kind == "gelu" && !torch::jit::toIValue(node->input(1)).has_value()) return std::nullopt;  // approximate
    return kind;
  }
  return std::nullopt;
}

bool needs_int8_input(const std::string& kind) {
  return is_table_kind(kind) || kind == "batch_norm" || kind == "layer_norm";
}

bool is_table_kind(const std::string& kind) {
  return kind == "sigmoid" || kind == "hardswish" || kind == "hardsigmoid" || kind == "silu" || kind == "gelu" ||
         kind == "tanh";
}

std::vector<StaticLayer> find_static_layers(const torch::jit::Module& root, torch::jit::Graph& graph) {
  static const auto convolution = c10::Symbol::fromQualString("aten::_convolution");
  std::vector<StaticLayer> layers;
  int adds = 0, cats = 0, muls = 0, norms = 0, layer_norms = 0;
  std::map<std::string, int> tables;
  visit_nodes(graph.block(), [&](Node* node) {
    StaticLayer l;
    l.node = node;
    if (node->kind() == aten::conv2d && node->inputs().size() == 7) {
      l.kind = "conv2d";
      describe_weighted(root, l, 4, node->input(3), node->input(4), node->input(5), node->input(6));
    } else if (node->kind() == convolution && node->inputs().size() >= 9) {
      l.kind = "conv2d";
      const auto transposed = torch::jit::toIValue(node->input(6));
      describe_weighted(root, l, 4, node->input(3), node->input(4), node->input(5), node->input(8));
      if (!transposed || !transposed->isBool() || transposed->toBool()) {
        l.unsupported = "transposed convolution";
      }
    } else if (node->kind() == aten::conv1d && node->inputs().size() == 7) {
      l.kind = "conv1d";
      describe_weighted(root, l, 3, node->input(3), node->input(4), node->input(5), node->input(6));
    } else if (node->kind() == aten::linear) {
      l.kind = "linear";
      describe_weighted(root, l, 2, nullptr, nullptr, nullptr, nullptr);
    } else if ((node->kind() == aten::add || node->kind() == aten::add_) && node->inputs().size() == 3 &&
               node->input(0)->type()->cast<c10::TensorType>() &&
               node->input(1)->type()->cast<c10::TensorType>()) {
      if (!is_constant_int(node->input(2), 1)) return;
      // An in-place add whose first operand is read again later cannot become out-of-place.
      if (node->kind() == aten::add_ && node->input(0)->uses().size() > 1) return;
      l.kind = "add";
      l.name = "add@" + std::to_string(adds++);
    } else if (node->kind() == aten::cat && node->inputs().size() == 2 && cat_operands(node) &&
               torch::jit::toIValue(node->input(1)).has_value()) {
      l.kind = "cat";
      l.name = "cat@" + std::to_string(cats++);
    } else if ((node->kind() == aten::mul || node->kind() == aten::mul_) && node->inputs().size() == 2 &&
               node->input(0)->type()->cast<c10::TensorType>() && node->input(1)->type()->cast<c10::TensorType>()) {
      // An in-place mul whose first operand is read again later cannot become out-of-place.
      if (node->kind() == aten::mul_ && node->input(0)->uses().size() > 1) return;
      l.kind = "mul";
      l.name = "mul@" + std::to_string(muls++);
    } else if (node->kind() == aten::layer_norm && node->inputs().size() == 6) {
      l.kind = "layer_norm";
      describe_layer_norm(root, l, layer_norms++);
    } else if (node->kind() == aten::batch_norm && node->inputs().size() == 9) {
      l.kind = "batch_norm";
      describe_batch_norm(root, l, norms++);
    } else if (const auto kind = table_kind(node); kind && node->input(0)->type()->cast<c10::TensorType>()) {
      l.kind = *kind;
      l.name = *kind + "@" + std::to_string(tables[*kind]++);
    } else {
      return;
    }
    describe_activation(root, l);
    layers.push_back(std::move(l));
  });
  return layers;
}

}  // namespace qext::passes
