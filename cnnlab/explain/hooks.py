"""Capture named layers' outputs with forward hooks, and stop a forward once they are captured.

Modules called more than once in one forward (a shared ReLU) are detected: we keep the last call and
say so in `notes`. Eval mode, frozen parameters and the device are the Classifier's business
(`model.frozen()`, `model.check_images`).
"""
from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CnnlabError
from ..models import Classifier


class _StopForward(Exception):
    """Raised by a hook once every wanted layer has been seen: the rest of the forward is skipped."""


@dataclass
class Captured:
    """Outputs of hooked layers (last call of each), how often each layer was called, and the logits
    when the forward ran to its end."""

    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)
    logits: torch.Tensor | None = None

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


@contextmanager
def capture(model: Classifier, names: Sequence[str], *, leaf: bool = False,
            stop_after: bool = False) -> Iterator[Captured]:
    """Hook the named layers of `model.net` while the block runs; yield the Captured outputs.

    leaf: replace each output by a detached leaf that requires grad (Grad-CAM: the gradient is taken at
        the layer, and nothing before the layer needs a graph). stop_after: abort the forward with
        `_StopForward` once every named layer has run (handled by `run_until`).
    """
    got = Captured()
    modules = dict(model.net.named_modules())
    wanted = set(names)

    def make_hook(name: str) -> Callable[[nn.Module, tuple, object], torch.Tensor | None]:
        def hook(module: nn.Module, inp: tuple, out: object) -> torch.Tensor | None:
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


_REUSED: "weakref.WeakKeyDictionary[Classifier, set[str]]" = weakref.WeakKeyDictionary()


def reused_modules(model: Classifier, x: torch.Tensor) -> set[str]:
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


def run_until(model: Classifier, x: torch.Tensor, names: Sequence[str], logits: bool = False) -> Captured:
    """Forward `x` only as far as needed to capture the named layers (the head is skipped), unless the
    `logits` are wanted too or one of the layers is a reused module, whose last call is only known at
    the end of the forward."""
    stop = not logits and not (set(names) & reused_modules(model, x))
    with capture(model, names, stop_after=stop) as got:
        try:
            got.logits = model(x)
        except _StopForward:
            pass
    return got
