"""What feature visualization maximizes: a channel, a neuron, a class logit, a direction, a whole layer
(DeepDream), or any weighted sum of these ("channel 5 twice as much as channel 16").

An Objective maps the captured activations {layer: [N,C,H,W], 'logits': [N,K]} to one score per image.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CnnlabError
from ..models import Classifier, as_classifier

LOGITS = "logits"


@dataclass
class Objective:
    """A differentiable score of activations; objectives add, subtract and scale like numbers."""

    name: str
    layers: tuple[str, ...]
    fn: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    checks: list[tuple[str, int]] = field(default_factory=list)  # (layer, channel) to range-check

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fn(acts)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(f"{self.name} + {other.name}", tuple(dict.fromkeys(self.layers + other.layers)),
                         lambda a: self.fn(a) + other.fn(a), self.checks + other.checks)

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-1.0) * other

    def __mul__(self, w: float) -> "Objective":
        return Objective(f"{w:g}*{self.name}", self.layers, lambda a: w * self.fn(a), self.checks)

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return (-1.0) * self

    def check(self, acts: dict[str, torch.Tensor]) -> None:
        """Raise one clear error for a channel or class index outside its layer."""
        for layer, c in self.checks:
            a = acts[layer]
            n = a.shape[1]
            if not 0 <= c < n:
                what = "Class" if layer == LOGITS else "Channel"
                where = "the model's logits" if layer == LOGITS else f"layer '{layer}'"
                raise CnnlabError(f"{what} {c} is out of range for {where}, which has {n} "
                                  f"{'classes' if layer == LOGITS else 'channels'} (0..{n - 1}).")


def _map(acts: dict[str, torch.Tensor], layer: str) -> torch.Tensor:
    a = acts[layer]
    if a.dim() == 2:
        a = a[:, :, None, None]
    return a


def channel(layer: str, c: int) -> Objective:
    """Mean activation of channel `c` of `layer` over all positions."""
    return Objective(f"{layer}:{c}", (layer,), lambda a: _map(a, layer)[:, c].mean((1, 2)), [(layer, c)])


def neuron(layer: str, c: int, y: int | None = None, x: int | None = None) -> Objective:
    """Activation of channel `c` at one position (default: the centre of the map)."""
    def fn(a: dict[str, torch.Tensor]) -> torch.Tensor:
        m = _map(a, layer)
        yy = m.shape[2] // 2 if y is None else y
        xx = m.shape[3] // 2 if x is None else x
        if not (0 <= yy < m.shape[2] and 0 <= xx < m.shape[3]):
            raise CnnlabError(f"Position ({yy}, {xx}) is outside layer '{layer}', whose map is "
                              f"{m.shape[2]}x{m.shape[3]}.")
        return m[:, c, yy, xx]
    where = "" if y is None and x is None else f"@{y},{x}"
    return Objective(f"{layer}:{c}{where} (neuron)", (layer,), fn, [(layer, c)])


def class_logit(c: int, label: str | None = None) -> Objective:
    """The logit of class `c` (before the softmax, so other classes are not simply suppressed)."""
    return Objective(f"class {label or c}", (LOGITS,), lambda a: a[LOGITS][:, c], [(LOGITS, c)])


def direction(layer: str, vector: Sequence[float] | torch.Tensor) -> Objective:
    """Mean over positions of the activation's dot product with a unit `vector` in channel space."""
    v = torch.as_tensor(vector, dtype=torch.float32).flatten()
    v = v / v.norm().clamp_min(1e-12)

    def fn(a: dict[str, torch.Tensor]) -> torch.Tensor:
        m = _map(a, layer)
        if m.shape[1] != len(v):
            raise CnnlabError(f"The direction has {len(v)} entries but layer '{layer}' has {m.shape[1]} channels.")
        return (m * v.to(m.device).view(1, -1, 1, 1)).sum(1).mean((1, 2))
    return Objective(f"{layer}:direction", (layer,), fn)


def layer_energy(layer: str) -> Objective:
    """DeepDream: the mean squared activation of a whole layer (amplifies whatever the layer sees)."""
    return Objective(f"{layer} (deepdream)", (layer,), lambda a: _map(a, layer).pow(2).mean((1, 2, 3)))


def channels(layer: str, weights: dict[int, float]) -> Objective:
    """A weighted combination of channels of one layer, e.g. {5: 2.0, 16: 1.0}."""
    terms = [w * channel(layer, c) for c, w in weights.items()]
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


_TERM = re.compile(r"^\s*(?:(?P<w1>[-+]?\d*\.?\d+)\s*\*\s*)?(?P<body>[^*]+?)\s*(?:\*\s*(?P<w2>[-+]?\d*\.?\d+))?\s*$")


def parse_objective(model: Classifier | nn.Module, spec: str) -> Objective:
    """Text -> Objective, for the CLI. Terms joined by '+', each optionally weighted ('2*T' or 'T*2'):
    LAYER:CH (channel), LAYER:CH@Y,X (neuron), LAYER (DeepDream on the layer), class:NAME-OR-INDEX.
    LAYER may be a module path or early/middle/late. Example: 'middle:5*2 + middle:16'."""
    model = as_classifier(model)
    terms = [t for t in spec.split("+") if t.strip()]
    if not terms:
        raise CnnlabError(f"Objective '{spec}' is empty; write e.g. 'middle:5', 'class:tabby' or 'late:3*2 + late:7'.")
    out: Objective | None = None
    for term in terms:
        m = _TERM.match(term)
        if not m:
            raise CnnlabError(f"Objective term '{term.strip()}' is not understood; write LAYER:CHANNEL, "
                              "LAYER:CHANNEL@Y,X, LAYER or class:NAME, optionally times a weight.")
        w = float(m["w1"] or m["w2"] or 1.0)
        obj = _parse_term(model, m["body"].strip())
        obj = obj if w == 1.0 else w * obj
        out = obj if out is None else out + obj
    return out


def _parse_term(model: Classifier, body: str) -> Objective:
    if body.lower().startswith(("class:", "logit:")):
        name = body.split(":", 1)[1].strip()
        i = model.class_index(name)
        return class_logit(i, model.label(i))
    layer, _, rest = body.rpartition(":") if ":" in body else (body, "", "")
    layer = model.resolve_layer_name(layer.strip())
    if not rest:
        return layer_energy(layer)
    ch, _, pos = rest.partition("@")
    try:
        c = int(ch)
        yx = [int(v) for v in pos.split(",")] if pos else None
    except ValueError:
        raise CnnlabError(f"Objective term '{body}' needs an integer channel (and @Y,X position); "
                          "write e.g. 'middle:5' or 'middle:5@7,7'.") from None
    if yx is not None:
        if len(yx) != 2:
            raise CnnlabError(f"Objective term '{body}': a neuron position is written @Y,X, e.g. @7,7.")
        return neuron(layer, c, yx[0], yx[1])
    return channel(layer, c)
