"""Accuracy under attack on a labelled dataset: clean accuracy, robust accuracy, success rate, norms,
cost; for one eps, or a list of them in one call (robust accuracy against eps, as Foolbox answers).

    attack_eval(model, "cifar10_test.npz", "pgd", eps=8/255, limit=500)             # AttackEval
    attack_eval(model, "cifar10_test.npz", "pgd", eps=[2/255, 4/255, 8/255])         # RobustnessCurve

With a list, each eps attacks only the images still robust at the previous (smaller) eps: an
adversarial example inside the smaller ball lies inside the larger one too, so it counts as fooled
there. Robust accuracy therefore never rises with eps (independent runs of a random or early-stopping
attack can show small bumps), and the whole curve costs about what the largest eps alone would.
A minimal-perturbation attack (DeepFool) runs once; an image is robust at eps when the perturbation it
needed is larger than eps.

The images move to the model's device once and are attacked there in batches of `batch_size`. Under
torchrun (a joined process group, see cnnlab.distributed) every process attacks its share of the
batches and all results are gathered in batch order: each batch is attacked exactly as one process
attacks it (same images, same seed), so the numbers equal one process's.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import distributed
from ..errors import CnnlabError
from ..models.classifier import Classifier, Target
from ..models.wrap import as_classifier
from ..progress import Progress
from ..results import Result, percent
from .core import check_eps
from .registry import AttackSpec, attack, attack_spec, format_eps, method_names

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(repr=False)
class AttackEval(Result):
    """What an attack does to a model on a dataset, at one budget.

    top1 / robust_top1 are over all n images (an image misclassified before the attack is not
    robust); success_rate is over the images the model got right (the ones attacked); linf and l2
    are the mean (median_linf, median_l2: the median) perturbation norms of the successful adversarial
    examples -- for DeepFool, the median minimal perturbation; images_per_s counts all n images over
    the attack's wall time; passes_per_image counts `cost_unit` (forward+backward passes for gradient
    attacks, model queries for the others) per image.
    """

    method: str
    n: int
    top1: float
    robust_top1: float
    success_rate: float
    linf: float
    l2: float
    images_per_s: float
    passes_per_image: float
    seconds: float
    median_linf: float = 0.0
    median_l2: float = 0.0
    budget: str = ""
    cost_unit: str = "forward+backward passes"
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary_rows(self) -> list[tuple[str, object]]:
        return [("method", self.method), ("budget", self.budget), ("n", self.n), ("top1", percent(self.top1)),
                ("robust_top1", percent(self.robust_top1)), ("success_rate", percent(self.success_rate)),
                ("median_linf_255", round(self.median_linf * 255, 3)), ("median_l2", round(self.median_l2, 4)),
                ("seconds", round(self.seconds, 1))]

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """Clean and robust top-1 accuracy and the success rate, as bars."""
        from ..figures import bars_figure, finish
        return finish(bars_figure([(f"{self.method} ({self.budget}), {self.n} images",
                                    ["top-1 clean", "top-1 under attack", "success rate"],
                                    [self.top1, self.robust_top1, self.success_rate])]), path)

    def lines(self) -> list[str]:
        return [f"{self.method} ({self.budget}) on {self.n} images of {self.params.get('data', '?')}",
                f"clean accuracy    {self.top1:7.2%}",
                f"robust accuracy   {self.robust_top1:7.2%}",
                f"success rate      {self.success_rate:7.2%}  (of the {round(self.top1 * self.n)} "
                "correctly classified images)",
                f"mean L-inf        {self.linf * 255:7.3f}/255   mean L2 {self.l2:.4f}  (successful examples)",
                f"median L-inf      {self.median_linf * 255:7.3f}/255   median L2 {self.median_l2:.4f}",
                f"speed             {self.images_per_s:7.1f} images/s, {self.passes_per_image:.2f} "
                f"{self.cost_unit} per image"]


@dataclass(repr=False)
class RobustnessCurve(Result):
    """Robust accuracy against eps: one AttackEval per eps, ascending, sharing the data and clean accuracy.

    Each point's robust accuracy, success rate and norms count every image fooled within its eps; its
    cost (passes_per_image, seconds) is that of its own step, which attacked only the images still
    robust at the smaller eps (for DeepFool: the one run, shared by every point)."""

    method: str
    n: int
    top1: float
    points: list[AttackEval]
    seconds: float
    norm: str | None = "linf"

    @property
    def eps(self) -> list[float]:
        return [p.params["eps"] for p in self.points]

    @property
    def robust_top1(self) -> list[float]:
        return [p.robust_top1 for p in self.points]

    def to_dict(self) -> dict:
        return {"method": self.method, "n": self.n, "top1": self.top1, "norm": self.norm,
                "eps": self.eps, "robust_top1": self.robust_top1,
                "success_rate": [p.success_rate for p in self.points], "seconds": self.seconds,
                "points": [p.to_dict() for p in self.points]}

    def summary_rows(self) -> list[tuple[str, object]]:
        return [("method", self.method), ("n", self.n), ("top1", percent(self.top1))] + [
            (f"robust_top1 @ {format_eps(p.params['eps'], self.norm)}", percent(p.robust_top1)) for p in self.points]

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """Robust top-1 accuracy against eps, the clean accuracy at eps 0."""
        from .figures import robustness_curve
        return robustness_curve(self, path)

    def lines(self) -> list[str]:
        first = self.points[0]
        head = [f"{self.method} on {self.n} images of {first.params.get('data', '?')}: clean accuracy "
                f"{self.top1:.2%}"]
        return head + [f"eps {format_eps(p.params['eps'], self.norm):>9}  robust accuracy {p.robust_top1:7.2%}  "
                       f"success rate {p.success_rate:7.2%}  median L-inf {p.median_linf * 255:6.3f}/255  "
                       f"median L2 {p.median_l2:.4f}  {p.passes_per_image:.2f} {p.cost_unit} per image"
                       for p in self.points]


def load_eval_data(data: object, model: Classifier | torch.nn.Module, limit: int | None = None,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(images [N,3,H,W] in [0,1] at the model's input size, labels, name) from a pair of float tensors
    (kept as given), or anything cnnlab.data.load_dataset reads (a dataset, a torch Dataset or
    DataLoader, (x, y) arrays, an .npz file, a folder, 'cifar10': its test part); a seeded random subset
    of `limit` images (test files are often sorted by class)."""
    from ..data import GivenLoader, ImageArrays, load_dataset
    model = as_classifier(model)
    pick = (lambda n: torch.from_numpy(np.sort(np.random.default_rng(seed).permutation(n)[:limit])))
    given = isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor) \
        and data[0].is_floating_point()
    if given:
        x, y = data[0], torch.as_tensor(data[1], dtype=torch.long)
        name = "tensors"
    else:
        ds = load_dataset(data, split="test")
        name = Path(str(data)).name if isinstance(data, (str, Path)) else (ds.name or "data")
        if isinstance(ds, GivenLoader):  # its images, read batch by batch
            x, y = ds.tensors()
        else:
            if limit is not None and limit < len(ds):
                ds = ds.subset(pick(len(ds)).numpy())
            if isinstance(ds, ImageArrays):
                x, y = ds.floats(), ds.y.long()
            else:
                from ..images import load_images
                x = load_images([ds.file(i) for i in range(len(ds))], model)
                y = torch.as_tensor(ds.y, dtype=torch.long)
        num = model.num_classes
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= num):
            raise CnnlabError(f"Data '{name}' has labels outside 0..{num - 1} (model '{model.name}' has {num} "
                              "classes); evaluate with a model trained on these classes.")
    if limit is not None and limit < len(x):
        keep = pick(len(x))
        x, y = x[keep], y[keep]
    if len(x) == 0:
        raise CnnlabError("The evaluation data holds no images.")
    if tuple(x.shape[-2:]) != model.input_size:
        x = model.preprocessing.apply_tensor(x)
    return x, y, name


