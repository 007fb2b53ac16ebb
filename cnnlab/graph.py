"""Graph statistics of any model: the questions one asks of a classifier's graph, answered on its
PyTorch graph.

How many nodes, of which op types; which nodes are graph inputs (placeholders); which nodes have the
most inputs; which node holds the logits that feed the softmax, and which is the output. Besides these
it reports parameters, per-layer output shapes and MACs, and the receptive field of each feature
stage, computed analytically through the graph (kernel, stride, dilation of every convolution and
pooling, strided slicing, global pooling).

The network is traced with torch.fx inside a small wrapper that normalizes [0,1] images, runs the
net and applies softmax, so the graph reads images -> normalization -> network -> logits -> softmax.
The wrapper's own nodes (the normalization, the softmax) count as graph nodes but never answer a
question about the network (such as the node with the most inputs). `GraphReport` holds nothing
specific to torch.fx: a graph read from another format fills the same report.
"""
from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import fx, nn

from .errors import CnnlabError
from .models.classifier import Classifier
from .models.wrap import as_classifier
from .results import Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: How many tied nodes `GraphReport.summary` names before it says "and N more".
SHOWN_TIES = 6


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
class NodeRef:
    """A node of the graph by name, with its op type."""

    node: str
    op: str


@dataclass
class FanIn:
    """The largest number of inputs any node of the network takes, and every node that takes that many."""

    inputs: int
    nodes: list[NodeRef]


def most_inputs(nodes: Iterable[tuple[str, str, int]]) -> FanIn:
    """(name, op, number of inputs) of each node of the network -> the largest count and all its nodes,
    in graph order (ties are all reported: no node is more "the" answer than another)."""
    nodes = list(nodes)
    top = max((n for _, _, n in nodes), default=0)
    return FanIn(top, [NodeRef(name, op) for name, op, n in nodes if n == top])


@dataclass(repr=False)
class GraphReport(Result):
    """Answers about a model's graph; `to_dict()` gives the JSON of `cnnlab inspect --json`."""

    model: str
    input_size: list[int]
    nodes: int
    op_counts: dict[str, int]
    placeholders: int
    placeholder_names: list[str]
    max_fan_in: FanIn
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

    def summary_rows(self) -> list[tuple[str, object]]:
        h, w = self.input_size
        return [("model", self.model), ("input", f"1x3x{h}x{w}"), ("params", f"{self.params:,}"),
                ("macs", f"{self.macs / 1e6:,.1f} M"), ("nodes", self.nodes), ("logits_node", self.logits_node),
                ("max_fan_in", self.max_fan_in.inputs)]

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """The most frequent operations, and each stage's receptive field (when the graph has stages)."""
        from .figures import bars_figure, finish
        ops = sorted(self.op_counts.items(), key=lambda kv: -kv[1])[:10]
        panels = [(f"{self.model}: operations", [k for k, _ in ops], [float(v) for _, v in ops])]
        if self.stages:
            panels.append(("receptive field (px)", [s.name for s in self.stages],
                           [float(max(s.receptive_field)) for s in self.stages]))
        return finish(bars_figure(panels, percent=False), path)

    def summary(self) -> str:
        """A short human-readable account (what `cnnlab inspect` prints)."""
        h, w = self.input_size
        lines = [
            f"model {self.model}, input 1x3x{h}x{w}",
            (f"graph nodes: {self.nodes}; graph inputs (placeholders): {self.placeholders} "
             f"({', '.join(self.placeholder_names)})"),
            self._fan_in_line(),
            f"logits node feeding the softmax ({self.output_node}): {self.logits_node} ({self.logits_target})",
            (f"parameters: {self.params:,} ({self.trainable_params:,} trainable); "
             f"MACs per image: {self.macs:,} ({self.macs / 1e9:.3f} G)"),
            "op counts: " + ", ".join(f"{k} {v}" for k, v in sorted(self.op_counts.items(), key=lambda kv: -kv[1])),
        ]
        if self.stages:
            lines.append(f"{'stage':<14}{'output shape':<22}{'receptive field':<18}stride")
            for s in self.stages:
                lines.append(f"{s.name:<14}{'x'.join(map(str, s.shape)):<22}"
                             f"{'x'.join(map(str, s.receptive_field)):<18}{'x'.join(map(str, s.stride))}")
        return "\n".join(lines)

    def layer_table(self) -> str:
        """Every computing node with its op, output shape (batch 1), parameters and MACs."""
        lines = [f"{'node':<34}{'op':<20}{'output shape':<20}{'params':>10}{'MACs':>14}"]
        for layer in self.layers:
            shape = "x".join(map(str, layer.shape)) if layer.shape else "-"
            lines.append(f"{layer.name:<34}{layer.op:<20}{shape:<20}{layer.params:>10,}{layer.macs:>14,}")
        return "\n".join(lines)

    def _fan_in_line(self) -> str:
        fan = self.max_fan_in
        if not fan.nodes:
            return "node with the most inputs: none (the network has no nodes of its own)"
        named = ", ".join(r.node if r.node.rstrip("_0123456789") == r.op else f"{r.node} ({r.op})"
                          for r in fan.nodes[:SHOWN_TIES])
        if len(fan.nodes) == 1:
            return f"node with the most inputs: {named}, {fan.inputs} inputs"
        more = f" and {len(fan.nodes) - SHOWN_TIES} more" if len(fan.nodes) > SHOWN_TIES else ""
        return f"nodes with the most inputs, {fan.inputs} each ({len(fan.nodes)} tied): {named}{more}"


