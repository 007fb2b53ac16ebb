"""Fooling images (Nguyen et al. 2015): pictures nobody would recognize that the model labels with
>= 99% confidence. Two ways: gradient ascent on log P(target) from uniform noise (white-box), and a
simple evolutionary search that only reads the model's probabilities (black-box)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import CnnlabError
from .core import attack_mode, make_generator


@dataclass
class FoolingResult:
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

    @property
    def success(self) -> list[bool]:
        return [c >= self.threshold for c in self.confidence]

    @property
    def success_rate(self) -> float:
        return sum(self.success) / max(1, len(self.success))

    def to_dict(self) -> dict:
        return {"method": self.method, "threshold": self.threshold, "success_rate": self.success_rate,
                "seconds": round(self.seconds, 3), "params": self.params,
                "images": [{"target": {"index": t, "label": lab}, "confidence": round(c, 6), "calls": q,
                            "success": s} for t, lab, c, q, s in
                           zip(self.targets, self.target_labels, self.confidence, self.calls, self.success)]}

    def figure(self, path: str | Path | None = None):
        """The fooling images in a row, each titled with the class and the model's confidence."""
        from .figures import _finish, _hwc, _plt, _short
        plt = _plt()
        n = len(self.images)
        cols = min(n, 5)
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for i in range(n):
            ax = axes.flat[i]
            ax.imshow(_hwc(self.images[i]), interpolation="nearest")
            ax.set_title(f"{_short(self.target_labels[i], 16)}\n{self.confidence[i]:.2%}", fontsize=8)
        fig.suptitle(f"fooling images ({self.method})", fontsize=9)
        fig.tight_layout()
        return _finish(fig, path)


def _targets(model: torch.nn.Module, targets) -> list[int]:  # noqa: ANN001
    if isinstance(targets, (int, str)):
        targets = [targets]
    out = [model.class_index(t) if hasattr(model, "class_index") else int(t) for t in targets]
    if not out:
        raise CnnlabError("Give at least one target class for fooling images.")
    return out


def _shape(model: torch.nn.Module, size) -> tuple[int, int]:  # noqa: ANN001
    size = size or tuple(getattr(model, "input_size", ()) or ())
    if not size:
        raise CnnlabError("The model has no input size; pass size=(H, W) for the fooling images.")
    return int(size[0]), int(size[1])


def _names(model: torch.nn.Module, idx: list[int]) -> list[str]:
    labels = list(getattr(model, "labels", []) or [])
    return [labels[i] if i < len(labels) else str(i) for i in idx]


def fooling_gradient(model: torch.nn.Module, targets, *, steps: int = 200, step_size: float = 2 / 255,  # noqa: ANN001
                     threshold: float = 0.99, size: tuple[int, int] | None = None, seed: int = 0) -> FoolingResult:
    """From uniform noise, signed gradient ascent on log P(target) (one image per target, batched),
    each image stopping once the model gives its class >= `threshold`."""
    idx = _targets(model, targets)
    h, w = _shape(model, size)
    gen = make_generator(seed, torch.device("cpu"))
    dev = next((b.device for b in model.buffers()), torch.device("cpu"))
    x = torch.rand((len(idx), 3, h, w), generator=gen).to(dev)
    tgt = torch.tensor(idx, device=dev)
    conf = torch.zeros(len(idx), device=dev)
    calls = torch.zeros(len(idx), dtype=torch.long)
    t0 = time.perf_counter()
    with attack_mode(model):
        for _ in range(int(steps) + 1):
            run = (conf < threshold).nonzero()[:, 0]
            if len(run) == 0:
                break
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
    return FoolingResult("gradient", x.detach().cpu(), idx, _names(model, idx), [float(c) for c in conf],
                         calls.tolist(), threshold, time.perf_counter() - t0,
                         {"steps": int(steps), "step_size": step_size, "seed": seed, "start": "uniform noise"})


def fooling_evolve(model: torch.nn.Module, targets, *, generations: int = 300, population: int = 32,  # noqa: ANN001
                   genome: int = 8, sigma: float = 0.15, mutate_fraction: float = 0.1, threshold: float = 0.99,
                   size: tuple[int, int] | None = None, seed: int = 0) -> FoolingResult:
    """A (mu + lambda) evolutionary search that reads only P(target): each image is a genome x genome
    colour grid (upsampled to the input size, as Nguyen et al.'s indirect encoding keeps images
    smooth); every generation each parent gets one mutated child (Gaussian noise on a random
    `mutate_fraction` of its genes) and the best `population` of parents and children survive."""
    idx = _targets(model, targets)
    h, w = _shape(model, size)
    if population < 2 or genome < 1:
        raise CnnlabError("Evolution needs a population of at least 2 and a genome of at least 1x1.")
    gen = make_generator(seed, torch.device("cpu"))
    dev = next((b.device for b in model.buffers()), torch.device("cpu"))
    render = (lambda g: F.interpolate(g, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1))
    best_imgs, confs, calls = [], [], []
    t0 = time.perf_counter()
    with attack_mode(model), torch.no_grad():
        for t in idx:
            pop = torch.rand((population, 3, genome, genome), generator=gen).to(dev)
            fit = torch.softmax(model(render(pop)).float(), 1)[:, t]
            q = population
            for _ in range(int(generations)):
                if float(fit.max()) >= threshold:
                    break
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
    return FoolingResult("evolve", torch.stack(best_imgs), idx, _names(model, idx), confs, calls, threshold,
                         time.perf_counter() - t0,
                         {"generations": int(generations), "population": population, "genome": genome,
                          "sigma": sigma, "mutate_fraction": mutate_fraction, "seed": seed,
                          "uses": "output probabilities only"})


def fooling_images(model: torch.nn.Module, targets, method: str = "gradient", **kw) -> FoolingResult:  # noqa: ANN001
    """Fooling images by 'gradient' (white-box ascent from noise) or 'evolve' (outputs only)."""
    if method == "gradient":
        return fooling_gradient(model, targets, **kw)
    if method == "evolve":
        return fooling_evolve(model, targets, **kw)
    raise CnnlabError(f"Unknown fooling method '{method}'; choose gradient or evolve.")
