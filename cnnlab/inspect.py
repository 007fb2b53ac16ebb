"""Graph statistics of any model: the seed's graph questions answered for a PyTorch graph.

The network is traced with torch.fx inside a small wrapper that normalizes [0,1] images, runs the
net and applies softmax, so the graph has one image input and a softmax node whose input is the
logits node (as in the seed's TensorFlow graph: images:0 -> ... -> logits -> prob). Besides node
and op counts it reports parameters, per-layer output shapes and MACs, and the receptive field of
each feature stage, computed analytically through the graph (kernel, stride, dilation of every
convolution and pooling, strided slicing, global pooling).
"""
from __future__ import annotations

import math
import operator
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import CnnlabError


@dataclass
class LayerInfo:
    """One computing node of the graph: what it is, its output shape (batch 1), params and MACs."""

    name: str
    op: str
    target: str
    shape: list[int] | None
    params: int = 0
    macs: int = 0


@dataclass
class StageInfo:
    """A feature stage (the model's named feature layer) with its output shape and receptive field."""

    name: str
    shape: list[int]
    receptive_field: list[int]  # (height, width) in input pixels
    stride: list[int]           # input pixels between neighbouring units (the "jump")


@dataclass
class GraphReport:
    """Answers about a model's graph; `to_dict()` gives the JSON of `cnnlab inspect --json`."""

    model: str
    input_size: list[int]
    nodes: int
    op_counts: dict[str, int]
    placeholders: int
    placeholder_names: list[str]
    max_fan_in: dict[str, Any]
    logits_node: str
    logits_target: str
    output_node: str
    params: int
    trainable_params: int
    macs: int
    layers: list[LayerInfo] = field(default_factory=list)
    stages: list[StageInfo] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """A short human-readable account (what `cnnlab inspect` prints)."""
        h, w = self.input_size
        lines = [
            f"model {self.model}, input 1x3x{h}x{w}",
            f"graph nodes: {self.nodes}; graph inputs (placeholders): {self.placeholders} "
            f"({', '.join(self.placeholder_names)})",
            f"node with most inputs: {self.max_fan_in['node']} ({self.max_fan_in['op']}) with "
            f"{self.max_fan_in['inputs']} inputs",
            f"logits node feeding the softmax ({self.output_node}): {self.logits_node} ({self.logits_target})",
            f"parameters: {self.params:,} ({self.trainable_params:,} trainable); "
            f"MACs per image: {self.macs:,} ({self.macs / 1e9:.3f} G)",
            "op counts: " + ", ".join(f"{k} {v}" for k, v in sorted(self.op_counts.items(), key=lambda kv: -kv[1])),
        ]
        if self.stages:
            lines.append(f"{'stage':<14}{'output shape':<22}{'receptive field':<18}stride")
            for s in self.stages:
                lines.append(f"{s.name:<14}{'x'.join(map(str, s.shape)):<22}"
                             f"{'x'.join(map(str, s.receptive_field)):<18}{'x'.join(map(str, s.stride))}")
        return "\n".join(lines)


