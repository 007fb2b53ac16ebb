"""Thin adapters from the explorer to cnnlab.explain and cnnlab.attacks (no algorithms here).

They turn the library's result objects into what the page shows: one [H,W] heat map, a stack of
feature maps, an AttackResult. Options the page offers are limited to what the library provides.
"""
from __future__ import annotations

import inspect

import torch

from ..errors import CnnlabError, unknown

#: Attack functions of cnnlab.attacks the page offers, and whether each needs a target class.
ATTACKS = {"fgsm": False, "bim": False, "pgd": False, "logit-ascent": True, "prob-ascent": True,
           "deepfool": False, "cw": False, "apgd": False}
#: Options the explorer passes to each attribution method (kept quick for an interactive page).
EXPLAIN_OPTIONS = {"smoothgrad": {"samples": 12}, "ig": {"steps": 24}}


def explain_methods() -> list[str]:
    try:
        from ..explain import METHODS
    except ImportError:
        return []
    return list(METHODS)


def attack_methods() -> list[dict]:
    """The attacks cnnlab.attacks provides that the page can run, with whether they take a target."""
    try:
        from .. import attacks
    except ImportError:
        return []
    return [{"name": name, "needs_target": needs}
            for name, needs in ATTACKS.items() if callable(getattr(attacks, name.replace("-", "_"), None))]


def attribution(model: torch.nn.Module, x: torch.Tensor, target: int | str | None, method: str,
                layer: str | None = None) -> tuple[torch.Tensor, int]:
    """cnnlab.explain.attribute -> (display map [H,W], non-negative; the explained class) of the first image.
    target None explains the predicted class."""
    from ..explain import attribute
    opts = dict(EXPLAIN_OPTIONS.get(method, {}))
    if layer and method == "gradcam":
        opts["layer"] = layer
    result = attribute(model, x, target=target, method=method, **opts)
    return result.maps[0].detach().float().cpu(), int(result.targets[0])


def feature_maps(model: torch.nn.Module, x: torch.Tensor, layer: str, k: int) -> tuple[torch.Tensor, list[int]]:
    """Outputs of `layer` for the first image: the k most active channels [k,h,w] and their indices."""
    from .. import explain
    if hasattr(explain, "feature_maps"):
        fm = explain.feature_maps(model, x, [layer], k=k)
        maps, channels = _maps_of(fm, layer)
        if maps is not None:
            return maps, channels
    from ..explain.hooks import frozen_eval, run_until
    with frozen_eval(model), torch.no_grad():
        act = run_until(model, x, [layer]).get(layer)
    if act.dim() != 4:
        raise CnnlabError(f"Layer '{layer}' outputs shape {list(act.shape)}, not feature maps; choose one of: "
                          f"{', '.join(model.layers())}.")
    a = act[0].float()
    channels = a.mean((1, 2)).topk(min(k, a.shape[0])).indices.tolist()
    return a[channels].cpu(), channels


def _maps_of(fm: object, layer: str) -> tuple[torch.Tensor | None, list[int]]:
    """Read a feature-maps result of cnnlab.explain: .maps/.layers keyed by layer name, or a tensor."""
    maps = getattr(fm, "maps", fm)
    if isinstance(maps, dict):
        maps = maps.get(layer, next(iter(maps.values()), None))
    channels = getattr(fm, "channels", None)
    if isinstance(channels, dict):
        channels = channels.get(layer, next(iter(channels.values()), None))
    if isinstance(maps, (list, tuple)) and maps and isinstance(maps[0], torch.Tensor):
        maps = maps[0]
    if not isinstance(maps, torch.Tensor):
        return None, []
    maps = maps.detach().float().cpu()
    while maps.dim() > 3:
        maps = maps[0]
    if isinstance(channels, torch.Tensor):
        channels = channels.flatten().tolist()
    if channels and isinstance(channels[0], (list, tuple)):
        channels = list(channels[0])
    return maps, [int(c) for c in (channels or range(len(maps)))]


def run_attack(model: torch.nn.Module, x: torch.Tensor, method: str, *, eps: float, steps: int,
               target: str | None):
    """Call cnnlab.attacks.<method> with the options its signature takes; returns its AttackResult."""
    from .. import attacks
    key = method.strip().lower()
    if key not in ATTACKS or not callable(getattr(attacks, key.replace("-", "_"), None)):
        raise unknown("attack method", method, [a["name"] for a in attack_methods()])
    fn = getattr(attacks, key.replace("-", "_"))
    if ATTACKS[key] and target is None:
        raise CnnlabError(f"Attack '{key}' pushes the image towards a class; pick a target class.")
    params = inspect.signature(fn).parameters
    kwargs: dict = {}
    if "eps" in params:
        kwargs["eps"] = eps
    if "steps" in params and key != "fgsm":
        kwargs["steps"] = steps
    if target is not None:
        if "target" not in params:
            raise CnnlabError(f"Attack '{key}' is untargeted; clear the target class or choose pgd or bim.")
        kwargs["target"] = target
    return fn(model, x, **kwargs)
