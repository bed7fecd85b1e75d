#include "passes/dynamic_linear.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "kernels/qgemm.h"
#include "ops/lowbit_linear_weight.h"
#include "ops/packed_linear_weight.h"
#include "passes/attr_chain.h"
#include "passes/name_match.h"
#include "passes/native_fast_paths.h"
#include "quant/low_rank.h"

namespace qext::passes {

using torch::jit::Graph;
using torch::jit::Module;
using torch::jit::Node;
using torch::jit::Value;
namespace aten = torch::jit::aten;

namespace {

// One aten::linear, aten::matmul(x, W) [+ bias], or aten::addmm(b, x, W)
// (Hugging Face's Conv1D) that could become int8. Values are read from the
// nodes when rewriting: an earlier rewrite (a fused ReLU) may have replaced
// the activation input.
struct Candidate {
  Node* node;
  std::string kind;  // "linear" | "matmul" | "addmm"
  std::optional<AttrRef> weight;
  bool transposed = false;    // W is [K, N] (matmul(x, W), addmm), not [N, K]
  bool has_bias = false;
  Node* bias_add = nullptr;   // aten::add folded into the op (matmul only)

  Value* input() const { return node->input(kind == "addmm" ? 1 : 0); }
  Value* bias() const { return bias_add ? bias_add->input(1) : node->input(kind == "addmm" ? 0 : 2); }
};

std::optional<at::Tensor> tensor_attr(const AttrRef& ref) {
  const c10::IValue v = ref.owner.attr(ref.attr);
  if (!v.isTensor()) return std::nullopt;
  return v.toTensor();
}

// matmul(x, W) + b with b a 1-D constant of N elements: fold b into the op.
void fold_bias_add(const Module& root, Candidate& c, int64_t n) {
  Value* product = c.node->output();
  Node* add = product->uses().size() == 1 ? product->uses()[0].user : nullptr;
  if (!add || add->kind() != aten::add || add->inputs().size() != 3 ||
      add->input(0) != c.node->output() || !is_constant_int(add->input(2), 1)) {
    return;
  }
  const auto ref = resolve_attr(root, add->input(1));
  if (!ref) return;
  const auto b = tensor_attr(*ref);
  if (b && b->dim() == 1 && b->size(0) == n && b->scalar_type() == at::kFloat) {
    c.has_bias = true;
    c.bias_add = add;
  }
}

std::vector<Candidate> find_candidates(const Module& root, Graph& graph, bool matmul) {
  std::vector<Candidate> found;
  visit_nodes(graph.block(), [&](Node* node) {
    if (node->kind() == aten::linear) {
      Candidate c{node, "linear", resolve_attr(root, node->input(1))};
      c.has_bias = !node->input(2)->type()->cast<c10::NoneType>();
      found.push_back(c);
    } else if (node->kind() == aten::addmm && is_constant_int(node->input(3), 1) &&
               is_constant_int(node->input(4), 1)) {
      // addmm(b, x, W) = x @ W + b with W [K, N] and b [N] module attributes.
      const auto w = resolve_attr(root, node->input(2)), b = resolve_attr(root, node->input(0));
      if (!w || !b) return;
      const auto wt = tensor_attr(*w), bt = tensor_attr(*b);
      if (!wt || !bt || wt->dim() != 2 || bt->dim() != 1 || bt->size(0) != wt->size(1) ||
          bt->scalar_type() != at::kFloat) {
        return;
      }
      Candidate c{node, "addmm", w, /*transposed=*/true};
      c.has_bias = true;
      found.push_back(c);
    } else if (matmul && node->kind() == aten::matmul) {
      Value* w = node->input(1);
      bool transposed = true;
      if (w->node()->kind() == aten::t) {
        w = w->node()->input(0);
        transposed = false;
      }
      auto ref = resolve_attr(root, w);
      if (!ref) return;  // a product of two activations is no layer
      Candidate c{node, "matmul", ref, transposed};
      if (const auto t = tensor_attr(*ref); t && t->dim() == 2) {
        fold_bias_add(root, c, transposed ? t->size(1) : t->size(0));
      }
      found.push_back(c);
    }
  });
  return found;
}

std::string layer_name(const Candidate& c) {
  if (!c.weight) return "<computed weight>";
  return c.weight->attr == "weight" && !c.weight->owner_path.empty() ? c.weight->owner_path
                                                                     : c.weight->qualified();
}

// Why the candidate stays float; empty when it can be quantized.
std::string skip_reason(const Candidate& c, const std::optional<at::Tensor>& w,
                        const DynamicConfig& cfg, const std::string& name) {
  if (!c.weight) return "weight is computed at run time, not a module attribute";
  if (!w) return "weight attribute is not a tensor";
  if (w->scalar_type() != at::kFloat) return "weight is " + std::string(c10::toString(w->scalar_type())) + ", only float32 is quantized";
  if (w->dim() != 2) return "weight is " + std::to_string(w->dim()) + "-D, expected 2-D";
  if (w->numel() == 0) return "weight is empty";
  if (std::string why = config_skip_reason(cfg, c.weight->owner, name, w->numel()); !why.empty()) return why;
  if (!at::isfinite(*w).all().item<bool>()) return "weight holds NaN or Inf";
  const int64_t k = c.transposed ? w->size(0) : w->size(1);
  if (k > kernels::kMaxGemmK) {
    return std::to_string(k) + " input features: more than " + std::to_string(kernels::kMaxGemmK) +
           ", the most the int32 accumulator sums exactly";
  }
  return "";
}

// The packed weight of one layer registered on the root module, and the op
// that reads it. A low-rank layer has two int8 weights, run one after the
// other: x -> [r] (first_attr, no bias) -> [N] (attr, the layer's bias).
struct PackedLayer {
  std::string attr;
  const char* op;  // "qext::linear_dynamic" or "qext::linear_lowbit"
  std::string first_attr;  // low rank only: the K -> r factor
};

// The fused activation a layer's output goes through, if any. ReLU fuses into
// either op; GELU (erf form) into qext::linear_dynamic only.
struct FusedActivation {
  Node* node = nullptr;
  bool relu = false, gelu = false;
};

FusedActivation fused_activation(Value* out, bool int8) {
  Node* user = single_data_user(out);
  if (!user) return {};
  if (user == single_relu_user(out)) return {user, true, false};
  if (int8 && user->kind() == torch::jit::aten::gelu) {
    const auto approximate = torch::jit::toIValue(user->input(1));
    if (approximate && approximate->isString() && approximate->toStringRef() == "none") return {user, false, true};
  }
  return {};
}

// The op's arguments after the packed weight and bias; activation_bits and
// gelu for qext::linear_dynamic only (low-bit layers take 8-bit activations).
// Saved code leaves out trailing arguments equal to the schema's defaults, so
// an 8-bit model without GELU reads as before, in earlier qext versions too.
std::vector<Value*> trailing_args(Graph& graph, c10::Symbol op, bool per_row, const FusedActivation& act,
                                  int64_t activation_bits) {
  std::vector<Value*> args{graph.insertConstant(per_row), graph.insertConstant(act.relu)};
  if (op == c10::Symbol::fromQualString("qext::linear_dynamic")) {
    args.push_back(graph.insertConstant(activation_bits));
    args.push_back(graph.insertConstant(act.gelu));
  }
  return args;
}

std::vector<Value*> concat(std::vector<Value*> head, const std::vector<Value*>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

void rewrite(Graph& graph, const Candidate& c, const PackedLayer& packed_layer, bool per_row,
             int64_t activation_bits) {
  Node* last = c.bias_add ? c.bias_add : c.node;
  const c10::Symbol op_name = c10::Symbol::fromQualString(packed_layer.op);
  const FusedActivation act =
      fused_activation(last->output(), op_name == c10::Symbol::fromQualString("qext::linear_dynamic"));
  torch::jit::WithInsertPoint guard(last);
  Value* input = c.input();
  if (!packed_layer.first_attr.empty()) {
    Value* first = graph.insertGetAttr(graph.inputs()[0], packed_layer.first_attr);
    Node* reduce = graph.create(op_name, concat({input, first, graph.insertConstant(c10::IValue())},
                                                trailing_args(graph, op_name, per_row, {}, activation_bits)));
    graph.insertNode(reduce);
    input = reduce->output()->setType(last->output()->type());
  }
  Value* packed = graph.insertGetAttr(graph.inputs()[0], packed_layer.attr);
  Value* bias = c.has_bias ? c.bias() : graph.insertConstant(c10::IValue());
  Node* op = graph.create(op_name, concat({input, packed, bias}, trailing_args(graph, op_name, per_row, act, activation_bits)));
  graph.insertNode(op);
  Value* out = op->output()->setType(last->output()->type());
  if (act.node) {
    act.node->output()->replaceAllUsesWith(out);
    act.node->destroy();
  }
  last->output()->replaceAllUsesWith(out);
  if (c.bias_add) c.bias_add->destroy();
  c.node->destroy();
}

// Packs `weight` [N, K] to int8 (sharing a tied embedding table's values when
// there is one) and registers it on the root; fills the report row.
PackedLayer register_int8(Module& root, const std::string& name, const at::Tensor& weight, const DynamicConfig& cfg,
                          const EmbeddingTables& tables, LayerReport& row) {
  const bool per_channel = cfg.weight_granularity == Granularity::PerChannel;
  const auto tied = per_channel ? tables.int8.find(weight.data_ptr()) : tables.int8.end();
  c10::intrusive_ptr<ops::PackedLinearWeight> packed;
  const bool shared = tied != tables.int8.end() && tied->second->weight().sizes() == weight.sizes();
  if (shared) {
    packed = c10::make_intrusive<ops::PackedLinearWeight>(tied->second->weight(), tied->second->scales(),
                                                          cfg.activation_bits);
    packed->share_pickled_weight(tied->second->weight());
    row.reason = "int8 values shared with the embedding table of the same weight";
  } else {
    packed = ops::PackedLinearWeight::from_float(weight, per_channel, int8_weight_qmax(cfg), cfg.activation_bits);
  }
  const std::string attr = unique_attribute_name(root, "_qext_packed_" + name);
  root.register_attribute(attr, c10::getCustomClassType<decltype(packed)>(), packed);
  row.status = "int8";
  row.bytes_after = packed->out_features() * static_cast<int64_t>(sizeof(float)) +
                    (shared ? 0 : packed->out_features() * packed->in_features());
  return {attr, "qext::linear_dynamic"};
}

// W [N, K] as two int8 factors from its truncated SVD (cfg.low_rank or
// cfg.low_rank_energy), registered on the root; empty unless the pair is at
// most half W's size (a rank that saves less is not worth the truncation: on
// a 10-class output layer it cost 9 points of accuracy for 7 % of its bytes).
std::optional<PackedLayer> register_low_rank(Module& root, const std::string& name, const at::Tensor& weight,
                                             const DynamicConfig& cfg, LayerReport& row) {
  const int64_t n = weight.size(0), k = weight.size(1);
  const quant::LowRankSplit split = quant::low_rank_split(weight, cfg.low_rank, cfg.low_rank_energy);
  if (2 * split.rank * (n + k) > n * k) {
    row.reason = "rank " + std::to_string(split.rank) + " would not make a " + std::to_string(n) + "x" +
                 std::to_string(k) + " weight 2x smaller: kept as one int8 layer";
    return std::nullopt;
  }
  const int64_t qmax = int8_weight_qmax(cfg);
  const auto first = ops::PackedLinearWeight::from_float(split.right, true, qmax, cfg.activation_bits);  // [r, K]
  const auto second = ops::PackedLinearWeight::from_float(split.left, true, qmax, cfg.activation_bits);  // [N, r]
  PackedLayer layer{unique_attribute_name(root, "_qext_packed_" + name + "_lr1"), "qext::linear_dynamic", ""};
  root.register_attribute(layer.attr, c10::getCustomClassType<decltype(first)>(), first);
  layer.first_attr = layer.attr;
  layer.attr = unique_attribute_name(root, "_qext_packed_" + name + "_lr2");
  root.register_attribute(layer.attr, c10::getCustomClassType<decltype(second)>(), second);
  row.status = "int8";
  std::ostringstream why;
  why.precision(4);
  why << "low rank " << split.rank << " of " << std::min(n, k) << " (energy " << split.energy
      << "): two int8 layers " << k << " -> " << split.rank << " -> " << n;
  row.reason = why.str();
  row.bytes_after = split.rank * (n + k) + (split.rank + n) * static_cast<int64_t>(sizeof(float));
  return layer;
}

// Packs `weight` to cfg.weight_bits with group-wise scales (or takes the
// low-bit table of an embedding with the same weight: one object, which the
// file then holds once) and registers it.
PackedLayer register_lowbit(Module& root, const std::string& name, const at::Tensor& weight,
                            const DynamicConfig& cfg, const EmbeddingTables& tables, LayerReport& row) {
  const auto tied = tables.lowbit.find(weight.data_ptr());
  c10::intrusive_ptr<ops::LowBitLinearWeight> packed;
  if (tied != tables.lowbit.end() && tied->second->out_features() == weight.size(0) &&
      tied->second->in_features() == weight.size(1)) {
    packed = tied->second;
    row.reason = "low-bit values shared with the embedding table of the same weight";
  } else {
    packed = ops::LowBitLinearWeight::from_float(weight, cfg.weight_bits, cfg.group_size);
  }
  const std::string attr = unique_attribute_name(root, "_qext_packed_" + name);
  root.register_attribute(attr, c10::getCustomClassType<decltype(packed)>(), packed);
  row.status = "int" + std::to_string(cfg.weight_bits);
  row.bytes_after = static_cast<int64_t>(packed->scales().nbytes()) + (row.reason.empty() ? packed->saved_code_bytes() : 0);
  return {attr, "qext::linear_lowbit"};
}

}  // namespace

int64_t int8_weight_qmax(const DynamicConfig& cfg) { return cfg.weight_bits == 7 ? 63 : 127; }

bool uses_lowbit_weights(const DynamicConfig& cfg) { return cfg.weight_bits < 7; }

std::string config_skip_reason(const DynamicConfig& cfg, const Module& owner, const std::string& name,
                               int64_t weight_elements) {
  if (!cfg.module_types.empty()) {
    const std::string type = owner.type()->name() ? owner.type()->name()->name() : "";
    bool listed = false;
    for (const auto& t : cfg.module_types) listed = listed || t == type;
    if (!listed) return "module type " + type + " is not in module_types";
  }
  if (!cfg.include.empty() && !first_match(cfg.include, name)) return "not matched by any include pattern";
  if (const std::string* p = first_match(cfg.exclude, name)) return "excluded by pattern '" + *p + "'";
  if (weight_elements < cfg.min_weight_elements) {
    return std::to_string(weight_elements) + " weights < min_weight_elements " +
           std::to_string(cfg.min_weight_elements);
  }
  return "";
}

std::vector<LayerReport> rewrite_dynamic_linears(Module& root, const DynamicConfig& cfg, const EmbeddingTables& tables) {
  std::vector<LayerReport> rows;
  std::map<std::string, size_t> row_of;            // layer key -> rows index
  std::map<std::string, PackedLayer> packed_layer;  // layer key -> packed weight on root
  std::vector<AttrRef> quantized_weights;

  for (const auto& method : root.get_methods()) {
    const std::shared_ptr<Graph> graph = method.graph();
    torch::jit::Inline(*graph);
    for (const Candidate& c : find_candidates(root, *graph, cfg.quantize_matmul)) {
      const std::string name = layer_name(c);
      const std::optional<at::Tensor> w = c.weight ? tensor_attr(*c.weight) : std::nullopt;
      const std::string key = name + (c.transposed ? "^T" : "");
      if (!row_of.count(key)) {
        LayerReport row{name, c.kind, "float", skip_reason(c, w, cfg, name)};
        row.bytes_before = row.bytes_after = w ? static_cast<int64_t>(w->nbytes()) : 0;
        if (row.reason.empty()) {
          const at::Tensor weight = c.transposed ? w->t().contiguous() : *w;
          const bool tied = tables.int8.count(weight.data_ptr()) || tables.lowbit.count(weight.data_ptr());
          std::optional<PackedLayer> low_rank;
          if ((cfg.low_rank > 0 || cfg.low_rank_energy > 0.0) && !tied) {
            low_rank = register_low_rank(root, name, weight, cfg, row);
          }
          if (low_rank) {
            packed_layer[key] = *low_rank;
          } else if (uses_lowbit_weights(cfg)) {
            packed_layer[key] = register_lowbit(root, name, weight, cfg, tables, row);
          } else {
            packed_layer[key] = register_int8(root, name, weight, cfg, tables, row);
          }
          quantized_weights.push_back(*c.weight);
        }
        row_of[key] = rows.size();
        rows.push_back(row);
      }
      if (packed_layer.count(key)) rewrite(*graph, c, packed_layer[key], cfg.per_row_activations, cfg.activation_bits);
    }
    std::set<std::string> quantized_names;
    for (const AttrRef& ref : quantized_weights) quantized_names.insert(ref.qualified());
    disable_native_fast_paths(root, *graph, quantized_names);
    torch::jit::EliminateDeadCode(graph);
  }

  // Drop float weights nothing reads any more, so the saved model is small.
  for (AttrRef& ref : quantized_weights) {
    const int64_t float_bytes = static_cast<int64_t>(ref.owner.attr(ref.attr).toTensor().nbytes());
    if (release_if_unread(root, ref)) continue;
    for (auto& row : rows) {
      if (row.name == ref.qualified() || row.name == ref.owner_path) {
        row.reason = "float weight kept too: other code still reads it";
        row.bytes_after += float_bytes;
      }
    }
  }
  return rows;
}

}  // namespace qext::passes