def attack_eval(model: Classifier | torch.nn.Module, data: object, method: str = "pgd", *,
                eps: float | Sequence[float] | None = None, steps: int | None = None,
                step_size: float | None = None, target: Target = None, limit: int | None = None,
                batch_size: int = 256, seed: int = 0, progress: bool = True,
                **method_options: object) -> AttackEval | RobustnessCurve:
    """Attack the correctly classified images of `data` and measure what survives.

    `eps` is one budget (default: the method's) and gives an AttackEval, or a list of budgets and gives
    a RobustnessCurve (see the module's docstring for how the list is attacked). `method_options` go
    to the attack function (e.g. `rotations=` for the spatial attack); `progress` shows the images
    attacked so far."""
    model = as_classifier(model)
    spec = attack_spec(method)
    if not spec.evaluable:
        raise CnnlabError(f"--method {method} is not an evaluation attack ({spec.description}); evaluate with one "
                          f"of: {', '.join(method_names(evaluable=True))}.")
    curve = isinstance(eps, Sequence) and not isinstance(eps, str)
    budgets = _budgets(spec, list(eps) if curve else [eps])
    x, y, name = load_eval_data(data, model, limit, seed)
    n = len(x)
    ctx = distributed.current()
    x, y = x.to(model.device), y.cpu()  # the images once: every batch below is a view of them
    t0 = time.perf_counter()
    with model.frozen(), torch.no_grad():
        mine = distributed.my_batches(-(-n // batch_size), ctx)
        scores = torch.cat(distributed.gather_in_order(
            [(b, model(x[b * batch_size:(b + 1) * batch_size]).float().cpu()) for b in mine], ctx))
    correct = scores.argmax(1) == y
    todo = correct.nonzero()[:, 0]
    per_image_target = target is not None and not isinstance(target, (int, str))
    if target is not None:  # a targeted attack only counts images not already of the target class
        wanted = model.targets(target, scores, torch.Generator().manual_seed(seed))
        todo = todo[wanted[todo] != y[todo]]
        if per_image_target:
            target = wanted.cpu()
    run = dict(model=model, x=x, y=y, method=method, steps=steps, step_size=step_size, target=target,
               per_image_target=per_image_target, batch_size=batch_size, seed=seed, options=method_options,
               progress=progress, ctx=ctx)
    common = dict(spec=spec, n=n, correct=int(correct.sum()), top1=float(correct.float().mean()),
                  attacked=len(todo), steps=steps,
                  extra={"data": name, "limit": limit, "target": target})
    points = []
    if spec.kind == "minimal-perturbation":  # one run; robust at eps where the perturbation needed is larger
        found = _attack_batches(todo, eps=None, **run)
        seconds = time.perf_counter() - t0
        norm = found.linf if spec.norm == "linf" else found.l2
        for e in budgets:
            within = found.fooled & (norm <= e) if e is not None else found.fooled
            points.append(_point(eps=e, fooled=within, linf=found.linf, l2=found.l2, passes=found.passes,
                                 seconds=seconds, params=found.params, **common))
    else:
        alive, fooled, linf, l2 = todo, torch.zeros(n, dtype=torch.bool), torch.zeros(n), torch.zeros(n)
        for e in budgets:
            found = _attack_batches(alive, eps=e, **run)
            won = alive[found.fooled[alive]]
            fooled[won], linf[won], l2[won] = True, found.linf[won], found.l2[won]
            alive = alive[~found.fooled[alive]]
            seconds, t0 = time.perf_counter() - t0, time.perf_counter()
            points.append(_point(eps=e, fooled=fooled.clone(), linf=linf, l2=l2, passes=found.passes,
                                 seconds=seconds, params=found.params, **common))
    if not curve:
        return points[0]
    return RobustnessCurve(method=method, n=n, top1=float(correct.float().mean()), points=points,
                           seconds=round(sum(p.seconds for p in points), 3), norm=spec.norm)


def _budgets(spec: AttackSpec, eps: list[float | None]) -> list[float | None]:
    """The eps values to evaluate, checked and ascending; [None] means the method's own budget."""
    if eps == [None]:
        return [spec.eps]
    if not eps:
        raise CnnlabError("Give at least one eps.")
    if not spec.takes("eps") and spec.kind != "minimal-perturbation":
        raise CnnlabError(f"--method {spec.name} has no eps ({spec.description}); drop --eps.")
    if any(e is None for e in eps):
        raise CnnlabError("A list of eps values cannot hold None.")
    return sorted(check_eps(e, "--eps", spec.norm) for e in eps)


@dataclass
class _Found:
    """Per image (over the whole dataset): fooled by the attack, and the norms of its perturbation."""

    fooled: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor
    passes: int
    params: dict


def _attack_batches(idx: torch.Tensor, *, model: Classifier, x: torch.Tensor, y: torch.Tensor, method: str,
                    eps: float | None, steps: int | None, step_size: float | None, target: Target,
                    per_image_target: bool, batch_size: int, seed: int, options: dict, progress: bool,
                    ctx: distributed.DistContext) -> _Found:
    """Attack images `idx` of x in batches (batch at offset i seeded with seed + i); under torchrun each
    process attacks its batches (the first shows its progress) and every process gets all results."""
    n = len(x)
    fooled, linf, l2 = torch.zeros(n, dtype=torch.bool), torch.zeros(n), torch.zeros(n)
    done = []
    mine = distributed.my_batches(-(-len(idx) // batch_size), ctx)
    budget = "" if eps is None else f" eps {format_eps(eps, attack_spec(method).norm)}"
    bar = Progress(len(distributed.batch_items(mine, batch_size, len(idx))), f"{method}{budget}", "img",
                   enabled=progress and ctx.is_main)
    fooled_here = 0
    for j in mine:
        i = j * batch_size
        b = idx[i:i + batch_size]
        t = target[b] if per_image_target else target
        r = attack(model, x[b.to(x.device)], method, y=y[b] if target is None else None, target=t, eps=eps,
                   steps=steps, step_size=step_size, seed=seed + i, **options)
        ok = r.success.cpu()
        if target is not None:  # a targeted success must also leave the true class
            ok = ok & (r.final_class.cpu() != y[b])
        done.append((j, (b, ok, r.linf.cpu(), r.l2.cpu(), r.passes, r.params)))
        fooled_here += int(ok.sum())
        bar.update(len(b), fooled=fooled_here)
    bar.close()
    passes, params = 0, {}
    for b, ok, li, l2b, p, params in distributed.gather_in_order(done, ctx):
        fooled[b], linf[b], l2[b] = ok, li, l2b
        passes += p
    return _Found(fooled, linf, l2, passes, params)


def _point(*, spec: AttackSpec, eps: float | None, n: int, correct: int, top1: float, attacked: int,
           fooled: torch.Tensor,
           linf: torch.Tensor, l2: torch.Tensor, passes: int, seconds: float, steps: int | None, params: dict,
           extra: dict) -> AttackEval:
    """One AttackEval from the images fooled within this eps and their perturbation norms."""
    li, l2s = linf[fooled], l2[fooled]
    mean = (lambda v: float(v.mean()) if len(v) else 0.0)
    median = (lambda v: float(v.median()) if len(v) else 0.0)
    k = int(fooled.sum())
    params = {**params, "eps": eps, **extra}
    return AttackEval(method=spec.name, n=n, top1=top1, robust_top1=(correct - k) / n,
                      success_rate=k / attacked if attacked else 0.0, linf=mean(li), l2=mean(l2s),
                      images_per_s=n / seconds if seconds > 0 else 0.0, passes_per_image=passes / n,
                      seconds=seconds, median_linf=median(li), median_l2=median(l2s),
                      budget=spec.budget(eps, steps), cost_unit=spec.cost_unit, params=params)
