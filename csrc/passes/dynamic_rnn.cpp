#include "passes/dynamic_rnn.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <map>

#include "kernels/qgemm.h"
#include "ops/packed_rnn_weight.h"
#include "passes/attr_chain.h"
#include "passes/dynamic_linear.h"

namespace qext::passes {

using torch::jit::Graph;
using torch::jit::Module;
using torch::jit::Node;
using torch::jit::Value;

namespace {

// aten::lstm.input(input, hx, params, has_biases, num_layers, dropout, train,
// bidirectional, batch_first); aten::gru.input has the same arguments.
struct RnnCall {
  Node* node;
  std::string kind;  // "lstm" | "gru"
  std::optional<Module> owner;
  std::string name;                   // the owner's qualified name
  std::vector<at::Tensor> params;     // aten order
  std::vector<AttrRef> tensor_attrs;  // where the params live
  std::optional<AttrRef> list_attr;   // scripted modules: their _flat_weights list
  std::string reason;                 // why it cannot be rewritten, before the config is asked
  bool has_biases = false, bidirectional = false, batch_first = false;
  int64_t num_layers = 0;
};

// A constant, or an attribute read from self (module flags such as training).
std::optional<c10::IValue> value_of(const Module& root, Value* v) {
  if (auto c = torch::jit::toIValue(v)) return c;
  if (auto ref = resolve_attr(root, v)) return ref->owner.attr(ref->attr);
  return std::nullopt;
}

// The parameter names of nn.LSTM / nn.GRU, in aten order.
std::vector<std::string> param_names(int64_t layers, bool bidirectional, bool biases) {
  std::vector<std::string> names;
  for (int64_t l = 0; l < layers; ++l) {
    for (const char* suffix : {"", "_reverse"}) {
      if (*suffix && !bidirectional) continue;
      const std::string s = std::to_string(l) + suffix;
      names.insert(names.end(), {"weight_ih_l" + s, "weight_hh_l" + s});
      if (biases) names.insert(names.end(), {"bias_ih_l" + s, "bias_hh_l" + s});
    }
  }
  return names;
}

void resolve_params(const Module& root, RnnCall& c) {
  Value* p = c.node->input(2);
  if (p->node()->kind() == torch::jit::prim::GetAttr) {  // scripted: self.rnn._flat_weights
    const auto ref = resolve_attr(root, p);
    if (!ref || !ref->owner.attr(ref->attr).isTensorList()) return;
    c.owner = ref->owner, c.name = ref->owner_path, c.list_attr = ref;
    for (const at::Tensor& t : ref->owner.attr(ref->attr).toTensorVector()) c.params.push_back(t);
    for (const std::string& n : param_names(c.num_layers, c.bidirectional, c.has_biases)) {
      if (ref->owner.hasattr(n)) c.tensor_attrs.push_back({ref->owner, ref->owner_path, n});
    }
    return;
  }
  if (p->node()->kind() != torch::jit::prim::ListConstruct) return;  // traced: [self.rnn.weight_ih_l0, ...]
  for (Value* item : p->node()->inputs()) {
    const auto ref = resolve_attr(root, item);
    if (!ref || !ref->owner.attr(ref->attr).isTensor() || (c.owner && ref->owner_path != c.name)) {
      c.params.clear();
      return;
    }
    c.owner = ref->owner, c.name = ref->owner_path;
    c.params.push_back(ref->owner.attr(ref->attr).toTensor());
    c.tensor_attrs.push_back(*ref);
  }
}

std::vector<RnnCall> find_calls(const Module& root, Graph& graph) {
  std::vector<RnnCall> found;
  visit_nodes(graph.block(), [&](Node* node) {
    const bool lstm = node->kind() == torch::jit::aten::lstm, gru = node->kind() == torch::jit::aten::gru;
    if (!lstm && !gru) return;
    RnnCall c;
    c.node = node;
    c.kind = lstm ? "lstm" : "gru";
    const auto* schema = node->maybeSchema();
    if (!schema || schema->overload_name() != "input") {
      c.reason = "packed sequences are not supported: run it on padded tensors";
      found.push_back(c);
      return;
    }
    const auto has_biases = value_of(root, node->input(3)), layers = value_of(root, node->input(4));
    const auto train = value_of(root, node->input(6)), bidirectional = value_of(root, node->input(7));
    const auto batch_first = value_of(root, node->input(8));
    if (!has_biases || !layers || !train || !bidirectional || !batch_first || !has_biases->isBool() ||
        !layers->isInt() || !train->isBool() || !bidirectional->isBool() || !batch_first->isBool()) {
      c.reason = "its options (bias, layers, direction, batch_first) are not constants";
      found.push_back(c);
      return;
    }
    c.has_biases = has_biases->toBool(), c.num_layers = layers->toInt();
    c.bidirectional = bidirectional->toBool(), c.batch_first = batch_first->toBool();
    resolve_params(root, c);
    if (c.params.empty()) {
      c.reason = "weights are computed at run time, not module attributes";
    } else if (train->toBool()) {
      c.reason = "the module is in training mode";
    }
    found.push_back(c);
  });
  return found;
}

std::string skip_reason(const RnnCall& c, const DynamicConfig& cfg) {
  if (!c.reason.empty()) return c.reason;
  const int64_t per_cell = c.has_biases ? 4 : 2, cells = c.num_layers * (c.bidirectional ? 2 : 1);
  if (static_cast<int64_t>(c.params.size()) != per_cell * cells) {
    return "LSTM projections (proj_size > 0) are not supported";
  }
  int64_t elements = 0;
  for (const at::Tensor& t : c.params) {
    if (t.scalar_type() != at::kFloat) return "weights are " + std::string(c10::toString(t.scalar_type())) + ", only float32 is quantized";
    if (!at::isfinite(t).all().item<bool>()) return "weights hold NaN or Inf";
    if (t.dim() == 2) {
      elements += t.numel();
      if (t.size(1) > kernels::kMaxGemmK) {
        return std::to_string(t.size(1)) + " input features: more than " + std::to_string(kernels::kMaxGemmK) +
               ", the most the int32 accumulator sums exactly";
      }
    }
  }
  return config_skip_reason(cfg, *c.owner, c.name, elements);
}

void rewrite(Graph& graph, const RnnCall& c, const std::string& packed_attr, bool per_row) {
  torch::jit::WithInsertPoint guard(c.node);
  Value* packed = graph.insertGetAttr(graph.inputs()[0], packed_attr);
  Node* op = graph.create(c10::Symbol::fromQualString("qext::" + c.kind + "_dynamic"),
                          {c.node->input(0), c.node->input(1), packed, graph.insertConstant(c.batch_first),
                           graph.insertConstant(per_row)},
                          c.node->outputs().size());
  graph.insertNode(op);
  for (size_t i = 0; i < c.node->outputs().size(); ++i) {
    op->output(i)->setType(c.node->output(i)->type());
    c.node->output(i)->replaceAllUsesWith(op->output(i));
  }
  c.node->destroy();
}

int64_t bytes_of(const std::vector<at::Tensor>& params) {
  int64_t bytes = 0;
  for (const at::Tensor& t : params) bytes += static_cast<int64_t>(t.nbytes());
  return bytes;
}

}  // namespace

std::vector<LayerReport> rewrite_dynamic_rnns(Module& root, const DynamicConfig& cfg) {
  std::vector<LayerReport> rows;
  std::map<std::string, size_t> row_of;            // module name -> rows index
  std::map<std::string, std::string> packed_attr;  // module name -> attribute on root
  std::vector<RnnCall> rewritten;
  for (const auto& method : root.get_methods()) {
    const std::shared_ptr<Graph> graph = method.graph();
    torch::jit::Inline(*graph);
    for (RnnCall& c : find_calls(root, *graph)) {
      const std::string key = c.owner ? c.name : "<" + c.kind + " over computed weights>";
      if (!row_of.count(key)) {
        LayerReport row{key, c.kind, "float", skip_reason(c, cfg)};
        row.bytes_before = row.bytes_after = bytes_of(c.params);
        if (row.reason.empty()) {
          const auto packed = ops::PackedRnnWeight::from_float(c.kind, c.params, c.has_biases, c.num_layers,
                                                               c.bidirectional,
                                                               cfg.weight_granularity == Granularity::PerChannel,
                                                               int8_weight_qmax(cfg));
          const std::string attr = unique_attribute_name(root, "_qext_packed_" + c.name);
          root.register_attribute(attr, c10::getCustomClassType<decltype(packed)>(), packed);
          packed_attr[key] = attr;
          row.status = "int8";
          row.bytes_after = packed->packed_bytes();
        }
        row_of[key] = rows.size();
        rows.push_back(row);
      }
      if (rows[row_of[key]].status != "int8") continue;
      rewrite(*graph, c, packed_attr[key], cfg.per_row_activations);
      rewritten.push_back(c);
    }
    torch::jit::EliminateDeadCode(graph);
  }
  // Drop the float weights nothing reads any more, so the saved model is small.
  for (RnnCall& c : rewritten) {
    if (c.list_attr && !attr_still_read(root, *c.list_attr)) {
      c.list_attr->owner.setattr(c.list_attr->attr, c10::List<at::Tensor>());
    }
    for (AttrRef& ref : c.tensor_attrs) {
      if (ref.owner.attr(ref.attr).toTensor().numel() > 0 && !release_if_unread(root, ref)) {
        auto& row = rows[row_of[c.name]];
        row.reason = "float weights kept too: other code still reads them";
        row.bytes_after += static_cast<int64_t>(ref.owner.attr(ref.attr).toTensor().nbytes());
      }
    }
  }
  return rows;
}

}  // namespace qext::passes
