"""Spatial attack (Engstrom et al. 2019, "Exploring the landscape of spatial robustness"): the worst
rotation (+-30 degrees) and translation (+-3 px on 32x32, proportional on other sizes) of each image,
found by trying every point of a grid. No pixel noise: the image is only turned and shifted."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import CnnlabError
from ..imageops import affine
from ..models.classifier import Classifier
from ..models.wrap import as_classifier
from ..results import Result, percent
from .prologue import check_labels, clean_probs, setup_attack
from .registry import AttackSpec, register
from .result import AttackResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def rotate_translate(x: torch.Tensor, degrees: float, dx: float, dy: float) -> torch.Tensor:
    """Rotate about the centre by `degrees` (counter-clockwise) then shift by (dx, dy) pixels
    (right, down); what comes in from outside the image is black, as in Engstrom et al."""
    return affine(x, degrees, dx, dy).clamp(0, 1)


def spatial_grid(size: tuple[int, int], rotations: int = 31, translations: int = 5, max_degrees: float = 30.0,
                 max_shift_32: float = 3.0) -> list[tuple[float, float, float]]:
    """(degrees, dx, dy) grid points: `rotations` angles in [-max, max] times `translations`^2 shifts
    in [-3, 3] px scaled by size/32 (Engstrom et al.'s 31 x 5 x 5 = 775 by default)."""
    if rotations < 1 or translations < 1:
        raise CnnlabError("The spatial grid needs at least one rotation and one translation value.")
    h, w = size
    lin = (lambda lo, hi, k: [0.0] if k == 1 else [lo + (hi - lo) * i / (k - 1) for i in range(k)])
    angles = lin(-max_degrees, max_degrees, rotations)
    sx, sy = max_shift_32 * w / 32, max_shift_32 * h / 32
    return [(a, dx, dy) for a in angles for dx in lin(-sx, sx, translations) for dy in lin(-sy, sy, translations)]


@dataclass(repr=False)
class SpatialEval(Result):
    """Accuracy under the worst grid transform of each image, and under each single fixed transform."""

    n: int
    top1: float
    robust_top1: float
    grid_points: int
    min_fixed_top1: float
    worst_fixed: dict
    per_transform: list[dict] = field(default_factory=list)
    worst_transform: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def summary_rows(self) -> list[tuple[str, object]]:
        return [("n", self.n), ("top1", percent(self.top1)), ("min_fixed_top1", percent(self.min_fixed_top1)),
                ("robust_top1", percent(self.robust_top1)), ("grid_points", self.grid_points),
                ("seconds", round(self.seconds, 1))]

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """Top-1 accuracy clean, under the worst single transform and under the per-image worst transform."""
        from ..figures import bars_figure, finish
        return finish(bars_figure([(f"rotation and translation, {self.grid_points} grid points",
                                    ["clean", "worst fixed transform", "spatial attack"],
                                    [self.top1, self.min_fixed_top1, self.robust_top1])], xlabel="top-1 %"), path)

    def lines(self) -> list[str]:
        w = self.worst_fixed
        return [f"spatial attack (rotation and translation, {self.grid_points} grid points) on {self.n} images",
                f"clean accuracy                    {self.top1:7.2%}",
                f"worst single fixed transform      {self.min_fixed_top1:7.2%}  (rotate {w['degrees']:+.1f} deg, "
                f"shift {w['dx']:+.1f},{w['dy']:+.1f} px)",
                f"accuracy under the spatial attack {self.robust_top1:7.2%}  (worst transform per image)"]


def _search(model: Classifier, x: torch.Tensor, y: torch.Tensor, grid: list[tuple[float, float, float]],
            batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[float]]:
    """Per image: lowest true-class margin over the grid and where; per grid point: accuracy."""
    n = len(x)
    worst = torch.full((n,), float("inf"), device=x.device)
    where = torch.zeros(n, dtype=torch.long, device=x.device)
    correct_all = torch.ones(n, dtype=torch.bool, device=x.device)
    accs = []
    for g, (a, dx, dy) in enumerate(grid):
        right = 0
        for i in range(0, n, batch_size):
            sl = slice(i, i + batch_size)
            logits = model(rotate_translate(x[sl], a, dx, dy))
            own = logits.gather(1, y[sl, None])[:, 0]
            margin = own - logits.scatter(1, y[sl, None], float("-inf")).amax(1)
            ok = margin > 0
            right += int(ok.sum())
            correct_all[sl] &= ok
            better = margin < worst[sl]
            worst[sl] = torch.where(better, margin, worst[sl])
            where[sl] = torch.where(better, torch.full_like(where[sl], g), where[sl])
        accs.append(right / n)
    return worst, where, correct_all, accs


def spatial_eval(model: Classifier | torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, rotations: int = 31,
                 translations: int = 5, batch_size: int = 256) -> SpatialEval:
    """Accuracy of `model` on (x, y) under the grid-search spatial attack, next to the clean accuracy
    and the accuracy under each fixed transform (the attack can only be worse than any one of them)."""
    model = as_classifier(model)
    x = model.check_images(x)
    y = check_labels(model, x, y)
    grid = spatial_grid(tuple(x.shape[-2:]), rotations, translations)
    t0 = time.perf_counter()
    with model.frozen(), torch.no_grad():
        clean = clean_probs(model, x, batch_size).argmax(1) == y
        _, where, correct_all, accs = _search(model, x, y, grid, batch_size)
    robust = correct_all & clean
    k = min(range(len(grid)), key=lambda i: accs[i])
    point = (lambda g: {"degrees": round(g[0], 3), "dx": round(g[1], 3), "dy": round(g[2], 3)})
    return SpatialEval(n=len(x), top1=float(clean.float().mean()), robust_top1=float(robust.float().mean()),
                       grid_points=len(grid), min_fixed_top1=min(accs), worst_fixed=point(grid[k]),
                       per_transform=[{**point(g), "top1": a} for g, a in zip(grid, accs)],
                       worst_transform=[point(grid[int(i)]) for i in where],
                       seconds=time.perf_counter() - t0)


def spatial_attack(model: Classifier | torch.nn.Module, x: torch.Tensor, *, y: torch.Tensor | None = None,
                   rotations: int = 31, translations: int = 5, batch_size: int = 256) -> AttackResult:
    """Each image turned and shifted by its worst grid transform (lowest margin of its label, default
    the predicted class); success where that transform changes the label. Norms in the result are
    pixel differences, large by nature: the budget here is the angle and shift, in params['transforms']."""
    with setup_attack(model, x, y=y, batch_size=batch_size) as s, torch.no_grad():
        x = s.x
        grid = spatial_grid(tuple(x.shape[-2:]), rotations, translations)
        _, where, _, _ = _search(s.model, x, s.cls, grid, batch_size)
        adv = torch.stack([rotate_translate(x[i:i + 1], *grid[int(g)])[0] for i, g in enumerate(where)])
        final = clean_probs(s.model, adv, batch_size)
    ok = final.argmax(1) != s.cls
    params = {"rotations": rotations, "translations": translations, "grid_points": len(grid),
              "max_degrees": 30.0, "max_shift_px": 3.0 * x.shape[-1] / 32,
              "transforms": [{"degrees": grid[int(g)][0], "dx": grid[int(g)][1], "dy": grid[int(g)][2]} for g in where]}
    steps = torch.full((len(x),), len(grid), dtype=torch.long)
    return s.result("spatial", adv, final, ok, steps, len(grid) * len(x), params)


register(AttackSpec(
    "spatial", kind="spatial", norm=None, target="refuses",
    description="spatial attack: the worst rotation (+-30 deg) and shift (+-3 px at 32 px) of a 775-point grid, "
                "no pixel noise (Engstrom et al. 2019)",
    run=lambda m, x, o, **kw: spatial_attack(m, x, y=o.y, **kw)))
