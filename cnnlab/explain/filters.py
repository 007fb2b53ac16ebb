"""First-layer filters as one RGB grid, and a linear model's weights on pixels as class templates.

Each filter is contrast-stretched on its own: subtract its minimum, divide by its new maximum. This is
the one filter grid: the `filters` command and a training run's figures/filters.png both draw it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import CnnlabError
from ..images import make_grid, normalize01
from ..models import Classifier, as_classifier
from ..results import Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(repr=False)
class Filters(Result):
    """filters [K,3,kh,kw] in [0,1] (each stretched); kind 'conv' or 'templates' (a Linear on pixels)."""

    layer: str
    kind: str
    filters: torch.Tensor
    weight_shape: list[int]
    titles: list[str]

    def to_dict(self) -> dict:
        """A JSON-able summary: layer, kind, how many filters and their size."""
        return {"layer": self.layer, "kind": self.kind, "count": len(self.filters),
                "weight_shape": self.weight_shape, "filter_size": list(self.filters.shape[-2:])}

    def summary_rows(self) -> list[tuple[str, object]]:
        return [("layer", self.layer), ("kind", self.kind), ("count", len(self.filters)),
                ("weight_shape", "x".join(map(str, self.weight_shape)))]

    @property
    def title(self) -> str:
        """What the figure shows, in one line."""
        kh, kw = self.filters.shape[-2:]
        if self.kind == "templates":
            return f"Class templates: the weights of linear layer '{self.layer}' on the {kh}x{kw} pixels"
        return f"{len(self.filters)} filters of layer '{self.layer}' ({kh}x{kw}, each contrast-stretched)"

    def columns(self) -> int:
        """16 per row for 32+ filters (64 -> 4 x 16), else near-square."""
        n = len(self.filters)
        return 16 if n >= 32 else max(1, math.ceil(math.sqrt(n)))

    def image(self, ncols: int | None = None, min_size: int = 33, scale: int = 0) -> torch.Tensor:
        """One [3,H,W] RGB array of all filters, each enlarged (nearest) `scale` times, by default to at
        least `min_size` px, on a white background."""
        f = self.filters
        scale = scale or max(1, math.ceil(min_size / max(f.shape[-2:])))
        if scale > 1:
            f = f.repeat_interleave(scale, -2).repeat_interleave(scale, -1)
        return make_grid(f, nrow=ncols or self.columns(), padding=max(1, scale // 2), pad_value=1.0)

    def figure(self, path: str | Path | None = None, ncols: int | None = None,
               scale: int = 0) -> "Figure | Path":
        """The one filter grid, titled, at its pixel size (saved when `path` is given)."""
        from ..figures import finish, hwc, new_figure
        grid = self.image(ncols, scale=scale)
        dpi = 100
        h, w = grid.shape[-2] / dpi, grid.shape[-1] / dpi
        fig_w, title_h = max(w, 4.0), 0.35
        fig, axes = new_figure(1, 1, figsize=(fig_w, h + title_h))
        ax = axes[0][0]
        ax.set_position(((1 - w / fig_w) / 2, 0, w / fig_w, h / (h + title_h)))
        ax.imshow(hwc(grid), interpolation="nearest")
        ax.axis("off")
        fig.suptitle(self.title, fontsize=9, y=1 - 0.08 / (h + title_h), va="top")
        return finish(fig, path)  # saved at the same 100 dpi: one grid pixel stays one image pixel

    def panels(self, path: str | Path | None = None, ncols: int | None = None) -> "Figure | Path":
        """One titled panel per filter (a class template shows its class name), under the figure's title."""
        from ..figures import finish, panel_figure
        ncols = ncols or (self.columns() if self.kind == "conv" else min(len(self.filters), 5))
        items = list(self.filters)
        rows = [items[i:i + ncols] for i in range(0, len(items), ncols)]
        titles = [self.titles[i:i + ncols] for i in range(0, len(items), ncols)]
        fig = panel_figure(rows, titles, cell=1.0 if self.kind == "conv" else 1.8)
        fig.suptitle(self.title, fontsize=9)  # constrained layout keeps it clear of the panel titles
        return finish(fig, path)


def first_layer(model: Classifier | nn.Module) -> tuple[str, nn.Module]:
    """The first Conv2d or Linear module of the network (in registration order)."""
    model = as_classifier(model)
    for name, m in model.net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            return name, m
    raise CnnlabError(f"Model '{model.name}' has no Conv2d or Linear layer to show filters of.")


def first_rgb_conv(net: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The first ungrouped Conv2d over the 3 colour channels of a network, or None (e.g. an MLP). Takes
    the bare network, so a training loop can draw its filters without a Classifier."""
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == 3 and m.groups == 1:
            return name, m
    return None


def conv_filters(name: str, conv: nn.Conv2d) -> Filters:
    """The filters of one Conv2d over RGB, each contrast-stretched."""
    w = conv.weight.detach().float().cpu()
    if w.shape[1] != 3:
        raise CnnlabError(f"Layer '{name}' has {w.shape[1]} input channels; only filters over the 3 colour "
                          "channels can be drawn as RGB images (leave out --layer for the first layer).")
    return Filters(name, "conv", normalize01(w, dims=(1, 2, 3)), list(w.shape), [str(i) for i in range(len(w))])


def filters(model: Classifier | nn.Module, layer: str | None = None) -> Filters:
    """Filters of the first layer (or a named Conv2d with 3 input channels) as RGB images; a first Linear
    layer on 3xHxW pixels (softmax regression) gives one template per class. A bare nn.Module is
    wrapped with `cnnlab.wrap`'s defaults first."""
    model = as_classifier(model)
    if layer is None:
        name, m = first_layer(model)
    else:
        name = model.resolve_layer_name(layer)
        m = model.layer(name)
    if isinstance(m, nn.Conv2d):
        return conv_filters(name, m)
    if isinstance(m, nn.Linear):
        w = m.weight.detach().float().cpu()
        h, wd = model.input_size
        if w.shape[1] != 3 * h * wd:
            raise CnnlabError(f"Layer '{name}' is a Linear layer on {w.shape[1]} inputs, not on the 3x{h}x{wd} "
                              "pixels; templates can only be drawn for a linear model on raw pixels.")
        t = normalize01(w.view(-1, 3, h, wd), dims=(1, 2, 3))
        return Filters(name, "templates", t, list(w.shape), [model.label(i) for i in range(len(t))])
    raise CnnlabError(f"Layer '{name}' is a {type(m).__name__}, not a Conv2d or Linear layer with filters.")
