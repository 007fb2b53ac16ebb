"""Adversarial patch (Brown et al. 2017): one universal sticker that turns any image into a target class,
wherever it is put. Optimized by expectation over transformation: every image of every step gets the
patch at a random location, scale and rotation, so the patch works on images and placements it never saw."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..errors import CnnlabError
from ..models.classifier import Classifier
from ..models.wrap import as_classifier
from ..progress import Progress
from ..results import Result, percent
from .core import make_generator
from .evaluate import load_eval_data
from .figures import patch_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def place_patch(x: torch.Tensor, patch: torch.Tensor, side: torch.Tensor, angle: torch.Tensor,
                cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    """Paste `patch` [3,p,p] on each image of x [N,3,H,W]: side length `side` px, rotated by `angle`
    radians, centred at (cx, cy) px (all [N] tensors). Differentiable in the patch (bilinear sampling)."""
    n, _, h, w = x.shape
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = w / side, h / side  # canvas normalized units -> patch normalized units
    a = torch.stack([torch.stack([cos * sx, sin * sy], 1), torch.stack([-sin * sx, cos * sy], 1)], 1)  # R(-angle) D
    c = torch.stack([cx / w * 2 - 1, cy / h * 2 - 1], 1)
    theta = torch.cat([a, -(a @ c[:, :, None])], 2).to(x.dtype)
    grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    ones = torch.ones((n, 1) + patch.shape[-2:], device=x.device, dtype=x.dtype)
    stamp = F.grid_sample(patch.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    mask = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return x * (1 - mask) + stamp * mask


def random_placement(n: int, size: tuple[int, int], side: float, scale: tuple[float, float], max_degrees: float,
                     generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Random (side, angle, cx, cy) per image: side scaled uniformly in `scale`, angle in +-max_degrees,
    centre anywhere the unrotated patch fits inside the image."""
    h, w = size
    u = (lambda: torch.rand(n, generator=generator, device=generator.device).to(device))
    s = side * (scale[0] + (scale[1] - scale[0]) * u())
    s = s.clamp(max=min(h, w))
    ang = (u() * 2 - 1) * math.radians(max_degrees)
    cx = s / 2 + u() * (w - s)
    cy = s / 2 + u() * (h - s)
    return s, ang, cx, cy


@dataclass(repr=False)
class PatchResult(Result):
    """The optimized patch [3,p,p] and its targeted success rates (train images vs held-out images,
    each held-out image patched at several random placements)."""

    patch: torch.Tensor
    target: int
    target_label: str
    area: float
    train_success: float
    heldout_success: float
    heldout_n: int
    heldout_placements: int
    steps: int
    seconds: float
    params: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    examples: torch.Tensor | None = None        # a few held-out images with the patch placed at random
    example_originals: torch.Tensor | None = None
    example_pred: list[tuple[str, float]] = field(default_factory=list)
    model_name: str = ""
    data: str | None = None                     # the dataset the images came from (patch_from_data)

    def to_dict(self) -> dict:
        return {"target": {"index": self.target, "label": self.target_label}, "area": self.area,
                "patch_px": list(self.patch.shape[-2:]), "train_success": self.train_success,
                "heldout_success": self.heldout_success, "heldout_n": self.heldout_n,
                "heldout_placements": self.heldout_placements, "steps": self.steps,
                "seconds": round(self.seconds, 3), "params": self.params, "history": self.history,
                "model": self.model_name, "data": self.data}

    def summary_rows(self) -> list[tuple[str, object]]:
        return [("target", self.target_label), ("area", percent(self.area, 1)),
                ("train_success", percent(self.train_success)), ("heldout_success", percent(self.heldout_success)),
                ("heldout_n", self.heldout_n), ("steps", self.steps), ("seconds", round(self.seconds, 1))]

    def figure(self, path: str | Path | None = None) -> Figure | Path:
        """The patch, then held-out images before / with the patch (predicted class and probability)."""
        return patch_figure(self, path)

    def save(self, out: str | Path) -> dict:
        """Write patch.png, figures/patch.png and patch.json under `out`; returns what patch.json holds,
        with the paths."""
        from ..images import save_image
        out = Path(out)
        doc = self.to_dict()
        doc["patch_png"] = str(save_image(self.patch, out / "patch.png"))
        doc["figure"] = str(self.figure(out / "figures" / "patch.png"))
        (out / "patch.json").write_text(json.dumps(doc, indent=2))
        doc["json"] = str(out / "patch.json")
        return doc


def _patch_side(size: tuple[int, int], area: float) -> int:
    if not 0 < area < 1:
        raise CnnlabError(f"Patch area {area} must be a fraction of the image in (0, 1), e.g. 0.1.")
    return max(2, round(math.sqrt(area * size[0] * size[1])))


@torch.no_grad()
def patch_success(model: Classifier | torch.nn.Module, patch: torch.Tensor, x: torch.Tensor, target: int | str, *,
                  placements: int = 4, scale: tuple[float, float] = (0.8, 1.2), max_degrees: float = 45.0,
                  seed: int = 1, batch_size: int = 256) -> float:
    """Fraction of (image, random placement) pairs the patched model calls `target`."""
    model = as_classifier(model)
    x = model.check_images(x)
    target = model.class_index(target)
    patch = patch.to(x.device)
    gen = make_generator(seed, torch.device("cpu"))
    side = float(patch.shape[-1])
    hits = total = 0
    with model.frozen(fast=True):
        for _ in range(placements):
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size]
                pl = random_placement(len(xb), tuple(xb.shape[-2:]), side, scale, max_degrees, gen, xb.device)
                pred = model(place_patch(xb, patch, *pl)).argmax(1)
                hits += int((pred == target).sum())
                total += len(xb)
    return hits / max(1, total)


