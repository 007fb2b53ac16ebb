"""The one step/projection core every gradient attack runs on (Madry's PGD loop, Foolbox's design).

An attack is a choice of objective (cross-entropy, a logit or a probability; towards a target or
away from a class), a step rule (raw gradient, its sign, or its L2 direction), a norm ball
(L-infinity, L2 or none) and a start (the image or a random point in the ball). Every iterate is
projected onto the ball and clipped to [0, 1]. Images are attacked as one batch; an image that has
succeeded can stop early (it keeps its first successful iterate), so the cost per image is reported.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import CnnlabError
from ..models.fastpath import chunk_size

LOSSES = ("ce", "logit", "prob")
NORMS = ("linf", "l2")
RULES = ("raw", "sign", "l2")


# -- budgets ------------------------------------------------------------------------------------
def check_eps(eps: float | None, what: str = "eps", norm: str | None = "linf") -> float | None:
    """eps in pixel units: in [0, 1] for L-inf (8/255 = 8 grey levels); any non-negative size for L2."""
    if eps is None:
        return None
    eps = float(eps)
    if norm == "l2" and eps >= 0:
        return eps
    if not 0.0 <= eps <= 1.0:
        raise CnnlabError(f"{what} {eps:g} is outside [0, 1]; pixel values are in [0, 1] (use e.g. 8/255).")
    return eps


def check_steps(steps: int, what: str = "steps") -> int:
    """A positive whole number of steps (or queries), or one clear error."""
    if isinstance(steps, bool) or not isinstance(steps, (int, float)) or not math.isfinite(steps) \
            or int(steps) != steps or steps <= 0:
        raise CnnlabError(f"{what} must be a positive whole number, got {steps}.")
    return int(steps)


# -- objective, step rule, projection ------------------------------------------------------------
def objective(logits: torch.Tensor, cls: torch.Tensor, loss: str, targeted: bool) -> torch.Tensor:
    """Per-image value the attack *ascends*: towards class `cls` if targeted, away from it if not."""
    if loss == "ce":
        v = -F.cross_entropy(logits, cls, reduction="none")
    elif loss == "logit":
        v = logits.gather(1, cls[:, None])[:, 0]
    elif loss == "prob":
        v = torch.softmax(logits, dim=1).gather(1, cls[:, None])[:, 0]
    else:
        raise CnnlabError(f"Unknown attack loss '{loss}'; choose one of {', '.join(LOSSES)}.")
    return v if targeted else -v


def is_success(pred: torch.Tensor, cls: torch.Tensor, targeted: bool) -> torch.Tensor:
    return pred == cls if targeted else pred != cls


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def direction(g: torch.Tensor, rule: str) -> torch.Tensor:
    """The step direction from the gradient: raw (plain gradient steps), sign (L-inf), unit L2 (L2)."""
    if rule == "raw":
        return g
    if rule == "sign":
        return g.sign()
    if rule == "l2":
        return g / _flat_norm(g).clamp_min(1e-12)
    raise CnnlabError(f"Unknown step rule '{rule}'; choose one of {', '.join(RULES)}.")


def project(delta: torch.Tensor, eps: float | None, norm: str | None) -> torch.Tensor:
    """Project perturbations onto the eps-ball of the norm (no ball when eps or norm is None)."""
    if eps is None or norm is None:
        return delta
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        n = _flat_norm(delta)
        return delta * torch.clamp(eps / n.clamp_min(1e-12), max=1.0)
    raise CnnlabError(f"Unknown norm '{norm}'; choose one of {', '.join(NORMS)}.")


def random_start(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    """A uniformly random perturbation inside the ball (Madry et al.'s random start), kept in [0,1]."""
    if norm == "linf":
        d = (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * eps
    else:
        g = torch.randn(x.shape, generator=generator, device=x.device)
        r = torch.rand((len(x),) + (1,) * (x.dim() - 1), generator=generator, device=x.device)
        d = g / _flat_norm(g).clamp_min(1e-12) * eps * r ** (1.0 / x[0].numel())
    return (x + d).clamp(0, 1) - x


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A generator on `device` seeded with `seed` (0 when None): same seed, same random starts and targets."""
    gen = torch.Generator(device=device)
    gen.manual_seed(0 if seed is None else int(seed))
    return gen


# -- the loop ----------------------------------------------------------------------------------
def forward_backward(model: torch.nn.Module, x: torch.Tensor, cls: torch.Tensor, loss: str, targeted: bool,
                     grad: bool, chunk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(logits, objective, its input gradient or None) at images `x`, `chunk` images per pass."""
    logits, gains, grads = [], [], []
    for i in range(0, len(x), chunk):
        xi = x[i:i + chunk].detach().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            li = model(xi)
            gi = objective(li, cls[i:i + chunk], loss, targeted)
        if grad:
            grads.append(torch.autograd.grad(gi.sum(), xi)[0])
        logits.append(li.detach())
        gains.append(gi.detach())
    return torch.cat(logits), torch.cat(gains), (torch.cat(grads) if grad else None)


@dataclass
class LoopOutput:
    """What the loop found, as tensors (wrapped into an AttackResult by the attack functions)."""

    adv: torch.Tensor               # [N,3,H,W] adversarial images (first successful iterate if stopped early)
    success: torch.Tensor           # [N] bool
    steps: torch.Tensor             # [N] gradient steps taken
    first_success: torch.Tensor     # [N] step at which the label first changed / reached the target, -1 never
    passes: int                     # forward+backward passes summed over images
    probs: torch.Tensor             # [N,C] softmax at the returned images (from the loop's own forwards)
    trajectory: list[list[dict]] | None


def gradient_attack(model: torch.nn.Module, x: torch.Tensor, cls: torch.Tensor, *, targeted: bool,
                    loss: str = "ce", rule: str = "sign", norm: str | None = "linf", eps: float | None = None,
                    steps: int = 10, step_size: float = 2 / 255, rand_init: bool = False,
                    early_stop: bool = True, record: bool = False,
                    generator: torch.Generator | None = None, chunk: int | None = None) -> LoopOutput:
    """Iterate x <- clip01(x0 + project(x - x0 + step_size * direction(grad objective))).

    Each iteration runs one forward+backward at the current iterate, checks success there, and steps
    the images still running. With `early_stop` an image stops at its first success (its
    iterate is kept); otherwise all run `steps` steps and success is judged on the last iterate.
    `record` keeps, per image and step, the predicted class, its probability, the objective and the
    gradient's L2 norm (why probability descent stalls: its gradient vanishes when p is near 1).
    `chunk`: images per forward+backward pass (default: `chunk_size(x)` in eval mode, else the whole batch).
    """
    n = len(x)
    # chunks only in eval mode: in training mode BatchNorm's statistics would be per chunk
    chunk = chunk or (len(x) if model.training else chunk_size(x))
    delta = random_start(x, eps, norm, generator) if rand_init and eps else torch.zeros_like(x)
    done = torch.zeros(n, dtype=torch.bool, device=x.device)        # stopped early after success
    first = torch.full((n,), -1, dtype=torch.long, device=x.device)
    taken = torch.zeros(n, dtype=torch.long, device=x.device)
    traj: list[list[dict]] | None = [[] for _ in range(n)] if record else None
    now_ok = torch.zeros(n, dtype=torch.bool, device=x.device)
    probs_at: torch.Tensor | None = None
    passes = 0
    for t in range(steps + 1):
        idx = (~done).nonzero()[:, 0]
        if len(idx) == 0:
            break
        last = t == steps
        full = len(idx) == n  # every image still running: plain tensors, no gathers or scatters
        xa = (x + delta) if full else (x[idx] + delta[idx])
        logits, gain, g = forward_backward(model, xa, cls[idx], loss, targeted, not last, chunk)
        pred = logits.argmax(1)
        probs = torch.softmax(logits.detach().float(), 1)
        if probs_at is None:
            probs_at = torch.zeros(n, probs.shape[1], device=x.device)
        probs_at[idx] = probs
        ok = is_success(pred, cls[idx], targeted)
        now_ok[idx] = ok
        newly = ok & (first[idx] < 0)
        first[idx[newly]] = t
        if not last:
            passes += len(idx)
        if record:
            gn = _flat_norm(g)[:, 0] if not last else torch.full((len(idx),), float("nan"))
            cp = probs.gather(1, cls[idx][:, None])[:, 0]
            for j, i in enumerate(idx.tolist()):
                traj[i].append({"step": t, "class": int(pred[j]), "prob": float(probs[j, pred[j]]),
                                "attacked_class_prob": float(cp[j]),
                                "objective": float(gain[j]), "grad_norm": float(gn[j])})
        if early_stop:
            done[idx[ok]] = True
            keep = ~ok
        else:
            keep = torch.ones_like(ok)
        if last or not keep.any():
            continue
        if full and bool(keep.all()):
            delta = project(delta + step_size * direction(g, rule), eps, norm)
            delta = (x + delta).clamp_(0, 1) - x
            taken += 1
            continue
        run, g = idx[keep], g[keep]
        d = delta[run] + step_size * direction(g, rule)
        d = project(d, eps, norm)
        delta[run] = (x[run] + d).clamp(0, 1) - x[run]
        taken[run] += 1
    adv = (x + delta).detach()
    success = first >= 0 if early_stop else now_ok
    return LoopOutput(adv, success, taken, first, passes, probs_at, traj)
