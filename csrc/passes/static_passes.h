// Static quantization passes over a module's (inlined) method graphs.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "passes/attr_chain.h"
#include "qext/qext.h"

namespace qext::passes {

// Folds eval-mode BatchNorm into the conv/linear before it (weights of the
// clone are replaced); returns how many were folded.
int fold_batch_norms(torch::jit::Module& root, torch::jit::Graph& graph);

// Folds a constant per-output-channel scale multiplying a conv/linear's
// output (a layer scale: `gamma * linear(x)` with gamma [C]; ConvNeXt's
// `layer_scale * linear(x).permute(0, 3, 1, 2)` with layer_scale [C, 1, 1])
// into its weights and bias; returns how many were folded.
int fold_channel_scales(torch::jit::Module& root, torch::jit::Graph& graph);

// Cross-layer equalization (quant/equalization.h) of every pair of
// conv/linear layers where the first's output, through a ReLU or nothing, is
// read only by the second (which may be depthwise or grouped), neither
// excluded nor sharing its weight. Chains (conv -> depthwise -> conv) are
// swept until the scales settle. Returns the number of pairs.
int equalize_layers(torch::jit::Module& root, torch::jit::Graph& graph, const std::vector<std::string>& exclude);

// For bias correction: a qext::observe_channel_sum_ on the input of every
// conv/linear layer that is supported and not excluded (its per-channel sums
// are root attributes). Call after insert_observers.
void insert_channel_sums(torch::jit::Module& root, torch::jit::Graph& graph, const std::vector<std::string>& exclude);

// Removes the observe_channel_sum_ nodes, returning the per-channel means of
// what each saw, keyed by (value, channel dimension); nothing for a value
// calibration never reached.
std::map<std::pair<torch::jit::Value*, int64_t>, at::Tensor> take_channel_means(const torch::jit::Module& root,
                                                                                 torch::jit::Graph& graph);

// The number of prim::GetAttr nodes in graph reading ref (1 for an unshared weight).
int weight_reads(const torch::jit::Module& root, torch::jit::Graph& graph, const AttrRef& ref);
// v's value when it is a tensor constant or attribute.
std::optional<at::Tensor> optional_tensor(const torch::jit::Module& root, torch::jit::Value* v);

// Inserts qext::observe on the inputs and outputs of every static layer that is
// supported and not excluded. Observers become attributes of root.
void insert_observers(torch::jit::Module& root, torch::jit::Graph& graph, const StaticConfig& config);

// Replaces observed layers with int8 ops (quantize/dequantize at the borders,
// removed between int8 layers) and returns the report rows. Weights are
// quantized to weight_bits (2..8) symmetric per channel. With probe, each
// int8 layer's dequantized output is also recorded (qext::_probe, keyed by
// layer name) without changing what the model computes. With check_finite,
// each float -> int8 boundary first checks its input for NaN/Inf
// (qext::check_finite).
std::vector<LayerReport> convert_static_layers(torch::jit::Module& root, torch::jit::Graph& graph,
                                               const std::vector<std::string>& exclude,
                                               int64_t weight_bits, bool check_finite, bool probe = false);

// On a prepared module: drops the observers and records every static layer's
// float output (qext::_probe, keyed by layer name) — the reference for SQNR.
void probe_float_layers(torch::jit::Module& root, torch::jit::Graph& graph);

// Appends qext::_probe(v, key) after v's definition.
void insert_probe(torch::jit::Graph& graph, torch::jit::Value* v, const std::string& key);

}  // namespace qext::passes
