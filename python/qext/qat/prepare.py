"""qext.qat.prepare: a copy of the model, traced with torch.fx, with
fake-quantized weights and fake-quant on the activations at the points static
convert quantizes: the model inputs that reach a conv/linear/add, the output
of every conv/linear (after its ReLU / ReLU6 / Hardtanh / clamp, which convert
fuses) and of every add (after its ReLU)."""

from __future__ import annotations

import copy
import operator
import warnings

import torch
import torch.nn.functional as F
from torch import fx, nn

from .. import _C
from .config import QatConfig
from .fake_quant import ActivationFakeQuantize, GlobalPoolFakeQuantize
from .modules import QatConv2d, QatConvBn2d, QatLinear

PREPARED_MARK = "_qext_qat_config"
FLOAT_LAYERS = "_qext_qat_float_layers"  # trained in float, so convert keeps them float
# Activations convert fuses into the conv/linear before them (ReLU also after adds).
_RELU_FUNCTIONS = (F.relu, torch.relu)
_CLAMP_FUNCTIONS = (F.relu6, F.hardtanh, torch.clamp)
_CLAMP_MODULES = (nn.ReLU6, nn.Hardtanh)
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
# The aten op each fx node of a pass-through kind lowers to: whether int8
# flows through it (with its input's range) is decided by the C++ table that
# convert uses (qext::static_pass_through_ops), not here.
_ATEN_OF_FUNCTION = {F.max_pool2d: "aten::max_pool2d", F.avg_pool2d: "aten::avg_pool2d",
                     F.adaptive_avg_pool2d: "aten::adaptive_avg_pool2d", torch.flatten: "aten::flatten",
                     torch.reshape: "aten::reshape", torch.permute: "aten::permute"}
_ATEN_OF_MODULE = ((nn.MaxPool2d, "aten::max_pool2d"), (nn.AvgPool2d, "aten::avg_pool2d"),
                   (nn.AdaptiveAvgPool2d, "aten::adaptive_avg_pool2d"), (nn.Flatten, "aten::flatten"))
# Averaging rounds onto the input's grid: global average pools are simulated
# exactly (GlobalPoolFakeQuantize); other averages get a range of their own
# here, and convert then keeps them float (between two fake-quants).
_AVERAGING = frozenset({"aten::avg_pool2d", "aten::adaptive_avg_pool2d"})
_PASS_THROUGH = frozenset(_C.static_pass_through_ops()) - _AVERAGING
# (A ReLU that no layer fuses is a pass-through too: handled by _is_relu.)


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def _is_relu(gm: fx.GraphModule, node: fx.Node) -> bool:
    return (
        (node.op == "call_module" and isinstance(_module(gm, node), nn.ReLU))
        or (node.op == "call_function" and node.target in _RELU_FUNCTIONS)
        or (node.op == "call_method" and node.target == "relu")
    )


def _is_fused_activation(gm: fx.GraphModule, node: fx.Node, layer: fx.Node) -> bool:
    if _is_relu(gm, node):
        return True
    if _is_add(layer):
        return False
    return (node.op == "call_module" and isinstance(_module(gm, node), _CLAMP_MODULES)) or (
        node.op == "call_function" and node.target in _CLAMP_FUNCTIONS
    )


def _aten_name(gm: fx.GraphModule, node: fx.Node) -> str | None:
    if node.op == "call_function":
        return _ATEN_OF_FUNCTION.get(node.target)
    if node.op == "call_method":
        return f"aten::{node.target}"
    module = _module(gm, node)
    return next((name for cls, name in _ATEN_OF_MODULE if isinstance(module, cls)), None)


def _is_pass_through(gm: fx.GraphModule, node: fx.Node) -> bool:
    return _is_relu(gm, node) or _aten_name(gm, node) in _PASS_THROUGH


def _is_add(node: fx.Node) -> bool:
    is_add = (node.op == "call_function" and node.target in _ADD_FUNCTIONS) or (
        node.op == "call_method" and node.target in ("add", "add_")
    )
    return is_add and len(node.args) == 2 and all(isinstance(a, fx.Node) for a in node.args) and not node.kwargs


