"""Fooling images (Nguyen et al. 2015): pictures nobody would recognize that the model labels with
>= 99% confidence. Two ways: gradient ascent on log P(target) from uniform noise (white-box), and a
simple evolutionary search that only reads the model's probabilities (black-box)."""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
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
from .figures import fooling_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: What the model calls each method's steps: gradient steps, or evolution's generations.
METHODS = {"gradient": "gradient steps", "evolve": "queries"}


@dataclass(repr=False)
class FoolingResult(Result):
    """One image per requested class, its confidence, and the model calls it took (gradient steps
    for 'gradient', forward queries for 'evolve')."""

    method: str
    images: torch.Tensor
    targets: list[int]
    target_labels: list[str]
    confidence: list[float]
    calls: list[int]
    threshold: float
    seconds: float
    params: dict = field(default_factory=dict)
    model_name: str = ""

    @property
    def success(self) -> list[bool]:
        return [c >= self.threshold for c in self.confidence]

    @property
    def success_rate(self) -> float:
        return sum(self.success) / max(1, len(self.success))

    @property
    def calls_unit(self) -> str:
        """What `calls` counts: gradient steps or forward queries."""
        return METHODS[self.method]

    def to_dict(self) -> dict:
        return {"method": self.method, "model": self.model_name, "threshold": self.threshold,
                "success_rate": self.success_rate, "seconds": round(self.seconds, 3), "params": self.params,
                "calls_unit": self.calls_unit,
                "images": [{"target": {"index": t, "label": lab}, "confidence": round(c, 6), "calls": q,
                            "success": s} for t, lab, c, q, s in
                           zip(self.targets, self.target_labels, self.confidence, self.calls, self.success)]}

    def summary_rows(self) -> list[tuple[str, object]]:
        return [("method", self.method), ("images", len(self.targets)), ("success_rate", percent(self.success_rate)),
                ("confidence", ", ".join(f"{lab.split(',')[0]} {percent(c, 1)}"
                                         for lab, c in zip(self.target_labels[:4], self.confidence[:4]))
                 + (" …" if len(self.targets) > 4 else "")),
                ("seconds", round(self.seconds, 1))]

    def figure(self, path: str | Path | None = None) -> Figure | Path:
        """The fooling images in a row, each titled with the class and the model's confidence."""
        return fooling_figure(self, path)

    def save(self, out: str | Path) -> dict:
        """Write one PNG per image (fool_<index>_<label>.png), figures/fooling.png and fool.json under
        `out`; returns what fool.json holds, with the paths."""
        from ..images import save_image
        out = Path(out)
        doc = self.to_dict()
        for i, row in enumerate(doc["images"]):
            label = row["target"]["label"].split(",")[0].replace(" ", "_").replace("/", "_")
            row["png"] = str(save_image(self.images[i], out / f"fool_{row['target']['index']}_{label}.png"))
        doc["figure"] = str(self.figure(out / "figures" / "fooling.png"))
        (out / "fool.json").write_text(json.dumps(doc, indent=2))
        doc["json"] = str(out / "fool.json")
        return doc


def _targets(model: Classifier, targets: int | str | Sequence[int | str]) -> list[int]:
    """Class indices from a class, a list of classes, or 'all' (every class)."""
    if isinstance(targets, (int, str)):
        targets = [targets]
    targets = list(targets)
    if [str(t).strip().lower() for t in targets] == ["all"]:
        return list(range(model.num_classes))
    out = [model.class_index(t) for t in targets]
    if not out:
        raise CnnlabError("Give at least one target class for fooling images.")
    return out


def _shape(model: Classifier, size: tuple[int, int] | None) -> tuple[int, int]:
    size = size or model.input_size
    return int(size[0]), int(size[1])