class _Graph(nn.Module):
    """[0,1] images -> normalize -> net -> softmax: one image input, and a softmax fed by the logits."""

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


def _tracer() -> fx.Tracer:
    from .models.layers import Conv2dSame

    class Tracer(fx.Tracer):
        """Keeps torch.nn layers and Conv2dSame (TF 'SAME' padding computed per input) as leaves."""

        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, Conv2dSame) or super().is_leaf_module(m, qualname)

    return Tracer()


def trace(model: Classifier | nn.Module) -> fx.GraphModule:
    """The torch.fx GraphModule of `model` (a bare module is wrapped first), with its normalization in
    front and a softmax behind. Tracing runs nothing; the model's mode is left as it was."""
    clf = as_classifier(model)
    root = _Graph(clf.net, clf.mean, clf.std)
    with clf.frozen():
        try:
            graph = _tracer().trace(root)
        except Exception as e:  # noqa: BLE001 - data-dependent control flow and the like
            raise CnnlabError(f"Model '{clf.name}' cannot be traced by torch.fx "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:150]}).") from None
    return fx.GraphModule(root, graph)


def _in_network(node: fx.Node) -> bool:
    """True for the network's own nodes; False for the wrapper's input, normalization, softmax, output."""
    if node.op == "call_module":
        return node.target.startswith("net.")
    return any(path == "net" for path, _ in (node.meta.get("nn_module_stack") or {}).values())


