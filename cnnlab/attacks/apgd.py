"""APGD-CE (Croce & Hein 2020, the first attack of AutoAttack): PGD with momentum and a step size that
halves itself when progress stalls, so evaluations need no step-size tuning. Uses the core's
objective, step direction and projection; stops each image at its first success."""
from __future__ import annotations

import math

import torch

from ..models.classifier import Classifier, Target
from .core import LoopOutput, direction, grad_norm_entry, is_success, objective, project, random_start
from .gradient import run_attack
from .registry import AttackSpec, register
from .result import AttackResult


def checkpoints(steps: int) -> list[int]:
    """Iterations where the step size is reconsidered: p0=0, p1=0.22, p_{j+1}=p_j+max(p_j-p_{j-1}-0.03, 0.06)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(q * steps) for q in p[1:] if math.ceil(q * steps) <= steps and q * steps > 0})


def apgd_engine(model: torch.nn.Module, x: torch.Tensor, cls: torch.Tensor, *, targeted: bool, loss: str = "ce",
                norm: str = "linf", eps: float = 8 / 255, steps: int = 100, rand_init: bool = True,
                early_stop: bool = True, record: bool = False, generator: torch.Generator | None = None,
                rho: float = 0.75, alpha: float = 0.75, **_: object) -> LoopOutput:
    """The APGD loop on one batch; returns the same LoopOutput as the core's gradient_attack."""
    n = len(x)
    rule = "sign" if norm == "linf" else "l2"
    ck = set(checkpoints(steps))
    adv = x.clone()
    first = torch.full((n,), -1, dtype=torch.long, device=x.device)
    taken = torch.zeros(n, dtype=torch.long, device=x.device)
    probs_at: torch.Tensor | None = None
    traj: list[list[dict]] | None = [[] for _ in range(n)] if record else None
    passes = 0

    def clip(x0: torch.Tensor, xa: torch.Tensor) -> torch.Tensor:
        return (x0 + project(xa - x0, eps, norm)).clamp(0, 1)

    def evaluate(xa: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xa = xa.detach().requires_grad_(True)
        logits = model(xa)
        f = objective(logits, c, loss, targeted)
        g, = torch.autograd.grad(f.sum(), xa)
        return f.detach(), g, logits.detach()

    idx = torch.arange(n, device=x.device)
    x0, c = x, cls
    xc = x + (random_start(x, eps, norm, generator) if rand_init and eps else 0)
    f, g, logits = evaluate(xc, c)
    passes += n
    st = {"x0": x0, "c": c, "xc": xc, "xp": xc.clone(), "f": f, "g": g, "fmax": f.clone(), "xmax": xc.clone(),
          "gmax": g.clone(), "eta": torch.full((n,), 2 * eps, device=x.device), "cnt": torch.zeros(n, device=x.device),
          "fmax_ck": f.clone(), "reduced": torch.zeros(n, dtype=torch.bool, device=x.device)}
    last_ck = 0
    for k in range(steps + 1):
        # success and bookkeeping at the current iterate (k steps taken)
        probs = torch.softmax(logits.float(), 1)
        if probs_at is None:
            probs_at = torch.zeros(n, probs.shape[1], device=x.device)
        pred = probs.argmax(1)
        ok = is_success(pred, st["c"], targeted)
        new = ok & (first[idx] < 0)
        first[idx[new]] = k
        if record:
            gn = st["g"].flatten(1).norm(dim=1)
            for j, i in enumerate(idx.tolist()):
                traj[i].append({"step": k, "class": int(pred[j]), "prob": float(probs[j, pred[j]]),
                                "objective": float(st["f"][j]),
                                **grad_norm_entry(float(gn[j]) if k < steps else None)})
        # images that are done keep this iterate; unsuccessful ones at the end keep their best-loss point
        stop = ok if early_stop else torch.zeros_like(ok)
        if k == steps:
            stop = torch.ones_like(ok)
        if stop.any():
            keep_best = stop & ~ok
            out_x = torch.where(keep_best.view(-1, 1, 1, 1), st["xmax"], st["xc"])
            adv[idx[stop]] = out_x[stop].detach()
            probs_at[idx[stop]] = probs[stop]
            if keep_best.any():  # the reported probabilities belong to the returned (best-loss) image
                with torch.no_grad():
                    probs_at[idx[keep_best]] = torch.softmax(model(st["xmax"][keep_best]).float(), 1)
            if k == steps:
                break
            live = ~stop
            idx = idx[live]
            st = {key: v[live] for key, v in st.items()}
            logits = logits[live]
            if len(idx) == 0:
                break
        if k == steps:
            break
        # one APGD step with momentum
        xc, xp = st["xc"], st["xp"]
        eta = st["eta"].view(-1, 1, 1, 1)
        z = clip(st["x0"], xc + eta * direction(st["g"], rule))
        xn = z if k == 0 else clip(st["x0"], xc + alpha * (z - xc) + (1 - alpha) * (xc - xp))
        f_new, g_new, logits = evaluate(xn, st["c"])
        passes += len(idx)
        taken[idx] += 1
        st["cnt"] += (f_new > st["f"]).float()
        better = f_new > st["fmax"]
        st["fmax"] = torch.where(better, f_new, st["fmax"])
        st["xmax"][better], st["gmax"][better] = xn[better], g_new[better]
        st["xp"], st["xc"], st["f"], st["g"] = xc, xn, f_new, g_new
        if k + 1 in ck:  # halve the step where progress stalled and restart from the best point
            h = k + 1 - last_ck
            cond = (st["cnt"] < rho * h) | (~st["reduced"] & (st["fmax"] <= st["fmax_ck"]))
            st["reduced"], st["fmax_ck"] = cond, st["fmax"].clone()
            st["eta"] = torch.where(cond, st["eta"] / 2, st["eta"])
            st["xc"][cond], st["g"][cond], st["xp"][cond] = st["xmax"][cond], st["gmax"][cond], st["xmax"][cond]
            st["f"] = torch.where(cond, st["fmax"], st["f"])
            st["cnt"] = torch.zeros_like(st["cnt"])
            last_ck = k + 1
    success = first >= 0
    return LoopOutput(adv.detach(), success, taken, first, passes, probs_at, traj)


def apgd(model: Classifier | torch.nn.Module, x: torch.Tensor, eps: float | None = None, *, steps: int = 100,
         norm: str = "linf", y: torch.Tensor | None = None, target: Target = None, restarts: int = 1,
         seed: int | None = 0, batch_size: int = 256) -> AttackResult:
    """APGD with the cross-entropy loss (targeted: CE towards the target), L-inf or L2, random start.

    Stronger than PGD at the same budget: use it to evaluate robustness (PGD over-reports it)."""
    eps = eps if eps is not None else (8 / 255 if norm == "linf" else 0.5)
    return run_attack("apgd" if norm == "linf" else "apgd-l2", model, x, y=y, target=target, loss="ce",
                      rule="sign" if norm == "linf" else "l2", norm=norm, eps=eps, steps=steps, step_size=None,
                      rand_init=True, restarts=restarts, early_stop=True, seed=seed, batch_size=batch_size,
                      engine=apgd_engine)


_APGD = dict(kind="gradient", target="allows", options=("eps", "steps"), steps=100,
             step_rule="adaptive: 2 * eps, halved where progress stalls")
register(AttackSpec(
    "apgd", norm="linf", eps=8 / 255, **_APGD,
    description="APGD-CE in the L-inf ball: PGD with momentum and a self-tuning step (Croce & Hein 2020)",
    run=lambda m, x, o, **kw: apgd(m, x, o.eps, steps=o.steps, y=o.y, target=o.target, seed=o.seed, **kw)))
register(AttackSpec(
    "apgd-l2", norm="l2", eps=0.5, **_APGD,
    description="APGD-CE in the L2 ball: PGD with momentum and a self-tuning step (Croce & Hein 2020)",
    run=lambda m, x, o, **kw: apgd(m, x, o.eps, steps=o.steps, norm="l2", y=o.y, target=o.target, seed=o.seed,
                                   **kw)))