def fooling_gradient(model: Classifier | torch.nn.Module, targets: int | str | Sequence[int | str], *,
                     steps: int = 200, step_size: float = 2 / 255, threshold: float = 0.99,
                     size: tuple[int, int] | None = None, seed: int = 0, progress: bool = True) -> FoolingResult:
    """From uniform noise, signed gradient ascent on log P(target) (one image per target, batched),
    each image stopping once the model gives its class >= `threshold`."""
    model = as_classifier(model)
    idx = _targets(model, targets)
    h, w = _shape(model, size)
    gen = make_generator(seed, torch.device("cpu"))
    dev = model.device
    x = torch.rand((len(idx), 3, h, w), generator=gen).to(dev)
    tgt = torch.tensor(idx, device=dev)
    conf = torch.zeros(len(idx), device=dev)
    calls = torch.zeros(len(idx), dtype=torch.long)
    t0 = time.perf_counter()
    with model.frozen(fast=True), Progress(int(steps) + 1, "fooling images", "step", enabled=progress) as bar:
        for _ in range(int(steps) + 1):
            run = (conf < threshold).nonzero()[:, 0]
            if len(run) == 0:
                break
            bar.update(1, searching=len(run))
            xa = x[run].clone().requires_grad_(True)
            logp = F.log_softmax(model(xa).float(), 1).gather(1, tgt[run, None])[:, 0]
            conf[run] = logp.detach().exp()
            still = conf[run] < threshold
            if calls[run.cpu()].max() >= steps or not still.any():
                continue
            g, = torch.autograd.grad(logp.sum(), xa)
            go = run[still]
            x[go] = (x[go] + step_size * g[still].sign()).clamp(0, 1)
            calls[go.cpu()] += 1
    return FoolingResult("gradient", x.detach().cpu(), idx, [model.label(i) for i in idx], [float(c) for c in conf],
                         calls.tolist(), threshold, time.perf_counter() - t0,
                         {"steps": int(steps), "step_size": step_size, "seed": seed, "start": "uniform noise"},
                         model_name=model.name)


def fooling_evolve(model: Classifier | torch.nn.Module, targets: int | str | Sequence[int | str], *,
                   generations: int = 300, population: int = 32, genome: int = 8, sigma: float = 0.15,
                   mutate_fraction: float = 0.1, threshold: float = 0.99, size: tuple[int, int] | None = None,
                   seed: int = 0, progress: bool = True) -> FoolingResult:
    """A (mu + lambda) evolutionary search that reads only P(target): each image is a genome x genome
    colour grid (upsampled to the input size, as Nguyen et al.'s indirect encoding keeps images
    smooth); every generation each parent gets one mutated child (Gaussian noise on a random
    `mutate_fraction` of its genes) and the best `population` of parents and children survive."""
    model = as_classifier(model)
    idx = _targets(model, targets)
    h, w = _shape(model, size)
    if population < 2 or genome < 1:
        raise CnnlabError("Evolution needs a population of at least 2 and a genome of at least 1x1.")
    gen = make_generator(seed, torch.device("cpu"))
    dev = model.device
    render = (lambda g: F.interpolate(g, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1))
    best_imgs, confs, calls = [], [], []
    t0 = time.perf_counter()
    with model.frozen(fast=True), torch.no_grad(), \
            Progress(len(idx) * int(generations), "evolving fooling images", "generation", enabled=progress) as bar:
        for t in idx:
            pop = torch.rand((population, 3, genome, genome), generator=gen).to(dev)
            fit = torch.softmax(model(render(pop)).float(), 1)[:, t]
            q = population
            for g in range(int(generations)):
                if float(fit.max()) >= threshold:
                    bar.drop(int(generations) - g)
                    break
                bar.update(1)
                mask = (torch.rand(pop.shape, generator=gen) < mutate_fraction).to(dev)
                kids = (pop + mask * sigma * torch.randn(pop.shape, generator=gen).to(dev)).clamp(0, 1)
                kfit = torch.softmax(model(render(kids)).float(), 1)[:, t]
                q += population
                allp, allf = torch.cat([pop, kids]), torch.cat([fit, kfit])
                keep = allf.argsort(descending=True)[:population]
                pop, fit = allp[keep], allf[keep]
            b = int(fit.argmax())
            best_imgs.append(render(pop[b:b + 1])[0].cpu())
            confs.append(float(fit[b]))
            calls.append(q)
    return FoolingResult("evolve", torch.stack(best_imgs), idx, [model.label(i) for i in idx], confs, calls,
                         threshold, time.perf_counter() - t0,
                         {"generations": int(generations), "population": population, "genome": genome,
                          "sigma": sigma, "mutate_fraction": mutate_fraction, "seed": seed,
                          "uses": "output probabilities only"}, model_name=model.name)


def fooling_images(model: Classifier | torch.nn.Module, targets: int | str | Sequence[int | str],
                   method: str = "gradient", *, steps: int | None = None, threshold: float = 0.99, seed: int = 0,
                   **options: object) -> FoolingResult:
    """Fooling images for `targets` (classes, or 'all') by 'gradient' (white-box ascent from noise,
    `steps` gradient steps, default 200) or 'evolve' (outputs only, `steps` generations, default 300)."""
    if method == "gradient":
        return fooling_gradient(model, targets, steps=steps or 200, threshold=threshold, seed=seed, **options)
    if method == "evolve":
        return fooling_evolve(model, targets, generations=steps or 300, threshold=threshold, seed=seed, **options)
    raise CnnlabError(f"Unknown fooling method '{method}'; choose one of: {', '.join(METHODS)}.")