def _is_cat(node: fx.Node) -> bool:
    return (
        node.op == "call_function"
        and node.target is torch.cat
        and isinstance(node.args[0], (list, tuple))
        and all(isinstance(a, fx.Node) for a in node.args[0])
    )


def _tensor_inputs(node: fx.Node) -> list[fx.Node]:
    """The activations a layer reads: the first argument, both of an add, every tensor of a cat."""
    if _is_cat(node):
        return list(node.args[0])
    return [a for a in node.args if isinstance(a, fx.Node)][: 2 if _is_add(node) else 1]


def _replace_module(gm: fx.GraphModule, target: str, new: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, name, new)


def _swap_layers(gm: fx.GraphModule, config: QatConfig) -> list[fx.Node]:
    """Conv2d(+BatchNorm2d) and Linear modules -> their QAT versions; returns the layer nodes."""
    layers, erased = [], set()
    for node in list(gm.graph.nodes):
        if node in erased:
            continue
        module = _module(gm, node)
        if isinstance(module, nn.Conv2d) and type(module) is nn.Conv2d:
            users = list(node.users)
            bn = _module(gm, users[0]) if len(users) == 1 else None
            if isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                qat = QatConvBn2d(module, bn, config.weight_bits)
                qat.steps_until_bn_frozen = config.freeze_batch_norm_after
                users[0].replace_all_uses_with(node)
                gm.graph.erase_node(users[0])
                erased.add(users[0])
                if not any(n.op == "call_module" and n.target == users[0].target for n in gm.graph.nodes):
                    gm.delete_submodule(users[0].target)  # it lives on inside the QatConvBn2d
            else:
                qat = QatConv2d(module, config.weight_bits)
            _replace_module(gm, node.target, qat)
            layers.append(node)
        elif isinstance(module, nn.Linear) and type(module) is nn.Linear:
            _replace_module(gm, node.target, QatLinear(module, config.weight_bits))
            layers.append(node)
    return layers


def _float_layers(gm: fx.GraphModule) -> list[str]:
    """Layers with weights that QAT does not simulate (e.g. Conv1d): they train
    and run in float (convert excludes them); a warning names them."""
    handled = (QatConv2d, QatLinear, nn.BatchNorm2d)
    layers = [
        (node.target, type(module).__name__)
        for node in gm.graph.nodes
        if (module := _module(gm, node)) is not None
        and not isinstance(module, handled)
        and any(True for _ in module.parameters(recurse=False))
    ]
    if layers:
        names = ", ".join(f"{name} ({kind})" for name, kind in layers)
        warnings.warn(f"qext.qat.prepare: these layers stay float (no QAT version yet): {names}", stacklevel=3)
    return [name for name, _ in layers]


class _Inserter:
    def __init__(self, gm: fx.GraphModule, config: QatConfig):
        self.gm, self.config, self.count = gm, config, 0

    def fake_quant_after(self, value: fx.Node, only_for: fx.Node | None = None) -> fx.Node:
        name = f"_qext_fq_{self.count}"
        self.count += 1
        fq = ActivationFakeQuantize(self.config.averaging_constant, self.config.learnable_ranges,
                                    range_qmax=(1 << self.config.activation_bits) - 1)
        fq.steps_until_frozen = self.config.freeze_observers_after
        self.gm.add_submodule(name, fq)
        with self.gm.graph.inserting_after(value):
            node = self.gm.graph.call_module(name, (value,))
        if only_for is None:
            value.replace_all_uses_with(node, delete_user_cb=lambda user: user is not node)
        else:
            only_for.replace_input_with(value, node)
        return node


def _is_fake_quant(gm: fx.GraphModule, node: fx.Node) -> bool:
    return isinstance(_module(gm, node), (ActivationFakeQuantize, GlobalPoolFakeQuantize))


