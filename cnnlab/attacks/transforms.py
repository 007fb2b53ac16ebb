"""Do adversarial images survive everyday transformations? (seed 001 Problem 4, part 2)

Each image (the adversarial ones and their originals) goes through a horizontal flip, a centre crop
keeping ~80% of the area, a 30-degree rotation, grayscale replicated to 3 channels, JPEG at quality
75 and a Gaussian blur; the table holds the top-1 class and probability after each.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CnnlabError, unknown
from .result import AttackResult


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def center_crop(x: torch.Tensor, area: float = 0.8) -> torch.Tensor:
    """Keep the central `area` fraction of the image and resize it back to the input size."""
    h, w = x.shape[-2:]
    s = math.sqrt(area)
    ch, cw = max(1, round(h * s)), max(1, round(w * s))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top:top + ch, left:left + cw]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def rotate(x: torch.Tensor, degrees: float = 30.0) -> torch.Tensor:
    """Rotate about the centre (counter-clockwise), corners filled with black."""
    a = math.radians(degrees)
    h, w = x.shape[-2:]
    theta = torch.tensor([[math.cos(a), -math.sin(a) * h / w, 0.0], [math.sin(a) * w / h, math.cos(a), 0.0]],
                         dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma replicated to three channels."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()


def jpeg(x: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """Encode each image as a JPEG at `quality` with Pillow and decode it again."""
    from PIL import Image
    out = []
    for img in x:
        arr = (img.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)
        out.append(torch.from_numpy(dec.copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out).to(x.device)


def gaussian_blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur (radius 2 sigma, reflect padding)."""
    r = max(1, int(math.ceil(2 * sigma)))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


#: name -> transformation of a float [N,3,H,W] batch in [0,1] (same size out)
TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": lambda x: x,
    "hflip": hflip,
    "crop80": center_crop,
    "rotate30": rotate,
    "grayscale": grayscale,
    "jpeg75": jpeg,
    "blur": gaussian_blur,
}


@dataclass
class RobustnessTable:
    """Top-1 class and probability of each image after each transformation."""

    transforms: list[str]
    rows: list[dict]                       # {"name", "kind": original|adversarial, "cells": {t: {...}}}
    images: list[dict] = field(repr=False, default_factory=list)   # transformed tensors, for the figure

    def survival(self) -> dict[str, float]:
        """Per transformation, the fraction of adversarial images that keep their adversarial class."""
        adv = [r for r in self.rows if r["kind"] == "adversarial"]
        return {t: sum(bool(r["cells"][t]["is_target"]) for r in adv) / len(adv) for t in self.transforms} if adv else {}

    def to_dict(self) -> dict:
        return {"transforms": self.transforms, "rows": self.rows, "adversarial_survival": self.survival()}

    def markdown(self) -> str:
        head = "| image | " + " | ".join(self.transforms) + " |\n|---|" + "---|" * len(self.transforms)
        lines = [head]
        for r in self.rows:
            cells = [f"{c['label'].split(',')[0]} {c['prob']:.2f}{' *' if c.get('is_target') else ''}"
                     for c in (r["cells"][t] for t in self.transforms)]
            lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n\n`*`: still the adversarial class."

    def figure(self, path: str | Path | None = None):
        from .figures import robustness_figure
        return robustness_figure(self, path)


def transform_robustness(model: torch.nn.Module, result: AttackResult, transforms: list[str] | None = None,
                         max_images: int = 8) -> RobustnessTable:
    """Classify each original and adversarial image of `result` after each transformation."""
    names = list(transforms or TRANSFORMS)
    for t in names:
        if t not in TRANSFORMS:
            raise unknown("transformation", t, TRANSFORMS)
    n = min(len(result), max_images)
    if n == 0:
        raise CnnlabError("The attack result holds no images to transform.")
    labels = result.labels
    pairs = []
    for i in range(n):
        pairs.append((f"original {i}", "original", result.originals[i:i + 1], i))
        pairs.append((f"adversarial {i}", "adversarial", result.images[i:i + 1], i))
    batch = torch.cat([p[2] for p in pairs])
    outs = {t: TRANSFORMS[t](batch) for t in names}
    probs = {t: model.probabilities(outs[t]) for t in names}
    rows, images = [], []
    for k, (name, kind, _, i) in enumerate(pairs):
        adv_class = int(result.target[i]) if result.target is not None else int(result.final_class[i])
        orig_class = int(result.original_class[i])
        cells = {}
        for t in names:
            p = probs[t][k]
            c = int(p.argmax())
            cells[t] = {"index": c, "label": labels[c] if c < len(labels) else str(c), "prob": round(float(p[c]), 4),
                        "is_original": c == orig_class, "is_target": c == adv_class and adv_class != orig_class}
        rows.append({"name": name, "kind": kind, "cells": cells})
        images.append({t: outs[t][k] for t in names})
    return RobustnessTable(names, rows, images)
