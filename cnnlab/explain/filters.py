"""First-layer filters as one RGB array (seed 001, 3.1) and linear-model weights as class templates (002).

Each filter is contrast-stretched on its own: subtract its minimum, divide by its new maximum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CnnlabError
from ..images import make_grid, normalize01


@dataclass
class Filters:
    """filters [K,3,kh,kw] in [0,1] (each stretched); kind 'conv' or 'templates' (a Linear on pixels)."""

    layer: str
    kind: str
    filters: torch.Tensor
    weight_shape: list[int]
    titles: list[str]

    def to_dict(self) -> dict:
        return {"layer": self.layer, "kind": self.kind, "count": len(self.filters),
                "weight_shape": self.weight_shape, "filter_size": list(self.filters.shape[-2:])}

    def columns(self) -> int:
        """16 per row for 32+ filters (64 -> 4 x 16, as in the seed), else near-square."""
        n = len(self.filters)
        return 16 if n >= 32 else max(1, math.ceil(math.sqrt(n)))

    def image(self, ncols: int | None = None, min_size: int = 33) -> torch.Tensor:
        """One [3,H,W] RGB array of all filters, each enlarged (nearest) to at least `min_size` px."""
        f = self.filters
        scale = max(1, math.ceil(min_size / max(f.shape[-2:])))
        if scale > 1:
            f = f.repeat_interleave(scale, -2).repeat_interleave(scale, -1)
        return make_grid(f, nrow=ncols or self.columns(), padding=max(1, scale // 2), pad_value=1.0)

    def figure(self, path: str | Path | None = None):
        """Titled panels (class names for templates); for conv filters the plain array is clearer."""
        from .figures import panel_figure, save_figure
        ncols = self.columns() if self.kind == "conv" else min(len(self.filters), 5)
        items = list(self.filters)
        rows = [items[i:i + ncols] for i in range(0, len(items), ncols)]
        titles = [self.titles[i:i + ncols] for i in range(0, len(items), ncols)]
        fig = panel_figure(rows, titles, cell=1.0 if self.kind == "conv" else 1.8)
        return save_figure(fig, path) if path is not None else fig


def first_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """The first Conv2d or Linear module of the network (in registration order)."""
    for name, m in model.net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            return name, m
    raise CnnlabError(f"Model '{model.name}' has no Conv2d or Linear layer to show filters of.")


def filters(model: nn.Module, layer: str | None = None) -> Filters:
    """Filters of the first layer (or a named Conv2d with 3 input channels) as RGB images; a first Linear
    layer on 3xHxW pixels (softmax regression) gives one template per class."""
    if layer is None:
        name, m = first_layer(model)
    else:
        name, m = layer, model.layer(layer)
        name = model.resolve_layer_name(layer)
    w = m.weight.detach().float().cpu()
    if isinstance(m, nn.Conv2d):
        if w.shape[1] != 3:
            raise CnnlabError(f"Layer '{name}' has {w.shape[1]} input channels; only filters over the 3 colour "
                              "channels can be drawn as RGB images (leave out --layer for the first layer).")
        titles = [str(i) for i in range(len(w))]
        return Filters(name, "conv", normalize01(w, dims=(1, 2, 3)), list(w.shape), titles)
    if isinstance(m, nn.Linear):
        h, wd = model.input_size
        if w.shape[1] != 3 * h * wd:
            raise CnnlabError(f"Layer '{name}' is a Linear layer on {w.shape[1]} inputs, not on the 3x{h}x{wd} "
                              "pixels; templates can only be drawn for a linear model on raw pixels.")
        t = normalize01(w.view(-1, 3, h, wd), dims=(1, 2, 3))
        labels = list(getattr(model, "labels", []))
        titles = [labels[i] if i < len(labels) else str(i) for i in range(len(t))]
        return Filters(name, "templates", t, list(w.shape), titles)
    raise CnnlabError(f"Layer '{name}' is a {type(m).__name__}, not a Conv2d or Linear layer with filters.")
