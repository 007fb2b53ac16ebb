"""Do adversarial images survive everyday transformations?

Each image (the adversarial ones and their originals) goes through a horizontal flip, a centre crop
keeping ~80% of the area, a 30-degree rotation, grayscale replicated to 3 channels, JPEG at quality
75 and a Gaussian blur; the table holds the top-1 class and probability after each.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import CnnlabError, unknown
from ..imageops import center_crop, gaussian_blur, grayscale, hflip, jpeg, rotate
from ..models.classifier import Classifier
from ..models.wrap import as_classifier
from ..results import Result, percent
from .figures import robustness_figure
from .result import AttackResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _blur(x: torch.Tensor) -> torch.Tensor:
    return gaussian_blur(x, 1.0, truncate=2.0)


#: name -> transformation of a float [N,3,H,W] batch in [0,1] (same size out)
TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": lambda x: x,
    "hflip": hflip,
    "crop80": center_crop,
    "rotate30": rotate,
    "grayscale": grayscale,
    "jpeg75": jpeg,
    "blur": _blur,
}


@dataclass(repr=False)
class RobustnessTable(Result):
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

    def summary_rows(self) -> list[tuple[str, str]]:
        """Per transformation, the share of adversarial images that stay adversarial."""
        return [("images", str(len(self.rows)))] + [(t, percent(v, 0)) for t, v in self.survival().items()]

    def figure(self, path: str | Path | None = None) -> Figure | Path:
        """The table as a grid of images titled with their top-1 class."""
        return robustness_figure(self, path)


def transform_robustness(model: Classifier | torch.nn.Module, result: AttackResult,
                         transforms: list[str] | None = None, max_images: int = 8) -> RobustnessTable:
    """Classify each original and adversarial image of `result` after each transformation."""
    model = as_classifier(model)
    names = list(transforms or TRANSFORMS)
    for t in names:
        if t not in TRANSFORMS:
            raise unknown("transformation", t, TRANSFORMS)
    n = min(len(result), max_images)
    if n == 0:
        raise CnnlabError("The attack result holds no images to transform.")
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
            cells[t] = {"index": c, "label": result.name_of(c), "prob": round(float(p[c]), 4),
                        "is_original": c == orig_class, "is_target": c == adv_class and adv_class != orig_class}
        rows.append({"name": name, "kind": kind, "cells": cells})
        images.append({t: outs[t][k] for t in names})
    return RobustnessTable(names, rows, images)
