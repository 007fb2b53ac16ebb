"""A frozen, inference-only copy of a Classifier's body that returns its penultimate embedding fast.

On CPU a frozen network spends a quarter of its time in BatchNorm and out-of-place activations.
Tracing the net (torch.fx, convolutions and BatchNorms kept as leaves) lets us fold each BatchNorm
into the convolution before it, run activations in place, stop at the head's input, and use
channels_last. The result equals `model.features(x)` to float rounding (~1e-6 relative). Nets that
cannot be traced fall back to `model.features` unchanged.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import fx, nn

if TYPE_CHECKING:
    from ..models.classifier import Classifier


class _LeafTracer(fx.Tracer):
    """Keep every convolution and BatchNorm a single node, even subclasses (e.g. 'SAME'-padded convs)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) or super().is_leaf_module(m, qualname)


def _fold_batchnorms(net: nn.Module, graph: fx.Graph) -> int:
    """Fold each eval-mode BatchNorm2d that alone consumes a Conv2d's output into that conv."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    modules = dict(net.named_modules())
    folded = 0
    for node in list(graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        prev = node.args[0] if node.args else None
        if not (isinstance(prev, fx.Node) and prev.op == "call_module" and len(prev.users) == 1
                and isinstance(modules.get(prev.target), nn.Conv2d)):
            continue
        bn = modules[node.target]
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        fused = fuse_conv_bn_eval(modules[prev.target], bn)
        parent, _, attr = prev.target.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, attr, fused)
        modules[prev.target] = fused
        node.replace_all_uses_with(prev)
        graph.erase_node(node)
        folded += 1
    return folded


def _cut_at_head(graph: fx.Graph, head: str) -> bool:
    """Make the graph return the (flattened) input of the head module instead of the logits."""
    nodes = [n for n in graph.nodes if n.op == "call_module" and n.target == head]
    if len(nodes) != 1:
        return False
    feats = nodes[0].args[0]
    out = next(n for n in graph.nodes if n.op == "output")
    with graph.inserting_before(out):
        flat = graph.call_function(torch.flatten, (feats, 1))
    out.args = (flat,)
    graph.eliminate_dead_code()
    return True


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.SiLU, nn.Hardswish, nn.LeakyReLU, nn.ELU)


def _activations_in_place(net: nn.Module, graph: fx.Graph) -> None:
    """Run an activation module in place where, at every place it is called, its input feeds nothing else."""
    modules = dict(net.named_modules())
    safe: dict[str, bool] = {}
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(modules.get(node.target), _ACTIVATIONS):
            arg = node.args[0] if node.args else None
            ok = isinstance(arg, fx.Node) and arg.op not in ("placeholder", "get_attr") and len(arg.users) == 1
            safe[node.target] = safe.get(node.target, True) and ok
    for name, ok in safe.items():
        if ok:
            modules[name].inplace = True


def feature_function(model: "Classifier", fast: bool = True) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """(f, how): f maps [0,1] images [N,3,H,W] to the penultimate embedding [N,D] in inference mode.

    `how` says which path was taken ('folded N BatchNorms' or why the plain path was used).
    The caller's model is never modified: the fast path works on a copy.
    """
    if not fast or model.head_name is None:
        return model.features, "plain model.features"
    try:
        net = copy.deepcopy(model.net).eval()
        body = fx.GraphModule(net, _LeafTracer().trace(net)).eval()
        graph = body.graph
        if not _cut_at_head(graph, model.head_name):
            return model.features, "plain model.features (head is called more than once)"
        folded = _fold_batchnorms(body, graph)
        graph.lint()
        body.recompile()
    except Exception as e:  # noqa: BLE001 — any tracing failure means: use the model as it is
        return model.features, f"plain model.features (not traceable: {type(e).__name__})"
    _activations_in_place(body, graph)
    body = body.to(memory_format=torch.channels_last)
    mean, std = model.mean, model.std

    def features(x: torch.Tensor) -> torch.Tensor:
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        return body(x)

    return features, f"folded {folded} BatchNorms, in-place activations, channels_last"