class _Graph(nn.Module):
    """[0,1] image -> normalize -> net -> softmax, the shape of the seed's graph (images -> prob)."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.net((images - self.mean) / self.std)
        if isinstance(logits, (tuple, list)):  # aux heads: keep the main logits
            logits = logits[0]
        return torch.softmax(logits, dim=1)


def _tracer():
    import torch.fx as fx

    from .models.layers import Conv2dSame

    class Tracer(fx.Tracer):
        """Keeps torch.nn layers and Conv2dSame (TF 'SAME' padding computed per input) as leaves."""

        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, Conv2dSame) or super().is_leaf_module(m, qualname)

    return Tracer()


def trace(model: nn.Module):
    """The torch.fx GraphModule of `model` (a Classifier or any nn.Module), wrapped with a softmax."""
    import torch.fx as fx
    net, mean, std = _parts(model)
    root = _Graph(net, mean, std).eval()
    try:
        graph = _tracer().trace(root)
    except Exception as e:  # noqa: BLE001 - data-dependent control flow and the like
        raise CnnlabError(f"Model '{_model_name(model)}' cannot be traced by torch.fx "
                          f"({type(e).__name__}: {str(e).splitlines()[0][:150]}).") from None
    return fx.GraphModule(root, graph)


def _parts(model: nn.Module) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    from .models.classifier import Classifier
    if isinstance(model, Classifier):
        return model.net, model.mean, model.std
    return model, torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)


def _model_name(model: nn.Module) -> str:
    return getattr(model, "name", None) or type(model).__name__


def _op_type(node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return type(modules[node.target]).__name__
    if node.op in ("call_function", "call_method"):
        t = node.target
        return t if isinstance(t, str) else getattr(t, "__name__", str(t))
    return node.op  # placeholder, get_attr, output


def _target(node) -> str:
    t = node.target
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


def _shape(node) -> list[int] | None:
    tm = node.meta.get("tensor_meta")
    return list(tm.shape) if tm is not None and hasattr(tm, "shape") else None


def _macs_of(module: nn.Module, out_shape: list[int] | None) -> int:
    """Multiply-accumulates of a conv/linear layer for one image, from its output shape."""
    if out_shape is None:
        return 0
    if isinstance(module, nn.modules.conv._ConvNd):
        per_out = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return int(math.prod(out_shape[1:]) * per_out)
    if isinstance(module, nn.Linear):
        return int(math.prod(out_shape[1:]) * module.in_features)
    return 0


def count_macs(model: nn.Module, input_size: tuple[int, int]) -> int:
    """MACs for one image, counted by torch's FLOP counter (convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode
    x = torch.rand(1, 3, *input_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops() // 2)


# -- receptive fields ------------------------------------------------------------------------------
def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if not isinstance(v, (tuple, list)) else (int(v[0]), int(v[-1]))


def _window(node, modules: dict[str, nn.Module]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """(kernel, stride, dilation) of a sliding-window node, or None if it is not one."""
    import torch.nn.functional as F
    if node.op == "call_module":
        m = modules[node.target]
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            dil = getattr(m, "dilation", 1)
            stride = m.stride if m.stride is not None else m.kernel_size
            return _pair(m.kernel_size), _pair(stride), _pair(dil)
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            return _adaptive_window(node)
        return None
    if node.op == "call_function":
        t = node.target
        if t in (F.conv2d, torch.conv2d):
            w = node.args[1] if len(node.args) > 1 else node.kwargs["weight"]
            ks = _shape(w)[-2:] if _shape(w) else (1, 1)
            stride = node.args[3] if len(node.args) > 3 else node.kwargs.get("stride", 1)
            dil = node.args[5] if len(node.args) > 5 else node.kwargs.get("dilation", 1)
            return _pair(ks), _pair(stride), _pair(dil)
        if t in (F.max_pool2d, F.avg_pool2d, torch.max_pool2d, F.max_pool2d_with_indices):
            k = node.args[1] if len(node.args) > 1 else node.kwargs["kernel_size"]
            stride = node.args[2] if len(node.args) > 2 else node.kwargs.get("stride")
            return _pair(k), _pair(stride or k), (1, 1)
        if t in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            return _adaptive_window(node)
    return None


def _adaptive_window(node):
    src = node.all_input_nodes[0]
    sin, sout = _shape(src), _shape(node)
    if not sin or not sout or len(sin) != 4:
        return None
    k = tuple(math.ceil(i / o) for i, o in zip(sin[-2:], sout[-2:]))
    s = tuple(max(1, i // o) for i, o in zip(sin[-2:], sout[-2:]))
    return k, s, (1, 1)


def _slice_steps(node) -> tuple[int, int]:
    """Steps of a strided slice x[:, :, ::a, ::b] on the spatial dims (1, 1 when none)."""
    if node.op == "call_function" and node.target is operator.getitem and len(node.args) > 1:
        idx = node.args[1]
        if isinstance(idx, tuple) and len(idx) >= 4:
            steps = [s.step if isinstance(s, slice) and s.step else 1 for s in idx[2:4]]
            return int(steps[0]), int(steps[1])
    return 1, 1


def receptive_fields(gm, modules: dict[str, nn.Module]) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    """For every node: ((rf_h, rf_w), (jump_h, jump_w)) in input pixels, propagated through the graph.

    A window of kernel k, stride s, dilation d grows the field by (k-1)*d*jump and multiplies the jump
    by s; a strided slice multiplies the jump; anything else (add, cat, activation, BN, reshapes such
    as channel shuffles) takes the largest field of its inputs. Global-context branches (a 1x1 map
    broadcast onto a larger one, as in squeeze-excite) are not counted: they see the whole image.
    """
    rf: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            rf[node.name] = ((1, 1), (1, 1))
            continue
        srcs = [n for n in node.all_input_nodes if n.name in rf]
        # a 1x1 map broadcast onto a larger one (squeeze-excite's gate, global context) is left out:
        # it sees the whole image, and counting it would make every later field "everything"
        main = [n for n in srcs if not _broadcast_onto(n, node)] or srcs
        ins = [rf[n.name] for n in main]
        if not ins:
            continue
        field_in = tuple(max(r[0][i] for r in ins) for i in range(2))
        jump_in = tuple(max(r[1][i] for r in ins) for i in range(2))
        win = _window(node, modules)
        if win is not None:
            (k, s, d) = win
            field_out = tuple(field_in[i] + (k[i] - 1) * d[i] * jump_in[i] for i in range(2))
            jump_out = tuple(jump_in[i] * s[i] for i in range(2))
        else:
            steps = _slice_steps(node)
            field_out, jump_out = field_in, tuple(jump_in[i] * steps[i] for i in range(2))
        rf[node.name] = (field_out, jump_out)
    return rf


def _broadcast_onto(src, node) -> bool:
    """True when `src` is a spatial 1x1 map and `node`'s output is a larger map."""
    a, b = _shape(src), _shape(node)
    return (a is not None and b is not None and len(a) == 4 and len(b) == 4
            and a[2] * a[3] == 1 and b[2] * b[3] > 1)


# -- the report ------------------------------------------------------------------------------------
def inspect_model(model: nn.Module, input_size: tuple[int, int] | None = None) -> GraphReport:
    """Trace `model` (a Classifier or any nn.Module taking [N,3,H,W]) and answer the graph questions.

    input_size: (H, W) for shapes, MACs and receptive fields; default the classifier's input size
    (224x224 for a plain module).
    """
    from torch.fx.passes.shape_prop import ShapeProp

    if input_size is None:
        input_size = tuple(getattr(model, "input_size", (224, 224)))
    input_size = (int(input_size[0]), int(input_size[1]))
    if min(input_size) < 1:
        raise CnnlabError(f"Input size {input_size[0]}x{input_size[1]} is not a valid image size.")
    from torch.utils.flop_counter import FlopCounterMode
    gm = trace(model)
    was_training = model.training
    model.eval()
    try:  # one forward pass gives the shapes of every node and the FLOPs of the whole graph
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            ShapeProp(gm).propagate(torch.rand(1, 3, *input_size))
    except Exception as e:  # noqa: BLE001 - e.g. an input too small for the network's pooling
        raise CnnlabError(f"Model '{_model_name(model)}' cannot run on a {input_size[0]}x{input_size[1]} input "
                          f"({str(e).splitlines()[0][:150]}); try another --input-size.") from None
    finally:
        model.train(was_training)
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)

    ops = Counter(_op_type(n, modules) for n in nodes)
    placeholders = [n.name for n in nodes if n.op == "placeholder"]
    fan = max((n for n in nodes if n.op != "output"), key=lambda n: len(n.all_input_nodes))
    softmax = [n for n in nodes if n.op == "call_function" and n.target is torch.softmax]
    logits = softmax[-1].all_input_nodes[0]

    layers = []
    for n in nodes:
        if n.op not in ("call_module", "call_function", "call_method"):
            continue
        m = modules.get(n.target) if n.op == "call_module" else None
        layers.append(LayerInfo(
            name=n.name, op=_op_type(n, modules), target=_strip(_target(n)), shape=_shape(n),
            params=sum(p.numel() for p in m.parameters()) if m is not None else 0,
            macs=_macs_of(m, _shape(n)) if m is not None else 0))

    return GraphReport(
        model=_model_name(model), input_size=list(input_size), nodes=len(nodes), op_counts=dict(ops),
        placeholders=len(placeholders), placeholder_names=placeholders,
        max_fan_in={"node": fan.name, "op": _op_type(fan, modules), "inputs": len(fan.all_input_nodes)},
        logits_node=logits.name, logits_target=_strip(_target(logits)), output_node=softmax[-1].name,
        params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        macs=int(counter.get_total_flops() // 2), layers=layers,
        stages=_stages(model, gm, nodes, modules))


def _strip(target: str) -> str:
    return target[4:] if target.startswith("net.") else target


def _stages(model: nn.Module, gm, nodes, modules) -> list[StageInfo]:
    """Output shape and receptive field of each named feature layer (the last node inside it)."""
    from .models.classifier import Classifier
    layer_names = list(model.layers()) if isinstance(model, Classifier) else [  # a plain module: its conv children
        n for n, m in model.named_children() if any(isinstance(x, nn.Conv2d) for x in m.modules())]
    rf = receptive_fields(gm, modules)
    out = []
    for name in layer_names:
        path = "net." + name  # the traced wrapper holds the network as `net`
        inside = [n for n in nodes if n.name in rf and (
            (n.op == "call_module" and (n.target == path or n.target.startswith(path + "."))) or
            any(v[0] == path for v in (n.meta.get("nn_module_stack") or {}).values()))]
        if not inside:
            continue
        last = inside[-1]
        (field_hw, jump) = rf[last.name]
        out.append(StageInfo(name, _shape(last), list(field_hw), list(jump)))
    return out
