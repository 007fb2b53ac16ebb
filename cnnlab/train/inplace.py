"""In-place activations while training, only where the traced graph shows they change nothing else.

The Classifier keeps activations out of place so that hooks (feature maps, Grad-CAM, guided
backprop) work. A training step has no hooks, and overwriting a ReLU's input instead of allocating
its output saves a full read/write pass over every activation: ResNet-20's step is ~5% faster.
"""
from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator

import torch
from torch import nn

#: Layers whose backward reads their input, never their output: their output may be overwritten.
_PRODUCER_MODULES = (nn.modules.batchnorm._BatchNorm, nn.modules.conv._ConvNd, nn.Linear)
_PRODUCER_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)


def safe_inplace_activations(net: nn.Module) -> list[nn.Module]:
    """The activation modules of `net` that may overwrite their input at every place they are called.

    Safe means: the input is made by a BatchNorm, convolution, linear layer or addition, and nothing
    else reads it (a ReLU applied to a block's input that also feeds the shortcut is not safe).
    A model torch.fx cannot trace gets none.
    """
    try:
        gm = torch.fx.symbolic_trace(net)
    except Exception:  # noqa: BLE001 - any tracing failure (control flow, unsupported ops) means: leave it alone
        return []
    modules = dict(gm.named_modules())
    safe: dict[int, nn.Module] = {}
    unsafe: set[int] = set()
    for node in gm.graph.nodes:
        mod = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(mod, _ACTIVATIONS):
            continue
        src = node.args[0] if node.args else None
        if isinstance(src, torch.fx.Node) and len(src.users) == 1 and _overwritable(src, modules):
            safe[id(mod)] = mod
        else:
            unsafe.add(id(mod))
    return [m for k, m in safe.items() if k not in unsafe]


def _overwritable(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(node.target), _PRODUCER_MODULES)
    if node.op == "call_function":
        return node.target in _PRODUCER_FUNCTIONS
    return node.op == "call_method" and node.target in ("add", "add_")


@contextlib.contextmanager
def inplace_activations(net: nn.Module) -> Iterator[int]:
    """Within the block, the safe activations of `net` work in place (none if it has hooks); yields how many."""
    from ..models.fastpath import has_hooks
    mods = [] if has_hooks(net, backward=True) else [m for m in safe_inplace_activations(net) if not m.inplace]
    for m in mods:
        m.inplace = True
    try:
        yield len(mods)
    finally:
        for m in mods:
            m.inplace = False