def adversarial_patch(model: Classifier | torch.nn.Module, x_train: torch.Tensor, target: int | str, *,
                      x_test: torch.Tensor | None = None, area: float = 0.1, steps: int = 300, batch_size: int = 32,
                      lr: float = 0.05, scale: tuple[float, float] = (0.8, 1.2), max_degrees: float = 45.0,
                      placements: int = 4, seed: int = 0, progress: bool = True) -> PatchResult:
    """Optimize a patch covering `area` of the image that makes `model` predict `target` on x_train
    (Adam on the mean targeted cross-entropy over random placements), then measure its success on
    x_test (images never used to optimize it; pass images not of the target class). `progress`
    shows the optimization's progress."""
    model = as_classifier(model)
    x_train = model.check_images(x_train)
    x_test = model.check_images(x_test) if x_test is not None else None
    steps = int(steps)
    if steps < 1:
        raise CnnlabError(f"Patch steps must be a positive whole number, got {steps}.")
    tgt = model.class_index(target)
    size = tuple(x_train.shape[-2:])
    side = _patch_side(size, area)
    gen = make_generator(seed, torch.device("cpu"))
    patch = torch.rand((3, side, side), generator=gen).to(x_train.device).requires_grad_(True)
    opt = torch.optim.Adam([patch], lr=lr)
    t0 = time.perf_counter()
    history = []
    with model.frozen(fast=True), Progress(steps, f"patch for {model.label(tgt)}", "step", enabled=progress) as bar:
        for t in range(steps):
            pick = torch.randint(0, len(x_train), (min(batch_size, len(x_train)),), generator=gen).to(x_train.device)
            xb = x_train[pick]
            pl = random_placement(len(xb), size, float(side), scale, max_degrees, gen, xb.device)
            logits = model(place_patch(xb, patch, *pl))
            loss = F.cross_entropy(logits, torch.full((len(xb),), tgt, device=xb.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                patch.clamp_(0, 1)
            stats = {}
            if t % max(1, steps // 20) == 0 or t == steps - 1:
                history.append({"step": t, "loss": round(float(loss.detach()), 5),
                                "batch_success": float((logits.argmax(1) == tgt).float().mean())})
                stats = {"loss": history[-1]["loss"]}
            bar.update(1, **stats)
        bar.close()
        p = patch.detach()
        kw = {"placements": placements, "scale": scale, "max_degrees": max_degrees}
        train_ok = patch_success(model, p, x_train, tgt, **kw)
        test_ok = patch_success(model, p, x_test, tgt, **kw) if x_test is not None and len(x_test) else float("nan")
        ex = ex0 = None
        preds: list[tuple[str, float]] = []
        show = x_test if x_test is not None and len(x_test) else x_train
        if len(show):
            ex0 = show[:6]
            pl = random_placement(len(ex0), size, float(side), scale, max_degrees,
                                  make_generator(seed + 7, torch.device("cpu")), ex0.device)
            ex = place_patch(ex0, p, *pl)
            with torch.no_grad():
                pr = torch.softmax(model(ex).float(), 1)
            preds = [(model.label(int(c)), float(pr[j, c])) for j, c in enumerate(pr.argmax(1))]
    return PatchResult(patch=p.cpu(), target=tgt, target_label=model.label(tgt),
                       area=side * side / (size[0] * size[1]), train_success=train_ok, heldout_success=test_ok,
                       heldout_n=0 if x_test is None else len(x_test), heldout_placements=placements, steps=steps,
                       seconds=time.perf_counter() - t0,
                       params={"lr": lr, "batch_size": batch_size, "scale": list(scale), "max_degrees": max_degrees,
                               "seed": seed, "train_n": len(x_train)},
                       history=history, examples=None if ex is None else ex.cpu(),
                       example_originals=None if ex0 is None else ex0.cpu(), example_pred=preds,
                       model_name=model.name)


def patch_from_data(model: Classifier | torch.nn.Module, data: object, target: int | str, *, limit: int = 400,
                    seed: int = 0, **options: object) -> PatchResult:
    """An adversarial patch for `target` from a labelled dataset: a seeded random subset of `limit` images,
    those of the target class dropped, the first half optimizes the patch and the second half tests it
    (`options` go to `adversarial_patch`: area, steps, batch_size, ...)."""
    model = as_classifier(model)
    tgt = model.class_index(target)
    x, y, name = load_eval_data(data, model, limit, seed)
    x = x[y != tgt]
    if len(x) < 4:
        raise CnnlabError(f"Data '{name}' has fewer than 4 images outside class '{model.label(tgt)}'; give more "
                          "images (or a larger --limit).")
    half = len(x) // 2
    result = adversarial_patch(model, x[:half], tgt, x_test=x[half:], seed=seed, **options)
    result.data = name
    return result
