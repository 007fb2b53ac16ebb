"""The penultimate embedding, fast: the net's inference twin (models/fastpath.py:
BatchNorm folded into convolutions, channels_last, a tuned allocator), its graph cut at the head's
input, with activations run in place where nothing else reads their input.

Equals `model.features(x)` to float rounding (~1e-6 relative). Nets that cannot be traced, models on
an Apple GPU and hooked models use `model.features` unchanged.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import fx, nn

if TYPE_CHECKING:
    from ..models.classifier import Classifier


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

    The fast path is the inference twin (models/fastpath.py: BatchNorm folded,
    channels_last, a tuned allocator) cut at the head's input, with activations run in place where
    that is safe. `how` says which path was taken. The caller's model is never modified.
    """
    if not fast or model.head_name is None or model.device.type not in ("cpu", "cuda"):
        return model.features, "plain model.features"
    from ..models.fastpath import has_hooks, state_key, tune_allocator
    tune_allocator()
    if has_hooks(model):
        return model.features, "plain model.features (a module is hooked)"
    key = (state_key(model.net), model.head_name, id(model.mean), model.mean._version, model.std._version)
    cached = _TWINS.get(model)
    if cached is None or cached[0] != key:  # built once per model state: train and test parts share it
        cached = (key, *_build(model))
        _TWINS[model] = cached
    return cached[1] or model.features, cached[2]


#: model -> (state key, feature function or None for model.features, how); entries vanish with their model.
_TWINS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _build(model: "Classifier") -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, str]:
    """The twin's feature function (None: use model.features, which the cache must not hold on to)."""
    from ..models.fastpath import inference_twin
    try:
        body = inference_twin(model.net)
        if not isinstance(body, fx.GraphModule) or not _cut_at_head(body.graph, model.head_name):
            return None, "plain model.features (the net could not be traced)"
        _activations_in_place(body, body.graph)
        body.graph.lint()
        body.recompile()
    except Exception as e:  # noqa: BLE001 — any tracing failure means: use the model as it is
        return None, f"plain model.features (not traceable: {type(e).__name__})"
    mean, std = model.mean, model.std
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in body.modules())

    def features(x: torch.Tensor) -> torch.Tensor:
        return body(((x - mean) / std).contiguous(memory_format=torch.channels_last))

    return features, f"inference twin ({n_bn} BatchNorms left unfolded), in-place activations, channels_last"
