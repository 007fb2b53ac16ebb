"""DeepFool (Moosavi-Dezfooli et al. 2016): the smallest L2 (or L-inf) perturbation that crosses the
nearest decision boundary, found by linearizing the classifier again at every step. The per-image
minimal norm, and its median over a dataset, measure robustness without choosing an eps."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import CnnlabError
from ..models.classifier import Classifier
from ..results import Result
from .core import check_steps
from .prologue import setup_attack
from .registry import AttackSpec, register
from .result import AttackResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def deepfool_step(model: torch.nn.Module, x: torch.Tensor, cls: torch.Tensor, cand: torch.Tensor,
                  norm: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One linearization at x: (perturbation to the nearest linearized boundary, predicted class, probs).

    For each candidate class k: f_k = logit_k - logit_cls, w_k = grad f_k; the boundary of k is
    |f_k| / ||w_k||_q away (q = 2 for L2, q = 1 for L-inf). One backward pass per candidate, batched
    over images (images are independent in eval mode)."""
    xa = x.clone().requires_grad_(True)
    logits = model(xa)
    pred = logits.argmax(1).detach()
    probs = torch.softmax(logits.detach().float(), 1)
    own = logits.gather(1, cls[:, None])[:, 0]
    g_own, = torch.autograd.grad(own.sum(), xa, retain_graph=True)
    best_dist = torch.full((len(x),), float("inf"), device=x.device)
    best_r = torch.zeros_like(x)
    for j in range(cand.shape[1]):
        k = cand[:, j]
        fk_logit = logits.gather(1, k[:, None])[:, 0]
        g_k, = torch.autograd.grad(fk_logit.sum(), xa, retain_graph=j < cand.shape[1] - 1)
        w = (g_k - g_own).flatten(1)
        f = (fk_logit - own).detach().abs()
        if norm == "l2":
            wn = w.norm(dim=1).clamp_min(1e-12)
            dist = f / wn
            r = ((f + 1e-4) / wn ** 2)[:, None] * w
        else:
            wn = w.abs().sum(1).clamp_min(1e-12)
            dist = f / wn
            r = ((f + 1e-4) / wn)[:, None] * w.sign()
        better = (dist < best_dist) & (k != cls)
        best_dist = torch.where(better, dist, best_dist)
        best_r[better] = r[better].view(-1, *x.shape[1:])
    return best_r, pred, probs


def deepfool(model: Classifier | torch.nn.Module, x: torch.Tensor, *, y: torch.Tensor | None = None,
             steps: int = 50, overshoot: float = 0.02, norm: str = "l2", candidates: int = 10,
             batch_size: int = 128) -> AttackResult:
    """Untargeted DeepFool from each image's label `y` (default: its predicted class).

    Each step moves every not-yet-fooled image to its nearest linearized boundary among the
    `candidates` most likely classes; the summed step is scaled by (1 + overshoot) to land just past
    the boundary. An image stops as soon as its label changes, so its L2/L-inf norm is its minimal
    perturbation estimate (`result.l2`, `result.linf`; `minimal_perturbation` summarizes them)."""
    if norm not in ("l2", "linf"):
        raise CnnlabError(f"DeepFool norm must be l2 or linf, got '{norm}'.")
    if overshoot < 0:
        raise CnnlabError(f"DeepFool overshoot must be >= 0, got {overshoot}.")
    steps = check_steps(steps)
    with setup_attack(model, x, y=y, batch_size=batch_size) as s:
        x, cls, probs0 = s.x, s.cls, s.probs0
        k = min(candidates, probs0.shape[1])
        order = probs0.argsort(1, descending=True)[:, :k]
        adv, final, taken, ok = x.clone(), probs0.clone(), torch.zeros(len(x), dtype=torch.long), \
            torch.zeros(len(x), dtype=torch.bool)
        passes = 0
        for i in range(0, len(x), batch_size):
            sl = slice(i, i + batch_size)
            a, p, t, f, n = _deepfool_batch(s.model, x[sl], cls[sl], order[sl], steps, overshoot, norm)
            adv[sl], final[sl], taken[sl], ok[sl] = a, p, t, f
            passes += n
    params = {"norm": norm, "steps": steps, "overshoot": overshoot, "candidates": k}
    res = s.result("deepfool" if norm == "l2" else "deepfool-linf", adv, final, ok, taken, passes, params)
    res.params["median_l2"] = minimal_perturbation(res).median_l2
    res.params["median_linf"] = minimal_perturbation(res).median_linf
    return res


