#include <ATen/ATen.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <functional>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "kernels/qgemm.h"
#include "kernels/ref/scalar_rules.h"
#include "ops/observer_class.h"
#include "ops/packed_conv_weight.h"
#include "ops/packed_linear_weight.h"
#include "ops/static_int8.h"
#include "passes/name_match.h"
#include "passes/static_passes.h"
#include "passes/static_patterns.h"
#include "quant/equalization.h"

namespace qext::passes {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

namespace {

using Qp = ActivationQParams;

const c10::Symbol kObserve = c10::Symbol::fromQualString("qext::observe");
const c10::Symbol kQuantize = c10::Symbol::fromQualString("qext::quantize_per_tensor");
const c10::Symbol kDequantize = c10::Symbol::fromQualString("qext::dequantize_per_tensor");

Value* emit(Graph& g, c10::Symbol op, const std::vector<Value*>& inputs) {
  Node* n = g.create(op, inputs);
  g.insertNode(n);
  n->output()->setType(c10::TensorType::get());
  return n->output();
}

// Removes every observe node, returning the qparams its observer chose for the
// value it watched. Fixed ranges (fake_quantize from QAT) apply to their input
// and output; the node stays, so values no int8 layer reads keep the
// fake-quant numerics (between int8 layers drop_requantize_pairs removes it).
struct Observations {
  std::unordered_map<Value*, Qp> qp;
  std::unordered_map<Value*, std::string> why_float;  // values seen with another dtype than float32
};

Observations take_observations(const torch::jit::Module& root, Graph& graph) {
  std::vector<Node*> nodes;
  Observations seen;
  auto& qp = seen.qp;
  visit_nodes(graph.block(), [&](Node* n) {
    if (n->kind() == kObserve) nodes.push_back(n);
    if (const auto fixed = fixed_qparams(root, n)) {
      qp.emplace(n->input(0), *fixed);
      qp.emplace(n->output(), *fixed);
    }
  });
  // An observer that saw no data watched a branch or method calibration never
  // ran: its value stays float ("not observed during calibration"), as does
  // one that saw integers or float64 (an index add, a constant) at run time.
  for (Node* n : nodes) {
    const auto ref = resolve_attr(root, n->input(1));
    TORCH_CHECK(ref, "qext::convert: an observer is not a module attribute; was the module prepared by qext?");
    auto observer = ref->owner.attr(ref->attr).toCustomClass<ops::ObserverClass>();
    if (const std::string dtype = observer->non_float(); !dtype.empty()) {
      seen.why_float[n->input(0)] = "an operand is " + dtype + " at run time, not float32";
    } else if (observer->batches() > 0) {
      const auto [scale, zp] = observer->qparams();
      qp[n->input(0)] = Qp{scale.item<double>(), zp.item<int64_t>()};
    }
    n->output()->replaceAllUsesWith(n->input(0));
    n->destroy();
  }
  return seen;
}

// Points aten::size / aten::dim readers of `from` at `to` (same shape, defined
// right after it), so no float tensor stays alive just to be measured.
void redirect_shape_queries(Value* from, Value* to) {
  const std::vector<torch::jit::Use> uses = from->uses();  // copy: replaceInput edits it
  for (const auto& use : uses) {
    const auto k = use.user->kind();
    if (k != torch::jit::aten::size && k != torch::jit::aten::dim) continue;
    // The reader, or the if/loop holding it, in `to`'s block (BatchNorm checks
    // input.dim() inside an if).
    Node* outer = use.user;
    while (outer && outer->owningBlock() != to->node()->owningBlock()) outer = outer->owningBlock()->owningNode();
    if (outer && outer->isAfter(to->node())) use.user->replaceInput(use.offset, to);
  }
}

// The pass-through op p applied to uint8 `x` (zero point `zero_point`):
// qext's int8 pooling ops, or p itself for the ops that only move bytes.
Value* on_uint8(Graph& graph, Node* p, Value* x, int64_t zero_point) {
  static const auto max_pool = c10::Symbol::fromQualString("aten::max_pool2d");
  static const auto avg_pool = c10::Symbol::fromQualString("aten::avg_pool2d");
  static const auto adaptive_avg_pool = c10::Symbol::fromQualString("aten::adaptive_avg_pool2d");
  std::vector<Value*> args(p->inputs().begin(), p->inputs().end());
  args[0] = x;
  const char* op = nullptr;
  if (p->kind() == max_pool) {
    op = "qext::max_pool2d_int8";
  } else if (p->kind() == avg_pool) {
    op = "qext::avg_pool2d_int8";
    args.insert(args.begin() + 1, graph.insertConstant(zero_point));
  } else if (p->kind() == adaptive_avg_pool) {
    op = "qext::adaptive_avg_pool2d_int8";
    args.insert(args.begin() + 1, graph.insertConstant(zero_point));
  } else if (p->kind() == torch::jit::aten::relu) {
    // relu(real) = real clamped at 0, i.e. q clamped at the zero point.
    return emit(graph, torch::jit::aten::clamp_min, {x, graph.insertConstant(zero_point)});
  }
  if (!op) {
    if (p->kind() == torch::jit::aten::view) {
      // int8 ops return channels-last tensors, which view() cannot reshape.
      x = emit(graph, torch::jit::aten::contiguous, {x, graph.insertConstant(int64_t{0})});
    }
    Node* copy = graph.createClone(p, [&](Value* v) { return v == p->input(0) ? x : v; });
    return graph.insertNode(copy)->output();
  }
  return emit(graph, c10::Symbol::fromQualString(op), args);
}

// quantize(P(...P(dequantize(q, s, z))), s, z) -> P(...P(q)) for pass-through
// ops P (none, or max_pool2d, flatten, ..., or a fake_quantize fixing the same
// (s, z), an identity on such values): int8 tensors flow between int8 layers.
void drop_requantize_pairs(const torch::jit::Module& root, Graph& graph) {
  std::vector<Node*> quantizes;
  visit_nodes(graph.block(), [&](Node* n) {
    if (n->kind() == kQuantize) quantizes.push_back(n);
  });
  // A pass-through op rebuilt on uint8 once, however many quantizes read it
  // (a pool feeding several cats was computed once per cat).
  std::map<std::pair<Node*, Value*>, Value*> rebuilt;
  for (Node* q : quantizes) {
    std::vector<Node*> chain;  // pass-through ops, nearest the quantize first
    Node* dq = q->input(0)->node();
    const double scale = torch::jit::toIValue(q->input(1))->toDouble();
    const int64_t zero_point = torch::jit::toIValue(q->input(2))->toInt();
    auto same_fixed = [&](Node* n) {
      const auto f = fixed_qparams(root, n);
      return f && f->scale == scale && f->zero_point == zero_point;
    };
    while ((is_pass_through(dq) || same_fixed(dq)) && dq->owningBlock() == q->owningBlock()) {
      if (!same_fixed(dq)) chain.push_back(dq);
      dq = dq->input(0)->node();
    }
    if (dq->kind() != kDequantize) continue;
    const auto same = [&](size_t i) {
      return torch::jit::toIValue(q->input(i)) == torch::jit::toIValue(dq->input(i));
    };
    if (!same(1) || !same(2)) continue;
    Value* current = dq->input(0);
    redirect_shape_queries(dq->output(), current);
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      if (const auto done = rebuilt.find({*it, current}); done != rebuilt.end()) {
        current = done->second;
        continue;
      }
      // Right after the float op it replaces, so whatever read that op's
      // shape (x.view(x.size(0), -1)) can read the uint8 result instead.
      torch::jit::WithInsertPoint guard((*it)->next());
      Value* input = current;
      current = on_uint8(graph, *it, current, zero_point);
      redirect_shape_queries((*it)->output(), current);
      rebuilt[{*it, input}] = current;
    }
    q->output()->replaceAllUsesWith(current);
  }
  torch::jit::EliminateDeadCode(graph.shared_from_this());
}

// A range-fixing fake_quantize (qext.qat.convert) right after a dequantize, or
// right before quantizes, with the same (scale, zero point) is an identity
// there: fq(dequantize(q)) = dequantize(q) and quantize(fq(x)) = quantize(x).
// Dropping it leaves the op set of a post-training conversion.
void drop_redundant_fake_quantize(const torch::jit::Module& root, Graph& graph) {
  std::vector<std::pair<Node*, ActivationQParams>> fixed;
  visit_nodes(graph.block(), [&](Node* n) {
    if (const auto f = fixed_qparams(root, n)) fixed.emplace_back(n, *f);
  });
  for (const auto& [fq, f] : fixed) {
    const auto same = [&](Node* n) {
      return torch::jit::toIValue(n->input(1))->toDouble() == f.scale &&
             torch::jit::toIValue(n->input(2))->toInt() == f.zero_point;
    };
    Node* def = fq->input(0)->node();
    bool identity = def->kind() == kDequantize && same(def);
    if (!identity && !fq->output()->uses().empty()) {
      identity = true;
      for (const auto& use : fq->output()->uses()) identity = identity && use.user->kind() == kQuantize && same(use.user);
    }
    if (!identity) continue;
    fq->output()->replaceAllUsesWith(fq->input(0));
    fq->destroy();
  }
  torch::jit::EliminateDeadCode(graph.shared_from_this());
}

// The packed weight of a conv/linear layer as a new root attribute; returns its
// name and the int8 bytes it holds.
std::pair<std::string, int64_t> pack_weight(torch::jit::Module& root, const StaticLayer& l, int64_t weight_bits) {
  const int64_t qmax = (int64_t{1} << (weight_bits - 1)) - 1;
  const at::Tensor w = l.weight->owner.attr(l.weight->attr).toTensor();
  const std::string attr = unique_attribute_name(root, "_qext_packed_" + l.name);
  if (l.kind == "conv2d" || l.kind == "conv1d") {
    auto packed = ops::PackedConvWeight::from_float(l.kind == "conv1d" ? w.unsqueeze(2) : w, l.conv.stride, l.conv.padding, l.conv.dilation, l.conv.groups, qmax);
    root.register_attribute(attr, c10::getCustomClassType<decltype(packed)>(), packed);
  } else {
    auto packed = ops::PackedLinearWeight::from_float(w, /*per_channel=*/true, qmax);
    root.register_attribute(attr, c10::getCustomClassType<decltype(packed)>(), packed);
  }
  return {attr, w.numel() + w.size(0) * static_cast<int64_t>(sizeof(float))};
}

// Bias correction: the layer's bias minus the mean shift its quantized weight
// (root attribute packed_attr) adds for inputs of these per-channel means, as
// a new root attribute; nullptr when the bias is computed at run time.
Value* corrected_bias(torch::jit::Module& root, Graph& graph, const StaticLayer& l, const std::string& packed_attr,
                      const at::Tensor& input_mean) {
  const c10::IValue bias = constant_or_attr(root, l.bias()).value_or(c10::IValue("computed"));
  if (!bias.isNone() && !bias.isTensor()) return nullptr;
  const at::Tensor w = l.weight->owner.attr(l.weight->attr).toTensor();
  at::Tensor dequantized;
  int64_t groups = 1;
  if (l.kind == "linear") {
    const auto packed = root.attr(packed_attr).toCustomClass<ops::PackedLinearWeight>();
    dequantized = packed->weight().to(at::kFloat) * packed->scales().view({-1, 1});
  } else {
    const auto packed = root.attr(packed_attr).toCustomClass<ops::PackedConvWeight>();
    dequantized = (packed->weight().to(at::kFloat) * packed->scales().view({-1, 1, 1, 1})).view(w.sizes());
    groups = packed->groups();
  }
  const at::Tensor shift = quant::quantization_bias_shift(w, dequantized, input_mean, groups);
  const at::Tensor corrected = bias.isTensor() ? bias.toTensor() - shift.to(bias.toTensor().scalar_type()) : -shift;
  const std::string attr = unique_attribute_name(root, "_qext_corrected_bias_" + l.name);
  root.register_attribute(attr, c10::TensorType::get(), corrected);
  return graph.insertGetAttr(graph.inputs()[0], attr);
}

// Why a conv/linear layer's dot products are too long for the int32
// accumulator (empty when they fit).
std::string reduction_too_long(const StaticLayer& l) {
  if (!l.weight || (l.kind != "linear" && l.kind != "conv2d" && l.kind != "conv1d")) return "";
  const c10::IValue v = l.weight->owner.attr(l.weight->attr);
  if (!v.isTensor()) return "";
  const at::Tensor w = v.toTensor();
  int64_t k = w.dim() >= 2 ? w.size(1) : 0;
  if (l.kind == "conv2d" && w.dim() == 4) k = ops::PackedConvWeight::reduction_length(w.size(2), w.size(3), w.size(1));
  if (l.kind == "conv1d" && w.dim() == 3) k = ops::PackedConvWeight::reduction_length(1, w.size(2), w.size(1));
  if (k <= kernels::kMaxGemmK) return "";
  return "dot products of " + std::to_string(k) + " terms: more than " + std::to_string(kernels::kMaxGemmK) +
         ", the most the int32 accumulator sums exactly";
}

// A float operand that is a constant or a module's tensor (ConvNeXt's layer
// scale) quantized once here rather than on every forward; nullptr for
// anything else, and for a tensor with NaN or Inf, which keeps the run-time
// quantize and its check_finite error. (The caller releases a module tensor
// that nothing reads any more.)
Value* quantized_constant(const torch::jit::Module& root, Graph& graph, Value* v, const Qp& qp) {
  std::optional<AttrRef> ref = resolve_attr(root, v);
  const std::optional<c10::IValue> value = ref ? std::optional<c10::IValue>(ref->owner.attr(ref->attr))
                                               : torch::jit::toIValue(v);
  if (!value || !value->isTensor()) return nullptr;
  const at::Tensor t = value->toTensor();
  if (t.scalar_type() != at::kFloat || !at::isfinite(t).all().item<bool>()) return nullptr;
  return graph.insertConstant(ops::quantize_per_tensor(t.detach().contiguous(), qp.scale, qp.zero_point));
}

// Puts qext::check_finite before every remaining float -> int8 quantize, so
// NaN/Inf raise instead of becoming finite int8 values.
void guard_boundaries(Graph& graph) {
  const c10::Symbol check = c10::Symbol::fromQualString("qext::check_finite");
  visit_nodes(graph.block(), [&](Node* n) {
    if (n->kind() != kQuantize || n->input(0)->node()->kind() == check) return;
    torch::jit::WithInsertPoint guard(n);
    n->replaceInput(0, emit(graph, check, {n->input(0)}));
  });
}

// Adds a report row for each op that reads int8 data dequantized because it
// has no int8 version (e.g. tanh, softmax, a matmul of two activations).
// `layers_kept_float` have rows of their own, with their reason.
void report_float_ops(Graph& graph, const std::unordered_set<Node*>& layers_kept_float,
                      std::vector<LayerReport>& rows) {
  static const auto is_op = c10::Symbol::fromQualString("aten::__is__");
  static const auto isnot_op = c10::Symbol::fromQualString("aten::__isnot__");
  static const auto dropout = c10::Symbol::fromQualString("aten::dropout");
  static const auto select = c10::Symbol::fromQualString("aten::select");
  static const auto append = c10::Symbol::fromQualString("aten::append");
  std::unordered_set<Node*> seen = layers_kept_float;
  std::map<std::string, int> count;
  // The ops computing on v: through layout ops, select and dropout (float
  // here only because what reads them is), past metadata queries (size, dim,
  // `is None`) and list appends.
  std::function<void(Value*)> report_readers = [&](Value* v) {
    for (const auto& use : v->uses()) {
      Node* user = use.user;
      const auto k = user->kind();
      if (k == torch::jit::prim::ListUnpack || k == torch::jit::prim::TupleUnpack ||
          k == torch::jit::prim::ConstantChunk) {
        for (Value* part : user->outputs()) report_readers(part);
        continue;
      }
      if (!k.is_aten() || k == torch::jit::aten::size || k == torch::jit::aten::dim || k == is_op || k == isnot_op ||
          k == append || !seen.insert(user).second) {
        continue;
      }
      if ((is_pass_through(user) || k == dropout || k == select) && use.offset == 0 && user->outputs().size() == 1) {
        report_readers(user->output());
        continue;
      }
      const std::string op = k.toUnqualString();
      rows.push_back({op + "@" + std::to_string(count[op]++), op, "float",
                      "no int8 version: runs in float on dequantized int8 data"});
    }
  };
  visit_nodes(graph.block(), [&](Node* n) {
    if (n->kind() == kDequantize) report_readers(n->output());
  });
}

// The uint8 -> uint8 table of an elementwise layer, [256], or of a
// batch_norm, [C, 256] (one per channel): quantize(f(dequantize(q))) with the
// qparams of its input and output, by the scalar rules the int8 ops use, f
// computed by ATen in float (batch_norm with its fused ReLU / clamp).
at::Tensor lookup_table(const torch::jit::Module& root, const StaticLayer& l, const Qp& in, const Qp& out) {
  at::Tensor x = at::empty({256}, at::kFloat);
  for (int32_t q = 0; q < 256; ++q) {
    x.data_ptr<float>()[q] = kernels::ref::dequantize_one(q, static_cast<float>(in.scale), static_cast<int32_t>(in.zero_point));
  }
  at::Tensor y;
  if (l.kind == "sigmoid") y = at::sigmoid(x);
  if (l.kind == "hardswish") y = at::hardswish(x);
  if (l.kind == "hardsigmoid") y = at::hardsigmoid(x);
  if (l.kind == "silu") y = at::silu(x);
  if (l.kind == "tanh") y = at::tanh(x);
  if (l.kind == "gelu") y = at::gelu(x, torch::jit::toIValue(l.node->input(1))->toStringRef());
  if (l.kind == "batch_norm") {
    const auto param = [&](size_t i) {
      const c10::IValue v = *constant_or_attr(root, l.node->input(i));
      return v.isTensor() ? std::optional<at::Tensor>(v.toTensor()) : std::nullopt;
    };
    const at::Tensor mean = *param(3);
    y = at::batch_norm(x.view({1, 1, 256}).expand({1, mean.size(0), 256}).contiguous(), param(1), param(2), mean,
                       param(4), /*training=*/false, 0.0, constant_or_attr(root, l.node->input(7))->toDouble(),
                       /*cudnn_enabled=*/false)
            .view({mean.size(0), 256});
    if (l.relu) y = y.clamp_min(0);
    if (l.clamp_min || l.clamp_max) y = at::clamp(y, l.clamp_min, l.clamp_max);
  }
  y = y.contiguous();
  at::Tensor table = at::empty(y.sizes(), at::kByte);
  for (int64_t i = 0; i < y.numel(); ++i) {
    table.data_ptr<uint8_t>()[i] = static_cast<uint8_t>(kernels::ref::quantize_one(
        y.data_ptr<float>()[i], static_cast<float>(out.scale), static_cast<int32_t>(out.zero_point), 0, 255));
  }
  return table;
}

}  // namespace

