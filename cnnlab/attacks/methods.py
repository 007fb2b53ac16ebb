"""Every attack by name, one call shape: `attack(model, x, "pgd", eps=8/255, steps=10, target=...)`."""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import CnnlabError, unknown
from .result import AttackResult


def _gradient():  # noqa: ANN202
    from . import gradient
    return gradient


def _methods() -> dict[str, Callable[..., AttackResult]]:
    g = _gradient()
    from .apgd import apgd
    table: dict[str, Callable[..., AttackResult]] = {
        "logit-descent": lambda m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0,
        keep_going=False: g.logit_descent(m, x, y, step_size=step_size or 0.1, steps=steps or 100,
                                          until_change=not keep_going, seed=seed),
        "prob-descent": lambda m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0,
        keep_going=False: g.prob_descent(m, x, y, step_size=step_size or 0.1, steps=steps or 100,
                                         until_change=not keep_going, seed=seed),
        "logit-ascent": lambda m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0,
        keep_going=False: g.logit_ascent(m, x, target, eps=eps, steps=steps or 100, step_size=step_size,
                                         until_success=not keep_going, seed=seed),
        "prob-ascent": lambda m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0,
        keep_going=False: g.prob_ascent(m, x, target, eps=eps, steps=steps or 100, step_size=step_size,
                                        until_success=not keep_going, seed=seed),
        "fgsm": lambda m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0:
            g.fgsm(m, x, _eps(eps, 8 / 255), y=y, target=target, seed=seed),
        "bim": lambda m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0:
            g.bim(m, x, _eps(eps, 8 / 255), steps=steps or 10, step_size=step_size, y=y, target=target, seed=seed),
        "pgd": lambda m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0:
            g.pgd(m, x, _eps(eps, 8 / 255), steps=steps or 10, step_size=step_size, y=y, target=target, seed=seed),
        "pgd-l2": lambda m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0:
            g.pgd(m, x, _eps(eps, 0.5), steps=steps or 10, step_size=step_size, norm="l2", y=y, target=target,
                  seed=seed),
        "apgd": lambda m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0:
            apgd(m, x, _eps(eps, 8 / 255), steps=steps or 100, y=y, target=target, seed=seed),
        "apgd-l2": lambda m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0:
            apgd(m, x, _eps(eps, 0.5), steps=steps or 100, norm="l2", y=y, target=target, seed=seed),
    }
    table.update(_extra_methods())
    return table


def _extra_methods() -> dict[str, Callable[..., AttackResult]]:
    """Attacks from issue 9 (DeepFool, Square, spatial, transfer) register here when present."""
    try:
        from .more import METHODS
    except ImportError:
        return {}
    return METHODS


def _eps(eps: float | None, default: float) -> float:
    return default if eps is None else eps


#: names of the methods that need a target / cannot take one
NEEDS_TARGET = ("logit-ascent", "prob-ascent")
UNTARGETED_ONLY = ("logit-descent", "prob-descent")


def method_names() -> list[str]:
    return list(_methods())


def attack(model: torch.nn.Module, x: torch.Tensor, method: str = "pgd", *, y: torch.Tensor | None = None,
           target=None, eps: float | None = None, steps: int | None = None,  # noqa: ANN001
           step_size: float | None = None, seed: int | None = 0, keep_going: bool = False) -> AttackResult:
    """Run the attack called `method` (see `method_names()`); unset options take that method's defaults.

    `keep_going` (descent/ascent only) runs all steps instead of stopping at the first change, so the
    trajectory shows which classes appear next (seed 000: "what other classes appear?")."""
    table = _methods()
    if method not in table:
        raise unknown("attack method", method, table)
    if method in NEEDS_TARGET and target is None:
        raise CnnlabError(f"--method {method} pushes the image towards a class: give --target "
                          "(a class name, an index, least-likely or random).")
    if method in UNTARGETED_ONLY and target is not None:
        raise CnnlabError(f"--method {method} moves away from the current class and takes no --target; "
                          f"use {method.replace('descent', 'ascent')} to push towards '{target}'.")
    if steps is not None and (int(steps) != steps or steps <= 0):
        raise CnnlabError(f"--steps must be a positive whole number, got {steps}.")
    kw = {"keep_going": True} if keep_going else {}
    if keep_going and method not in (*NEEDS_TARGET, *UNTARGETED_ONLY):
        raise CnnlabError(f"--keep-going applies to the descent/ascent methods, not --method {method}.")
    return table[method](model, x, y=y, target=target, eps=eps, steps=steps, step_size=step_size, seed=seed, **kw)
