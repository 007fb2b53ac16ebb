"""Feature maps of one image at chosen layers, each map contrast-stretched to [0,1] on its own."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import CnnlabError
from ..images import make_grid, normalize01
from ..models import Classifier, as_classifier
from ..results import Result
from .hooks import run_until

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RANKINGS = ("mean", "max")


@dataclass(repr=False)
class FeatureMaps(Result):
    """Chosen channels of chosen layers for one image: maps[layer] is [k,h,w] in [0,1]."""

    image: torch.Tensor
    layers: list[str]
    requested: list[str]
    maps: dict[str, torch.Tensor]
    channels: dict[str, list[int]]
    activation: dict[str, list[float]]
    shapes: dict[str, list[int]]
    rank: str = "mean"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"layers": self.layers, "requested": self.requested, "channels": self.channels,
                "activation": self.activation, "shapes": self.shapes, "rank": self.rank, "notes": self.notes}

    def summary_rows(self) -> list[tuple[str, object]]:
        return [(name, f"{'x'.join(map(str, self.shapes[name]))}, channels {', '.join(map(str, self.channels[name]))}")
                for name in self.layers]

    def grid(self, layer: str, ncols: int | None = None) -> torch.Tensor:
        """[3,H',W'] grayscale tile of one layer's chosen maps (each already in [0,1])."""
        maps = self.maps[layer][:, None].expand(-1, 3, -1, -1)
        return make_grid(maps, nrow=ncols or len(maps), padding=1)

    def image_grid(self, size: int = 96) -> torch.Tensor:
        """[3,H,W] labelled array drawn without matplotlib (fast): one row per layer, the input then
        its maps, every map enlarged (nearest) to `size` px."""
        import torch.nn.functional as F

        from .figures import labeled_grid
        img = F.interpolate(self.image[None], size=(size, size), mode="bilinear", align_corners=False)[0]
        rows, titles = [], []
        for req, name in zip(self.requested, self.layers):
            m = F.interpolate(self.maps[name][:, None], size=(size, size), mode="nearest").expand(-1, 3, -1, -1)
            rows.append([img.clamp(0, 1), *m])
            head = f"{req}: {name}" if req != name else name
            titles.append([head] + [f"ch {c}" for c in self.channels[name]])
        return labeled_grid(rows, titles)

    def figure(self, path: str | Path | None = None, cmap: str = "gray") -> "Figure | Path":
        """Rows of layers (with the image first): each panel titled with its channel and mean activation."""
        from ..figures import finish, panel_figure
        rows, titles, labels = [], [], []
        for i, name in enumerate(self.layers):
            maps = list(self.maps[name])
            t = [f"ch {c} (mean {a:.2f})" for c, a in zip(self.channels[name], self.activation[name])]
            rows.append(([self.image] if i == 0 else []) + maps)
            titles.append((["input"] if i == 0 else []) + t)
            c, h, w = self.shapes[name]
            labels.append(f"{self.requested[i]}: {name}\n{c}x{h}x{w}" if self.requested[i] != name
                          else f"{name}\n{c}x{h}x{w}")
        # keep columns aligned: later rows get an empty first cell
        rows = [r if i == 0 else [None] + r for i, r in enumerate(rows)]
        titles = [t if i == 0 else [""] + t for i, t in enumerate(titles)]
        return finish(panel_figure(rows, titles, labels, cmap=cmap, cell=1.8), path)


def feature_maps(model: Classifier | nn.Module, x: torch.Tensor, layers: Sequence[str] = ("early", "middle", "late"),
                 k: int = 5, channels: Sequence[int] | dict[str, Sequence[int]] | None = None,
                 rank: str = "mean") -> FeatureMaps:
    """Capture `layers` (names, or early/middle/late) for one image [1,3,H,W] and keep, per layer,
    the `k` channels with the highest `rank` ('mean' or 'max' activation) or the given `channels`.
    A bare nn.Module is wrapped with `cnnlab.wrap`'s defaults first."""
    model = as_classifier(model)
    x = model.check_images(x)
    if len(x) != 1:
        raise CnnlabError(f"Feature maps are drawn for one image at a time; got a batch of {len(x)}.")
    if rank not in RANKINGS:
        raise CnnlabError(f"rank '{rank}' is not known; use 'mean' or 'max'.")
    if k < 1:
        raise CnnlabError(f"k must be at least 1; got {k}.")
    requested = list(layers) if not isinstance(layers, str) else [layers]
    names = [model.resolve_layer_name(n) for n in requested]
    with model.frozen(), torch.no_grad():
        got = run_until(model, x, names)
    return maps_from_activations(model, x[0], {n: got.get(n)[0] for n in names}, requested, names, k, channels,
                                 rank, got.notes())


def maps_from_activations(model: Classifier | nn.Module, image: torch.Tensor, acts: dict[str, torch.Tensor],
                          requested: Sequence[str], names: Sequence[str], k: int = 5,
                          channels: Sequence[int] | dict[str, Sequence[int]] | None = None, rank: str = "mean",
                          notes: list[str] | None = None) -> FeatureMaps:
    """FeatureMaps from already captured [C,h,w] activations of one image (so a caller that runs the
    model anyway, like the tour, needs no second forward pass)."""
    model = as_classifier(model)
    maps, chans, means, shapes = {}, {}, {}, {}
    for req, name in zip(requested, names):
        a = acts[name].detach()
        if a.dim() != 3:
            raise CnnlabError(f"Layer '{name}' outputs shape {list(a.shape)}, not a [C,H,W] feature map; "
                              f"choose a convolutional layer such as: {', '.join(model.layers())}.")
        score = a.mean((1, 2)) if rank == "mean" else a.amax((1, 2))
        want = channels.get(req, channels.get(name)) if isinstance(channels, dict) else channels
        if want is None:
            idx = score.topk(min(k, len(score))).indices.tolist()
        else:
            idx = [int(c) for c in want]
            for c in idx:
                if not 0 <= c < a.shape[0]:
                    raise CnnlabError(f"Channel {c} is out of range for layer '{name}', which has {a.shape[0]} "
                                      f"channels (0..{a.shape[0] - 1}).")
        maps[name] = normalize01(a[idx].float().cpu(), dims=(1, 2))
        chans[name], means[name] = idx, score[idx].tolist()
        shapes[name] = list(a.shape)
    return FeatureMaps(image.detach().cpu(), list(names), list(requested), maps, chans, means, shapes, rank,
                       list(notes or []))