std::vector<LayerReport> convert_static_layers(torch::jit::Module& root, Graph& graph,
                                               const std::vector<std::string>& exclude, int64_t weight_bits,
                                               bool check_finite, bool probe) {
  Observations seen = take_observations(root, graph);
  auto& qp = seen.qp;
  const auto input_means = take_channel_means(root, graph);  // present when prepared for bias correction
  std::vector<LayerReport> rows;
  std::vector<AttrRef> quantized_weights;
  std::unordered_map<Value*, Value*> quantized_once;
  std::unordered_set<Node*> kept_float;
  for (const StaticLayer& l : find_static_layers(root, graph)) {
    LayerReport row{l.name, l.kind, "float", l.unsupported};
    if (l.weight) {
      const c10::IValue w = l.weight->owner.attr(l.weight->attr);
      row.bytes_before = row.bytes_after = w.isTensor() ? static_cast<int64_t>(w.toTensor().nbytes()) : 0;
    }
    bool observed = qp.count(l.output());
    std::string not_float = seen.why_float.count(l.output()) ? seen.why_float[l.output()] : "";
    for (Value* v : l.inputs()) {
      observed = observed && qp.count(v);
      if (not_float.empty() && seen.why_float.count(v)) not_float = seen.why_float[v];
    }
    if (row.reason.empty() && first_match(exclude, l.name)) row.reason = "excluded by pattern '" + *first_match(exclude, l.name) + "'";
    if (row.reason.empty() && !not_float.empty()) row.reason = not_float;
    if (row.reason.empty() && !observed) row.reason = "not observed during calibration";
    if (row.reason.empty()) row.reason = reduction_too_long(l);
    // A table between float ops would only add a quantize and a dequantize;
    // one reading an int8 layer's output (through pools, views...) is free.
    if (row.reason.empty() && needs_int8_input(l.kind)) {
      Node* source = l.inputs()[0]->node();
      while (is_pass_through(source)) source = source->input(0)->node();
      if (source->kind() != kDequantize) row.reason = "its input is float: alone between float ops it runs faster in float";
    }
    if (!row.reason.empty()) {
      rows.push_back(row);
      kept_float.insert(l.node);
      continue;
    }

    const Qp out = qp.at(l.output());
    torch::jit::WithInsertPoint guard(l.node);
    std::vector<Value*> ins;
    for (Value* v : l.inputs()) {
      const Qp in = qp.at(v);
      // A float value two int8 layers read (the model input of parallel
      // branches) is quantized once, where both can see it.
      Value*& quantized = quantized_once[v];
      if (!quantized || quantized->node()->owningBlock() != l.node->owningBlock()) {
        quantized = quantized_constant(root, graph, v, in);
        if (quantized) {
          if (std::optional<AttrRef> ref = resolve_attr(root, v)) quantized_weights.push_back(*ref);
        } else {
          quantized = emit(graph, kQuantize, {v, graph.insertConstant(in.scale), graph.insertConstant(in.zero_point)});
        }
      }
      ins.push_back(quantized);
      ins.push_back(graph.insertConstant(in.scale));
      ins.push_back(graph.insertConstant(in.zero_point));
    }
    Value* yq;
    Value* relu = graph.insertConstant(l.relu);
    Value* so = graph.insertConstant(out.scale);
    Value* zo = graph.insertConstant(out.zero_point);
    if (l.kind == "add") {
      yq = emit(graph, c10::Symbol::fromQualString("qext::add_int8"), {ins[0], ins[1], ins[2], ins[3], ins[4], ins[5], so, zo, relu});
    } else if (l.kind == "mul") {
      yq = emit(graph, c10::Symbol::fromQualString("qext::mul_int8"), {ins[0], ins[1], ins[2], ins[3], ins[4], ins[5], so, zo});
    } else if (l.kind == "layer_norm") {
      Node* n = l.node;
      yq = emit(graph, c10::Symbol::fromQualString("qext::layer_norm_int8"),
                {ins[0], ins[1], ins[2], n->input(1), n->input(2), n->input(3), n->input(4), so, zo});
    } else if (is_table_kind(l.kind) || l.kind == "batch_norm") {
      yq = emit(graph, c10::Symbol::fromQualString("qext::lut_u8"),
                {ins[0], graph.insertConstant(lookup_table(root, l, qp.at(l.inputs()[0]), out))});
    } else if (l.kind == "cat") {
      std::vector<Value*> parts;
      c10::List<double> scales;
      c10::List<int64_t> zero_points;
      for (size_t i = 0; i < ins.size(); i += 3) {
        parts.push_back(ins[i]);
        scales.push_back(torch::jit::toIValue(ins[i + 1])->toDouble());
        zero_points.push_back(torch::jit::toIValue(ins[i + 2])->toInt());
      }
      Value* list = graph.insertNode(graph.createList(c10::TensorType::get(), parts))->output();
      yq = emit(graph, c10::Symbol::fromQualString("qext::cat_int8"),
                {list, graph.insertConstant(scales), graph.insertConstant(zero_points), l.node->input(1), so, zo});
    } else {
      const auto [attr, bytes] = pack_weight(root, l, weight_bits);
      row.bytes_after = bytes;
      Value* packed = graph.insertGetAttr(graph.inputs()[0], attr);
      const bool conv1d = l.kind == "conv1d";  // conv2d over [N, C, 1, L]
      const char* op = l.kind == "linear" ? "qext::linear_int8" : "qext::conv2d_int8";
      Value* lo = l.clamp_min ? graph.insertConstant(*l.clamp_min) : graph.insertConstant(c10::IValue());
      Value* hi = l.clamp_max ? graph.insertConstant(*l.clamp_max) : graph.insertConstant(c10::IValue());
      Value* x = conv1d ? emit(graph, torch::jit::aten::unsqueeze, {ins[0], graph.insertConstant(int64_t{2})}) : ins[0];
      Value* bias = l.bias();
      const auto mean = input_means.find({l.inputs()[0], l.input_channel_dim()});
      if (mean != input_means.end()) {
        if (Value* corrected = corrected_bias(root, graph, l, attr, mean->second)) bias = corrected;
      }
      yq = emit(graph, c10::Symbol::fromQualString(op), {x, ins[1], ins[2], packed, bias, so, zo, relu, lo, hi});
      if (conv1d) yq = emit(graph, torch::jit::aten::squeeze, {yq, graph.insertConstant(int64_t{2})});
      quantized_weights.push_back(*l.weight);
    }
    Value* y = emit(graph, kDequantize, {yq, so, zo});
    if (probe) insert_probe(graph, y, l.name);
    qp[y] = out;  // later layers read y now, with the same qparams
    l.output()->replaceAllUsesWith(y);
    if (l.activation) {
      l.activation->destroy();
      l.node->output()->replaceAllUsesWith(yq);  // shape checks left on the pre-activation value
    }
    l.node->destroy();
    row.status = "int8";
    row.scale = out.scale;
    row.zero_point = out.zero_point;
    rows.push_back(row);
  }
  drop_redundant_fake_quantize(root, graph);  // first: the pairs' pass then sees (and redirects) what read them
  drop_requantize_pairs(root, graph);
  if (check_finite) guard_boundaries(graph);
  for (AttrRef& ref : quantized_weights) release_if_unread(root, ref);
  report_float_ops(graph, kept_float, rows);
  return rows;
}

}  // namespace qext::passes