def _op_type(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return type(modules[node.target]).__name__
    if node.op in ("call_function", "call_method"):
        t = node.target
        return t if isinstance(t, str) else getattr(t, "__name__", str(t))
    return node.op  # placeholder, get_attr, output


def _target(node: fx.Node) -> str:
    t = node.target
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


def _shape(node: fx.Node) -> list[int] | None:
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


def count_macs(model: Classifier | nn.Module, input_size: tuple[int, int]) -> int:
    """MACs for one image, counted by torch's FLOP counter (convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode
    clf = as_classifier(model)
    with clf.frozen(), torch.no_grad(), FlopCounterMode(display=False) as counter:
        clf(torch.rand(1, 3, *input_size, device=clf.device))
    return int(counter.get_total_flops() // 2)


# -- receptive fields ------------------------------------------------------------------------------
def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if not isinstance(v, (tuple, list)) else (int(v[0]), int(v[-1]))


def _window(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
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


def _adaptive_window(node: fx.Node) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    src = node.all_input_nodes[0]
    sin, sout = _shape(src), _shape(node)
    if not sin or not sout or len(sin) != 4:
        return None
    k = tuple(math.ceil(i / o) for i, o in zip(sin[-2:], sout[-2:]))
    s = tuple(max(1, i // o) for i, o in zip(sin[-2:], sout[-2:]))
    return k, s, (1, 1)


def _slice_steps(node: fx.Node) -> tuple[int, int]:
    """Steps of a strided slice x[:, :, ::a, ::b] on the spatial dims (1, 1 when none)."""
    if node.op == "call_function" and node.target is operator.getitem and len(node.args) > 1:
        idx = node.args[1]
        if isinstance(idx, tuple) and len(idx) >= 4:
            steps = [s.step if isinstance(s, slice) and s.step else 1 for s in idx[2:4]]
            return int(steps[0]), int(steps[1])
    return 1, 1


def receptive_fields(gm: fx.GraphModule, modules: dict[str, nn.Module]) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
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


def _broadcast_onto(src: fx.Node, node: fx.Node) -> bool:
    """True when `src` is a spatial 1x1 map and `node`'s output is a larger map."""
    a, b = _shape(src), _shape(node)
    return (a is not None and b is not None and len(a) == 4 and len(b) == 4
            and a[2] * a[3] == 1 and b[2] * b[3] > 1)


# -- the report ------------------------------------------------------------------------------------
def inspect_model(model: Classifier | nn.Module, input_size: tuple[int, int] | None = None) -> GraphReport:
    """Trace `model` (a Classifier, or any nn.Module taking [N,3,H,W], wrapped with `as_classifier`) and
    answer the graph questions.

    input_size: (H, W) for shapes, MACs and receptive fields; default the classifier's input size.
    """
    from torch.fx.passes.shape_prop import ShapeProp
    from torch.utils.flop_counter import FlopCounterMode

    clf = as_classifier(model)
    h, w = (int(input_size[0]), int(input_size[1])) if input_size is not None else clf.input_size
    if min(h, w) < 1:
        raise CnnlabError(f"Input size {h}x{w} is not a valid image size.")
    gm = trace(clf)
    with clf.frozen():  # one forward pass gives the shapes of every node and the FLOPs of the whole graph
        try:
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                ShapeProp(gm).propagate(torch.rand(1, 3, h, w, device=clf.device))
        except Exception as e:  # noqa: BLE001 - e.g. an input too small for the network's pooling
            raise CnnlabError(f"Model '{clf.name}' cannot run on a {h}x{w} input "
                              f"({str(e).splitlines()[0][:150]}); try another --input-size.") from None
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)

    ops = Counter(_op_type(n, modules) for n in nodes)
    placeholders = [n.name for n in nodes if n.op == "placeholder"]
    fan = most_inputs((n.name, _op_type(n, modules), len(n.all_input_nodes)) for n in nodes if _in_network(n))
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
        model=clf.name, input_size=[h, w], nodes=len(nodes), op_counts=dict(ops),
        placeholders=len(placeholders), placeholder_names=placeholders, max_fan_in=fan,
        logits_node=logits.name, logits_target=_strip(_target(logits)), output_node=softmax[-1].name,
        params=sum(p.numel() for p in clf.parameters()),
        trainable_params=sum(p.numel() for p in clf.parameters() if p.requires_grad),
        macs=int(counter.get_total_flops() // 2), layers=layers,
        stages=_stages(clf, gm, nodes, modules))


def _strip(target: str) -> str:
    return target.removeprefix("net.")


def _stages(clf: Classifier, gm: fx.GraphModule, nodes: list[fx.Node], modules: dict[str, nn.Module]
            ) -> list[StageInfo]:
    """Output shape and receptive field of each named feature layer (the last node inside it)."""
    rf = receptive_fields(gm, modules)
    out = []
    for name in clf.layers():
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
