"""Adversarial training hooks for the trainer: an adversary per batch, and robust accuracy.

    adversary = make_adversary("pgd", eps=8/255, steps=7, step_size=2/255)
    x_adv = adversary(model, x, y)        # train on x_adv instead of (or with) x

The adversary runs in the model's current mode (train mode in the fit loop, as in Madry et al. and
Wong et al.), with the parameters frozen so no weight gradients are computed, and restores them.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from ..errors import CnnlabError
from ..models.classifier import Classifier
from ..models.wrap import as_classifier
from .core import check_eps, check_steps, gradient_attack, make_generator

Adversary = Callable[[Classifier | torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]

ADVERSARIES = ("pgd", "fgsm-rs")


def _pgd_batch(model: Classifier | torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
               step_size: float, rand_init: bool, generator: torch.Generator, eval_mode: bool) -> torch.Tensor:
    """Full-length PGD on one batch (no early stop: training wants the high-loss point, not the first miss)."""
    model = as_classifier(model)
    with model.frozen(eval_mode=eval_mode):
        out = gradient_attack(model, x.detach(), y, targeted=False, loss="ce", rule="sign", norm="linf",
                              eps=eps, steps=steps, step_size=step_size, rand_init=rand_init,
                              early_stop=False, generator=generator)
    return out.adv


class PGDAdversary:
    """Madry et al. 2018: k steps of signed gradient ascent on the CE loss from a random start."""

    def __init__(self, eps: float, steps: int, step_size: float | None = None, seed: int = 0) -> None:
        self.eps, self.steps = eps, steps
        self.step_size = step_size if step_size is not None else 2.5 * eps / steps
        self.seed, self._gen = seed, None
        self.passes = 0

    def __call__(self, model: Classifier | torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gen = self._generator(x.device)
        self.passes += len(x) * self.steps
        return _pgd_batch(model, x, y, self.eps, self.steps, self.step_size, True, gen, eval_mode=False)

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._gen is None or self._gen.device != device:
            self._gen = make_generator(self.seed, device)
        return self._gen

    def status(self) -> dict:
        return {"method": "pgd", "eps": self.eps, "steps": self.steps, "step_size": self.step_size,
                "passes": self.passes}


class FGSMRSAdversary(PGDAdversary):
    """Wong et al. 2020 "fast is better than free": one FGSM step of 1.25*eps from a uniform random start.

    Guard against catastrophic overfitting (the model learns to defeat FGSM alone: FGSM accuracy
    soars while PGD accuracy collapses to ~0 within an epoch). Every `check_every` batches the
    adversary measures, in eval mode on that batch, accuracy under its own FGSM-RS and under PGD-
    `check_steps`; if FGSM accuracy exceeds PGD accuracy by more than `gap` (0.3 by default; healthy
    runs show a few points) it warns once and switches to 2-step PGD for the rest of training, which
    Wong et al. and later work (e.g. Andriushchenko & Flammarion 2020) report does not overfit this way.
    Every check is kept in `history`, and `status()` tells the trainer what happened.
    """

    def __init__(self, eps: float, steps: int = 1, step_size: float | None = None, seed: int = 0,
                 check_every: int = 50, check_steps: int = 5, gap: float = 0.3) -> None:
        super().__init__(eps, 1, step_size if step_size is not None else 1.25 * eps, seed)
        self.check_every, self.check_steps, self.gap = check_every, check_steps, gap
        self.calls = 0
        self.fallback = False
        self.history: list[dict] = []

    def __call__(self, model: Classifier | torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gen = self._generator(x.device)
        self.calls += 1
        if self.fallback:
            self.passes += 2 * len(x)
            return _pgd_batch(model, x, y, self.eps, 2, self.eps / 2, True, gen, eval_mode=False)
        self.passes += len(x)
        x_adv = _pgd_batch(model, x, y, self.eps, 1, self.step_size, True, gen, eval_mode=False)
        if self.check_every and self.calls % self.check_every == 1:
            self._check(model, x, y, gen)
        return x_adv

    def _check(self, model: Classifier | torch.nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> None:
        n = min(len(x), 128)
        x, y = x[:n], y[:n]
        fg = _pgd_batch(model, x, y, self.eps, 1, self.step_size, True, gen, eval_mode=True)
        pg = _pgd_batch(model, x, y, self.eps, self.check_steps, 2.5 * self.eps / self.check_steps, True, gen,
                        eval_mode=True)
        model = as_classifier(model)
        with model.frozen(), torch.no_grad():
            acc_f = float((model(fg).argmax(1) == y).float().mean())
            acc_p = float((model(pg).argmax(1) == y).float().mean())
        self.passes += n * (1 + self.check_steps)
        overfit = acc_f - acc_p > self.gap
        self.history.append({"batch": self.calls, "fgsm_top1": acc_f, "pgd_top1": acc_p, "overfitting": overfit})
        if overfit:
            self.fallback = True
            warnings.warn(f"fgsm-rs: catastrophic overfitting detected at batch {self.calls} (FGSM accuracy "
                          f"{acc_f:.0%} vs PGD-{self.check_steps} {acc_p:.0%}); switching to 2-step PGD.",
                          stacklevel=2)

    def status(self) -> dict:
        return {"method": "fgsm-rs", "eps": self.eps, "step_size": self.step_size, "passes": self.passes,
                "catastrophic_overfitting": self.fallback, "checks": self.history[-5:]}


def make_adversary(method: str, eps: float, steps: int = 10, step_size: float | None = None,
                   seed: int = 0) -> Adversary:
    """An adversary `(model, x in [0,1], y) -> x_adv` for adversarial training: 'pgd' or 'fgsm-rs'."""
    eps = check_eps(eps)
    if method == "pgd":
        return PGDAdversary(eps, check_steps(steps), step_size, seed)
    if method in ("fgsm-rs", "fgsm_rs", "fast"):
        return FGSMRSAdversary(eps, 1, step_size, seed)
    raise CnnlabError(f"Unknown adversarial training method '{method}'; choose one of {', '.join(ADVERSARIES)}.")


def robust_accuracy(model: Classifier | torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                    steps: int = 10, step_size: float | None = None, batch_size: int = 256, seed: int = 0) -> float:
    """Accuracy under PGD-`steps` L-inf eps (random start, step 2.5*eps/steps), in eval mode (restored).

    An image counts as robust only if every iterate of the attack is still classified correctly."""
    model = as_classifier(model)
    eps = check_eps(eps)
    steps = check_steps(steps)
    step_size = step_size if step_size is not None else 2.5 * eps / steps
    gen = make_generator(seed, model.device)
    robust = 0
    with model.frozen():
        for i in range(0, len(x), batch_size):
            xb = model.check_images(x[i:i + batch_size])
            yb = torch.as_tensor(y[i:i + batch_size], dtype=torch.long, device=model.device)
            out = gradient_attack(model, xb, yb, targeted=False, loss="ce", rule="sign", norm="linf", eps=eps,
                                  steps=steps, step_size=step_size, rand_init=eps > 0, early_stop=True,
                                  generator=gen)
            robust += int((~out.success).sum())
    return robust / max(1, len(x))
