"""The attacks section of `cnnlab tour`: a photo forced to 'toaster' by gradient ascent on that logit,
and the untargeted descent on the logit (and on the probability) of its own class, with figures; a
few seconds on two CPU cores."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..models.classifier import Classifier
from .figures import trajectory_figure
from .gradient import logit_ascent, logit_descent, prob_descent
from .result import AttackResult


def tour_section(model: Classifier | torch.nn.Module, photos: dict[str, torch.Tensor], out: str | Path,
                 target: str = "toaster", photo: str = "chelsea", max_steps: int = 20) -> dict:
    """Force `photo` (default chelsea) to `target` by gradient ascent on its logit (raw steps, eta 0.1,
    clipped to [0,1]), and run the untargeted descent on the logit and on the probability of its class.

    Writes out/figures/attack_toaster.png, attack_toaster_difference.png, attack_descent.png and
    attack_descent_gradients.png; returns a JSON-able summary."""
    t0 = time.perf_counter()
    out = Path(out)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    name = photo if photo in photos else next(iter(photos))
    x = photos[name]
    x = x if x.dim() == 4 else x[None]
    forced = logit_ascent(model, x, target, steps=max_steps, step_size=0.1)
    descent = logit_descent(model, x, steps=max_steps, step_size=0.1)
    pdescent = prob_descent(model, x, steps=max_steps, step_size=0.1)
    files = {
        "attack_toaster": str(forced.figure(figs / "attack_toaster.png")),
        "attack_toaster_difference": str(forced.difference_figure(figs / "attack_toaster_difference.png")),
        "attack_descent": str(descent.figure(figs / "attack_descent.png")),
        "attack_descent_gradients": str(trajectory_figure([descent, pdescent], figs / "attack_descent_gradients.png")),
    }

    def brief(r: AttackResult) -> dict:
        d = r.to_dict()
        return {k: d[k] for k in ("method", "success", "steps", "original", "final", "linf", "l2")} | {
            "classes_seen": d["images"][0].get("classes_seen", []),
            "grad_norms": [round(s["grad_norm"], 6) for s in d["trajectory"] if s["grad_norm"] == s["grad_norm"]]}

    return {"photo": name, "target": target, "forced": brief(forced), "logit_descent": brief(descent),
            "prob_descent": brief(pdescent), "figures": files, "seconds": round(time.perf_counter() - t0, 2),
            "note": ("Descent on the probability takes steps proportional to its gradient, which shrinks "
                     "as p(1-p) when the class is confident, so it moves far less than descent on the logit.")}
