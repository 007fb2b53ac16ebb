"""Most-activating inputs of a unit (Zeiler & Fergus 2014): scan a dataset once, keep the
top-k images for one channel of one layer, and the patch of the input that position depends on.

The patch is the support of the activation's input gradient for that image: exactly the pixels
that can change this activation (its receptive field, less paths that are dead on this image).
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import CnnlabError
from ..models import Classifier, as_classifier
from ..progress import Progress
from ..results import Result
from .hooks import run_until

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(repr=False)
class TopActivations(Result):
    """The k images (dataset indices) where channel `channel` of `layer` is strongest."""

    layer: str
    channel: int
    values: list[float]
    indices: list[int]
    positions: list[tuple[int, int]]
    boxes: list[tuple[int, int, int, int]]
    images: torch.Tensor
    map_size: list[int]
    scanned: int
    seconds: float
    reduce: str = "max"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "channel": self.channel, "reduce": self.reduce, "values": self.values,
                "indices": self.indices, "positions_yx": self.positions, "boxes_tlbr": self.boxes,
                "map_size": self.map_size, "scanned": self.scanned, "seconds": self.seconds, "notes": self.notes}

    def summary_rows(self) -> list[tuple[str, object]]:
        return [("unit", f"{self.layer}:{self.channel}"), ("reduce", self.reduce), ("scanned", self.scanned),
                ("top", ", ".join(f"#{i} ({v:.2f})" for i, v in zip(self.indices[:5], self.values[:5]))
                 + (" …" if len(self.indices) > 5 else "")), ("seconds", round(self.seconds, 1))]

    def patches(self) -> list[torch.Tensor]:
        """The receptive-field patch of each top image, [3,h,w]."""
        return [img[:, t:b, l:r] for img, (t, l, b, r) in zip(self.images, self.boxes)]

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """Top row: the images with their patch outlined; bottom row: the patches themselves."""
        from ..figures import finish, panel_figure
        outlined = [_outline(img, box) for img, box in zip(self.images, self.boxes)]
        titles = [f"#{i} ({v:.2f})" for i, v in zip(self.indices, self.values)]
        fig = panel_figure([outlined, self.patches()], [titles, ["patch"] * len(titles)],
                           [f"{self.layer}:{self.channel}", "receptive field"], cell=1.7)
        return finish(fig, path)


def _outline(img: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    t, l, b, r = box
    out = img.clone()
    red = torch.tensor([1.0, 0.0, 0.0])[:, None]
    out[:, t, l:r] = red
    out[:, b - 1, l:r] = red
    out[:, t:b, l] = red
    out[:, t:b, r - 1] = red
    return out


def _batches(data: object, model: Classifier, batch_size: int) -> Iterator[torch.Tensor]:
    """Float [B,3,H,W] batches in [0,1] at the model's input size from a tensor, ImageArrays, ImageFiles,
    a list of image paths, or a user's torch Dataset, DataLoader or arrays (see cnnlab.data.load_dataset)."""
    from ..data import GivenLoader, ImageArrays, ImageFiles, load_dataset
    from ..data.given import is_user_data
    from ..images import load_images
    pre = model.preprocessing
    if isinstance(data, GivenLoader) or (is_user_data(data) and not isinstance(data, torch.Tensor)):
        data = load_dataset(data)
    if isinstance(data, GivenLoader):
        for x, _ in data.batches():
            yield pre.apply_tensor(x)
        return
    if isinstance(data, ImageFiles):
        data = data.paths
    if isinstance(data, torch.Tensor):
        if data.dim() != 4 or data.shape[1] != 3:
            raise CnnlabError(f"Images must be [N,3,H,W]; got {tuple(data.shape)}.")
        for i in range(0, len(data), batch_size):
            b = data[i:i + batch_size]
            b = b.float() / 255.0 if b.dtype == torch.uint8 else b.float()
            yield pre.apply_tensor(b)
    elif isinstance(data, ImageArrays):
        for i in range(0, len(data), batch_size):
            yield pre.apply_tensor(data.floats(slice(i, i + batch_size)))
    elif isinstance(data, Sequence) and not isinstance(data, str):
        for i in range(0, len(data), batch_size):
            yield load_images(list(data[i:i + batch_size]), model)
    else:
        raise CnnlabError(f"Cannot scan {type(data).__name__}; pass an image tensor, ImageArrays, ImageFiles "
                          "or a list of image paths.")