def _is_global_average_pool(gm: fx.GraphModule, node: fx.Node) -> bool:
    """adaptive_avg_pool2d to 1 x 1 (function or module) over a 4-D input."""
    if _aten_name(gm, node) != "aten::adaptive_avg_pool2d" or node.op == "call_method":
        return False
    size = _module(gm, node).output_size if node.op == "call_module" else (
        node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size"))
    return size in (1, (1, 1), [1, 1])


def _simulate_global_pools(gm: fx.GraphModule) -> None:
    """Global average pools reading a fake-quantized tensor (through
    pass-through ops) become GlobalPoolFakeQuantize, as convert runs them int8."""
    for node in list(gm.graph.nodes):
        if not _is_global_average_pool(gm, node) or not isinstance(node.args[0], fx.Node):
            continue
        source = node.args[0]
        while _is_pass_through(gm, source) and isinstance(source.args[0], fx.Node):
            source = source.args[0]
        if not isinstance(_module(gm, source), ActivationFakeQuantize):
            continue
        name = f"_qext_pool_{node.name}"
        gm.add_submodule(name, GlobalPoolFakeQuantize(_module(gm, source)))
        with gm.graph.inserting_after(node):
            pooled = gm.graph.call_module(name, (node.args[0],))
        node.replace_all_uses_with(pooled)
        gm.graph.erase_node(node)


def prepare(model: nn.Module, config: QatConfig | None = None) -> fx.GraphModule:
    """A training copy of ``model`` with quantization simulated (``model`` is not changed).

    Conv2d (+ BatchNorm2d, trained fold-aware), Linear and tensor adds become
    what static convert will make int8; fake-quant sits at exactly the tensors
    convert quantizes. Train it as usual, then :func:`qext.qat.convert`.
    The model must be traceable by ``torch.fx`` (no data-dependent control flow).
    """
    config = QatConfig() if config is None else config
    if not isinstance(config, QatConfig):
        raise TypeError(f"qext.qat.prepare: config must be a qext.qat.QatConfig; got {type(config).__name__}")
    config.validate()
    if not isinstance(model, nn.Module) or isinstance(model, torch.jit.ScriptModule):
        raise TypeError(f"qext.qat.prepare: expected a torch.nn.Module (not scripted); got {type(model).__name__}")
    try:
        gm = fx.symbolic_trace(copy.deepcopy(model))
    except Exception as e:  # torch.fx raises many types for untraceable code
        raise ValueError(
            f"qext.qat.prepare: torch.fx cannot trace {type(model).__name__} ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); QAT needs a model without data-dependent control flow"
        ) from None

    layers = _swap_layers(gm, config)
    layers += [n for n in gm.graph.nodes if _is_add(n) or _is_cat(n)]
    if not layers:
        raise ValueError("qext.qat.prepare: the model has no Conv2d, Linear, tensor add or cat to quantize")
    float_layers = _float_layers(gm)
    inserter = _Inserter(gm, config)
    # Outputs first (after a ReLU that is the only reader: convert fuses it) ...
    for node in layers:
        users = list(node.users)
        fusable = len(users) == 1 and not _is_cat(node) and _is_fused_activation(gm, users[0], node)
        out = users[0] if fusable else node
        if not any(_is_fake_quant(gm, u) for u in out.users):
            inserter.fake_quant_after(out)
    _simulate_global_pools(gm)
    # ... then inputs that no fake-quant covers yet (through pass-through ops);
    # layers reading the same tensor share one.
    input_quant: dict[fx.Node, fx.Node] = {}
    for node in layers:
        for arg in _tensor_inputs(node):
            source = arg
            while _is_pass_through(gm, source) and isinstance(source.args[0], fx.Node):
                source = source.args[0]
            if arg in input_quant:
                source = input_quant[arg]
                node.replace_input_with(arg, source)
            elif not _is_fake_quant(gm, source):
                source = input_quant[arg] = inserter.fake_quant_after(arg, only_for=node)
            layer = _module(gm, node)
            if layer is not None:
                layer.set_input_quant(_module(gm, source))
    gm.graph.lint()
    gm.recompile()
    setattr(gm, PREPARED_MARK, config)
    setattr(gm, FLOAT_LAYERS, float_layers)
    return gm.train(model.training)
