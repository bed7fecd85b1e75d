// The layers static quantization handles, as found in an inlined graph:
// conv2d and linear with a constant weight, and add of two tensors, each with
// an optional ReLU fused after it. Shared by prepare (where to observe) and
// convert (what to rewrite), so both agree by construction.
#pragma once

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <optional>
#include <string>
#include <vector>

#include "passes/attr_chain.h"

namespace qext::passes {

struct ConvGeometry {
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups = 1;
};

// The tensors an aten::cat reads: its list's ListConstruct elements, then the
// values aten::append added to it before the cat, in order (DenseNet's
// `features.append(new)`, unrolled). None when the list is used any other way
// (another mutation, or a use in a loop or branch), since what the cat reads
// is then not known from the graph.
std::optional<std::vector<torch::jit::Value*>> cat_operands(torch::jit::Node* cat);

struct StaticLayer {
  torch::jit::Node* node = nullptr;
  // "conv2d" | "conv1d" | "linear" | "add" | "mul" | "cat", an elementwise
  // function of one input run as a 256-entry uint8 table ("sigmoid",
  // "hardswish", "hardsigmoid", "silu", "gelu", "tanh"), "batch_norm" (an
  // eval BatchNorm not folded into a conv: one such table per channel), or
  // "layer_norm" (qext::layer_norm_int8)
  std::string kind;
  std::string name;                // weight owner for conv/linear, module for batch/layer_norm; "<kind>@<n>" otherwise
  std::optional<AttrRef> weight;   // conv2d / linear
  ConvGeometry conv;               // conv2d; conv1d as a conv2d over [N, C, 1, L]
  // A fused activation after it: relu (any layer), or for conv2d / linear /
  // batch_norm relu6 / hardtanh / clamp with constant bounds (clamp_min / clamp_max).
  torch::jit::Node* activation = nullptr;
  bool relu = false;
  std::optional<double> clamp_min, clamp_max;
  std::string unsupported;         // why it cannot run in int8; empty if it can

  // Float activations it reads (1, or 2 for add) and the value it produces.
  std::vector<torch::jit::Value*> inputs() const;
  torch::jit::Value* output() const { return activation ? activation->output() : node->output(); }
  torch::jit::Value* bias() const { return node->input(2); }  // conv2d / linear
  int64_t input_channel_dim() const { return kind == "linear" ? -1 : 1; }  // conv: NC..., linear: [..., C]
};

// Per-tensor uint8 quantization parameters of an activation.
struct ActivationQParams {
  double scale;
  int64_t zero_point;
};

// The qparams of a qext::fake_quantize node that fixes an activation's range:
// per tensor, range [0, 255], scale and zero point constants or attributes
// (what qext.qat.convert leaves at every point it learned a range for).
// Prepare observes nothing there and convert quantizes with these qparams.
std::optional<ActivationQParams> fixed_qparams(const torch::jit::Module& root, const torch::jit::Node* node);

// Ops whose output keeps their input's (scale, zero point), so int8 flows
// through them: those that only move or select elements (max_pool2d, flatten,
// reshape, view, contiguous, permute; exact on uint8), a ReLU not fused into
// a layer (max(q, zero point), exact) and average pooling (avg_pool2d,
// adaptive_avg_pool2d; one rounding, qext's int8 pooling ops).
bool is_pass_through(const torch::jit::Node* node);
// Their schema names: the one list, which qext.qat.prepare reads too (through
// qext::static_pass_through_ops), so QAT simulates int8 where convert runs it.
const std::vector<std::string>& pass_through_ops();

std::vector<StaticLayer> find_static_layers(const torch::jit::Module& root, torch::jit::Graph& graph);

// True for the kinds run as a uint8 lookup table (qext::lut_u8).
bool is_table_kind(const std::string& kind);
// True for the kinds worth int8 only when their input already is (tables,
// batch_norm, layer_norm): between float ops they would only add a quantize
// and a dequantize, and convert keeps them float.
bool needs_int8_input(const std::string& kind);

// Replaces every read of a `training` attribute that is false (the module is
// in eval mode) by the constant false, so eval dropout is seen as the
// identity and training-only branches fold away; returns how many.
int freeze_training_flags(const torch::jit::Module& root, torch::jit::Graph& graph);

// Replaces each if/else whose condition constant_or_attr can evaluate (e.g.
// `self.padding_mode != "zeros"`) by its taken branch; returns how many.
int inline_known_ifs(const torch::jit::Module& root, torch::jit::Graph& graph);

// A node input that is a constant or a module attribute, as an IValue.
std::optional<c10::IValue> constant_or_attr(const torch::jit::Module& root, torch::jit::Value* v);

}  // namespace qext::passes