def top_activations(model: Classifier | nn.Module, data: object, layer: str, channel: int, k: int = 9,
                    batch_size: int = 64, reduce: str = "max", progress: bool = True) -> TopActivations:
    """Scan `data` once (no gradients, forward stopped at `layer`) and keep the top-k images by the
    channel's spatial max ('max') or mean ('mean'), then find each winner's receptive-field patch.
    A bare nn.Module is wrapped with `cnnlab.wrap`'s defaults first; `progress` shows the scan's."""
    model = as_classifier(model)
    if reduce not in ("max", "mean"):
        raise CnnlabError(f"reduce '{reduce}' is not known; use 'max' or 'mean'.")
    if k < 1:
        raise CnnlabError(f"k must be at least 1; got {k}.")
    name = model.resolve_layer_name(layer)
    t0 = time.perf_counter()
    best_v = torch.empty(0)
    best_i = torch.empty(0, dtype=torch.long)
    best_img = torch.empty(0)
    best_pos = torch.empty(0, dtype=torch.long)
    seen, notes, map_size = 0, [], []
    total = len(data) if hasattr(data, "__len__") else None
    with model.frozen(), torch.inference_mode(), \
            Progress(total, f"scan {name}:{channel}", "img", enabled=progress) as bar:
        for xb in _batches(data, model, batch_size):
            got = run_until(model, model.check_images(xb), [name])
            a = got.get(name)
            notes = got.notes()
            if a.dim() != 4:
                raise CnnlabError(f"Layer '{name}' outputs shape {list(a.shape)}, not a [N,C,H,W] feature map; "
                                  f"choose one of: {', '.join(model.layers())}.")
            if not 0 <= channel < a.shape[1]:
                raise CnnlabError(f"Channel {channel} is out of range for layer '{name}', which has {a.shape[1]} "
                                  f"channels (0..{a.shape[1] - 1}).")
            m = a[:, channel].float().cpu()
            map_size = list(m.shape[1:])
            flat = m.flatten(1)
            v = flat.amax(1) if reduce == "max" else flat.mean(1)
            pos = flat.argmax(1)
            best_v = torch.cat([best_v, v])
            best_i = torch.cat([best_i, torch.arange(seen, seen + len(v))])
            best_pos = torch.cat([best_pos, pos])
            best_img = torch.cat([best_img, xb.cpu()]) if len(best_img) else xb.cpu()
            keep = best_v.topk(min(k, len(best_v))).indices
            best_v, best_i, best_pos, best_img = best_v[keep], best_i[keep], best_pos[keep], best_img[keep]
            seen += len(v)
            bar.update(len(v))
    if seen == 0:
        raise CnnlabError("No images were scanned; the data is empty.")
    w = map_size[1]
    positions = [(int(p) // w, int(p) % w) for p in best_pos]
    boxes = receptive_boxes(model, best_img, name, channel, positions)
    return TopActivations(name, channel, best_v.tolist(), best_i.tolist(), positions, boxes, best_img,
                          map_size, seen, time.perf_counter() - t0, reduce, notes)


def receptive_boxes(model: Classifier | nn.Module, x: torch.Tensor, layer: str, channel: int,
                    positions: Sequence[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of the input pixels with a non-zero gradient of each image's activation
    at its position (images are independent in eval mode, so one backward serves the batch)."""
    model = as_classifier(model)
    layer = model.resolve_layer_name(layer)
    with model.frozen():
        xg = model.check_images(x).clone().requires_grad_(True)
        with torch.enable_grad():
            a = run_until(model, xg, [layer]).get(layer)
        ys = torch.tensor([p[0] for p in positions])
        xs = torch.tensor([p[1] for p in positions])
        sel = a[torch.arange(len(a)), channel, ys, xs]
        (g,) = torch.autograd.grad(sel.sum(), xg)
    boxes = []
    h, w = x.shape[-2:]
    for gi in g.abs().sum(1):
        nz = gi.nonzero()
        if len(nz) == 0:
            boxes.append((0, 0, h, w))
        else:
            (t, l), (b, r) = nz.min(0).values.tolist(), nz.max(0).values.tolist()
            boxes.append((t, l, b + 1, r + 1))
    return boxes
