"""Issue 9's attacks in the method table (DeepFool, Square, spatial, transfer), and the one helper they
share to wrap their tensors into the core's AttackResult."""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

from .result import AttackResult


def build_result(method: str, model: torch.nn.Module, x: torch.Tensor, adv: torch.Tensor, cls: torch.Tensor,
                 targeted: bool, probs0: torch.Tensor, final_probs: torch.Tensor, success: torch.Tensor,
                 steps: torch.Tensor, passes: int, params: dict, t0: float,
                 first_success: torch.Tensor | None = None) -> AttackResult:
    """An AttackResult from what a non-loop attack computed (same fields as the gradient attacks)."""
    from .gradient import _labels
    pred0 = probs0.argmax(1)
    first = first_success if first_success is not None else torch.where(success, steps, torch.full_like(steps, -1))
    return AttackResult(
        method=method, images=adv.detach(), originals=x, success=success.cpu(), steps=steps.cpu(),
        first_success=first.cpu(), original_class=pred0.cpu(),
        original_prob=probs0.gather(1, pred0[:, None])[:, 0].cpu(), final_class=final_probs.argmax(1).cpu(),
        final_prob=final_probs.amax(1).cpu(), labels=_labels(model, probs0.shape[1]),
        target=cls.cpu() if targeted else None, label=None if targeted else cls.cpu(), passes=int(passes),
        params=params, trajectory=None, seconds=time.perf_counter() - t0)


def _deepfool(m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0):  # noqa: ANN001, ANN202
    from .deepfool import deepfool
    _untargeted("deepfool", target)
    return deepfool(m, x, y=y, steps=steps or 50)


def _deepfool_linf(m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0):  # noqa: ANN001, ANN202
    from .deepfool import deepfool
    _untargeted("deepfool-linf", target)
    return deepfool(m, x, y=y, steps=steps or 50, norm="linf")


def _square(m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0):  # noqa: ANN001, ANN202
    from .square import square
    return square(m, x, 8 / 255 if eps is None else eps, queries=steps or 1000, y=y, target=target, seed=seed)


def _spatial(m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0):  # noqa: ANN001, ANN202
    from .spatial import spatial_attack
    _untargeted("spatial", target)
    return spatial_attack(m, x, y=y)


def _transfer(m, x, *, y=None, target=None, eps=None, steps=None, step_size=None, seed=0):  # noqa: ANN001, ANN202
    from .transfer import substitute_attack
    return substitute_attack(m, x, y=y, target=target, eps=8 / 255 if eps is None else eps, steps=steps or 10,
                             seed=seed).result


def _untargeted(method: str, target) -> None:  # noqa: ANN001
    if target is not None:
        from ..errors import CnnlabError
        raise CnnlabError(f"--method {method} is untargeted (it looks for the nearest other class); drop --target.")


#: name -> attack(model, x, *, y, target, eps, steps, step_size, seed) -> AttackResult (methods.py merges it)
METHODS: dict[str, Callable[..., AttackResult]] = {
    "deepfool": _deepfool, "deepfool-linf": _deepfool_linf, "square": _square, "spatial": _spatial,
    "transfer": _transfer,
}
