"""Capture named layers' outputs with forward hooks, and run a model the way explanations need it.

Every explanation runs the model in eval mode with its parameters frozen (gradients flow to the
input or to one layer only), and restores both afterwards. Modules called more than once in one
forward (a shared ReLU) are detected: we keep the last call and say so in `notes`.
"""
from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CnnlabError


class _StopForward(Exception):
    """Raised by a hook once every wanted layer has been seen: the rest of the forward is skipped."""


@dataclass
class Captured:
    """Outputs of hooked layers (last call of each) and how often each layer was called."""

    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)

    def notes(self) -> list[str]:
        return [f"layer '{n}' ran {c} times in one forward (a reused module); its last call was used"
                for n, c in self.calls.items() if c > 1]

    def get(self, name: str) -> torch.Tensor:
        if name not in self.outputs:
            raise CnnlabError(f"Layer '{name}' did not run in the model's forward pass; choose a layer "
                              "that produces an output for this input.")
        return self.outputs[name]


def first_tensor(out: object) -> torch.Tensor | None:
    """A module's output as one tensor (the first one for tuple/list outputs)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def resolve_layers(model: nn.Module, names: Sequence[str]) -> list[str]:
    """early/middle/late and module paths -> module paths of the model's net (unknown names: one error)."""
    return [model.resolve_layer_name(n) for n in names]


@contextmanager
def capture(model: nn.Module, names: Sequence[str], *, leaf: bool = False,
            stop_after: bool = False) -> Iterator[Captured]:
    """Hook the named layers of `model.net` while the block runs; yield the Captured outputs.

    leaf: replace each output by a detached leaf that requires grad (Grad-CAM: the gradient is taken at
        the layer, and nothing before the layer needs a graph). stop_after: abort the forward with
        `_StopForward` once every named layer has run (handled by `run_until`).
    """
    got = Captured()
    modules = dict(model.net.named_modules())
    wanted = set(names)

    def make_hook(name: str):
        def hook(module: nn.Module, inp: tuple, out: object):
            t = first_tensor(out)
            if t is None:
                raise CnnlabError(f"Layer '{name}' returns {type(out).__name__}, not a tensor; choose another layer.")
            got.calls[name] += 1
            if leaf:
                if not isinstance(out, torch.Tensor):
                    raise CnnlabError(f"Layer '{name}' returns a tuple; choose a layer that returns one tensor.")
                t = t.detach().requires_grad_(True)
            got.outputs[name] = t
            if stop_after and wanted.issubset(got.outputs):
                raise _StopForward
            return t if leaf else None
        return hook

    handles = [modules[n].register_forward_hook(make_hook(n)) for n in dict.fromkeys(names)]
    try:
        yield got
    finally:
        for h in handles:
            h.remove()


_REUSED: "weakref.WeakKeyDictionary[nn.Module, set[str]]" = weakref.WeakKeyDictionary()


def reused_modules(model: nn.Module, x: torch.Tensor) -> set[str]:
    """Names of modules that run more than once in one forward (found once per model, then cached)."""
    if model not in _REUSED:
        counts: Counter = Counter()
        handles = [m.register_forward_hook(lambda mod, i, o, n=n: counts.update([n]))
                   for n, m in model.net.named_modules() if n]
        try:
            with torch.no_grad():
                model(x[:1])
        finally:
            for h in handles:
                h.remove()
        _REUSED[model] = {n for n, c in counts.items() if c > 1}
    return _REUSED[model]


def run_until(model: nn.Module, x: torch.Tensor, names: Sequence[str]) -> Captured:
    """Forward `x` only as far as needed to capture the named layers (the head is skipped), unless one
    of them is a reused module, whose last call is only known at the end of the forward."""
    stop = not (set(names) & reused_modules(model, x))
    with capture(model, names, stop_after=stop) as got:
        try:
            model(x)
        except _StopForward:
            pass
    return got


@contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode with parameters that need no gradient, restored afterwards (BN/dropout stay fixed,
    and autograd builds only the graph the explanation needs)."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in flags:
            p.requires_grad_(f)
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    for t in model.buffers():
        return t.device
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def as_batch(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """[3,H,W] or [N,3,H,W] float images in [0,1] -> [N,3,H,W] on the model's device."""
    if not isinstance(x, torch.Tensor):
        raise CnnlabError(f"Images must be a float tensor [N,3,H,W] in [0,1]; got {type(x).__name__} "
                          "(use cnnlab.load_images to read files).")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != 3:
        raise CnnlabError(f"Images must be a float tensor [N,3,H,W] in [0,1]; got shape {tuple(x.shape)}.")
    return x.detach().float().to(model_device(model))
