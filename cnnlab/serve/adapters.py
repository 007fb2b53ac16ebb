"""Thin adapters from the explorer to cnnlab.explain and cnnlab.attacks (no algorithms here).

They turn the library's result objects into what the page shows: one [H,W] heat map, a stack of
feature maps, an AttackResult. Options the page offers are limited to what the library provides.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..attacks import AttackResult
    from ..models import Classifier


def explain_methods() -> list[str]:
    """Every attribution method cnnlab.explain offers by name, in its registry's order."""
    from ..explain import METHODS
    return list(METHODS)


def attack_methods() -> list[dict]:
    """Every registered attack (cnnlab.attacks.ATTACKS): its name, whether it needs / takes a target
    class, its kind, norm, defaults and a one-line description."""
    from ..attacks import ATTACKS
    return [spec.to_dict() for spec in ATTACKS.values()]


def attribution(model: Classifier | torch.nn.Module, x: torch.Tensor, target: int | str | None, method: str,
                layer: str | None = None) -> tuple[torch.Tensor, int]:
    """cnnlab.explain.attribute with the method's quick settings (an interactive page) -> (display map
    [H,W], non-negative; the explained class) of the first image. target None explains the predicted class."""
    from ..explain import attribute, method_spec
    spec = method_spec(method)
    options = spec.pick({**spec.quick, "layer": layer or None})
    result = attribute(model, x, target=target, method=spec.name, **options)
    return result.maps[0].detach().float().cpu(), int(result.targets[0])


def feature_maps(model: Classifier | torch.nn.Module, x: torch.Tensor, layer: str,
                 k: int) -> tuple[torch.Tensor, list[int]]:
    """cnnlab.explain.feature_maps of one layer: the k most active channels [k,h,w] in [0,1] and their indices."""
    from ..explain import feature_maps as explain_feature_maps
    fm = explain_feature_maps(model, x, [layer], k=k)
    name = fm.layers[0]
    return fm.maps[name].detach().float().cpu(), [int(c) for c in fm.channels[name]]


def run_attack(model: Classifier, x: torch.Tensor, method: str, *, eps: float, steps: int,
               target: str | None) -> AttackResult:
    """cnnlab.attacks.attack by name (its own checks and defaults); returns its AttackResult."""
    from ..attacks import attack
    return attack(model, x, method.strip().lower(), target=target, eps=eps, steps=steps)