def _deepfool_batch(model: Classifier, x: torch.Tensor, cls: torch.Tensor, cand: torch.Tensor, steps: int,
                    overshoot: float, norm: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    n = len(x)
    r_tot = torch.zeros_like(x)
    adv = x.clone()
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    taken = torch.zeros(n, dtype=torch.long, device=x.device)
    final = None
    passes = 0
    for t in range(steps + 1):
        idx = active.nonzero()[:, 0]
        if len(idx) == 0:
            break
        if t == steps:  # last check only
            with torch.no_grad():
                logits = model(adv[idx])
            probs = torch.softmax(logits.float(), 1)
            final = _put(final, idx, probs, n)
            break
        r, pred, probs = deepfool_step(model, adv[idx], cls[idx], cand[idx], norm)
        passes += len(idx)
        final = _put(final, idx, probs, n)
        fooled = pred != cls[idx]
        active[idx[fooled]] = False
        go = idx[~fooled]
        if len(go) == 0:
            break
        r_tot[go] += r[~fooled]
        adv[go] = (x[go] + (1 + overshoot) * r_tot[go]).clamp(0, 1)
        taken[go] += 1
    with torch.no_grad():  # success judged at the returned images
        pred = torch.cat([model(adv[i:i + 256]).argmax(1) for i in range(0, n, 256)])
    return adv.detach(), final, taken.cpu(), (pred != cls).cpu(), passes


def _put(final: torch.Tensor | None, idx: torch.Tensor, probs: torch.Tensor, n: int) -> torch.Tensor:
    if final is None:
        final = torch.zeros(n, probs.shape[1], device=probs.device)
    final[idx] = probs
    return final


@dataclass(repr=False)
class MinimalPerturbation(Result):
    """DeepFool's robustness measure: per-image minimal perturbation norms and their medians (no eps)."""

    n: int
    fooled: int
    median_l2: float
    median_linf: float
    median_linf_255: float
    l2: list[float]
    linf: list[float]

    def to_dict(self) -> dict:
        return asdict(self)

    def summary_rows(self) -> list[tuple[str, object]]:
        return [("n", self.n), ("fooled", self.fooled), ("median_l2", round(self.median_l2, 4)),
                ("median_linf_255", round(self.median_linf_255, 3))]

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """Histograms of the minimal L2 and L-inf perturbation of each image fooled."""
        from .figures import minimal_perturbation_figure
        return minimal_perturbation_figure(self, path)


def minimal_perturbation(result: AttackResult) -> MinimalPerturbation:
    """Median minimal norms over the images DeepFool moved across a boundary (failures count as infinite)."""
    inf = torch.tensor(float("inf"))
    l2 = torch.where(result.success, result.l2.cpu(), inf)
    li = torch.where(result.success, result.linf.cpu(), inf)
    med = (lambda v: float(v.median()) if len(v) else float("nan"))
    return MinimalPerturbation(n=len(result), fooled=int(result.success.sum()), median_l2=med(l2),
                               median_linf=med(li), median_linf_255=med(li) * 255,
                               l2=[round(float(v), 6) for v in l2], linf=[round(float(v), 6) for v in li])


_DEEPFOOL = dict(kind="minimal-perturbation", target="refuses", options=("steps",), steps=50,
                 step_rule="to the nearest linearized boundary, times 1.02")
register(AttackSpec(
    "deepfool", norm="l2", **_DEEPFOOL,
    description="DeepFool: the smallest L2 step across the nearest decision boundary, no eps (Moosavi-Dezfooli 2016)",
    run=lambda m, x, o, **kw: deepfool(m, x, y=o.y, steps=o.steps, **kw)))
register(AttackSpec(
    "deepfool-linf", norm="linf", **_DEEPFOOL,
    description="DeepFool measuring L-inf: the smallest L-inf step across the nearest decision boundary, no eps",
    run=lambda m, x, o, **kw: deepfool(m, x, y=o.y, steps=o.steps, norm="linf", **kw)))
