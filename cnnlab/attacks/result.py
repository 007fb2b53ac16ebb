"""AttackResult: what an attack did to each image, as data first (JSON via .to_dict()), figures second."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..results import Result, percent
from .figures import attack_rows, difference_heatmap

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(repr=False)
class AttackResult(Result):
    """Adversarial images and, per image, success, steps, perturbation norms and classes before/after.

    `images`/`originals` are float [N,3,H,W] in [0,1]; `target` is the class each image was pushed
    towards (targeted attacks) and `label` the class it was pushed away from (untargeted).
    `trajectory[i]` lists, per step, the predicted class, its probability, the objective and the
    gradient norm (kept for single-image attacks; None for large batches).
    """

    method: str
    images: torch.Tensor
    originals: torch.Tensor
    success: torch.Tensor
    steps: torch.Tensor
    first_success: torch.Tensor
    original_class: torch.Tensor
    original_prob: torch.Tensor
    final_class: torch.Tensor
    final_prob: torch.Tensor
    labels: list[str]
    target: torch.Tensor | None = None
    label: torch.Tensor | None = None
    passes: int = 0
    params: dict = field(default_factory=dict)
    trajectory: list[list[dict]] | None = None
    seconds: float = 0.0

    # -- derived -----------------------------------------------------------------------------------
    @property
    def perturbations(self) -> torch.Tensor:
        return self.images - self.originals

    @property
    def linf(self) -> torch.Tensor:
        return self.perturbations.flatten(1).abs().amax(1)

    @property
    def l2(self) -> torch.Tensor:
        return self.perturbations.flatten(1).norm(dim=1)

    @property
    def targeted(self) -> bool:
        return self.target is not None

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean()) if len(self.success) else 0.0

    def __len__(self) -> int:
        return len(self.images)

    def name_of(self, c: int) -> str:
        return self.labels[c] if 0 <= c < len(self.labels) else str(c)

    # -- data ----------------------------------------------------------------------------------------
    def per_image(self) -> list[dict]:
        rows = []
        for i in range(len(self)):
            oc, fc = int(self.original_class[i]), int(self.final_class[i])
            row: dict[str, Any] = {
                "success": bool(self.success[i]), "steps": int(self.steps[i]),
                "first_success_step": int(self.first_success[i]) if int(self.first_success[i]) >= 0 else None,
                "original": {"index": oc, "label": self.name_of(oc), "prob": round(float(self.original_prob[i]), 6)},
                "final": {"index": fc, "label": self.name_of(fc), "prob": round(float(self.final_prob[i]), 6)},
                "linf": float(self.linf[i]), "linf_255": round(float(self.linf[i]) * 255, 3),
                "l2": float(self.l2[i]),
            }
            if self.target is not None:
                t = int(self.target[i])
                row["target"] = {"index": t, "label": self.name_of(t)}
            if self.trajectory is not None:
                row["trajectory"] = [{**s, "label": self.name_of(s["class"])} for s in self.trajectory[i]]
                row["classes_seen"] = _classes_seen(self.trajectory[i], self.name_of)
            rows.append(row)
        return rows

    def summary(self) -> dict:
        return {"method": self.method, "n": len(self), "targeted": self.targeted,
                "success_rate": self.success_rate,
                "mean_steps": float(self.steps.float().mean()) if len(self) else 0.0,
                "linf": float(self.linf.mean()) if len(self) else 0.0,
                "l2": float(self.l2.mean()) if len(self) else 0.0,
                "passes_per_image": self.passes / max(1, len(self)), "seconds": round(self.seconds, 3),
                "params": self.params}

    def to_dict(self) -> dict:
        """JSON-serializable: the summary plus one entry per image (no tensors)."""
        d = self.summary()
        d["images"] = self.per_image()
        if len(self) == 1:  # one image: its fields at the top level too (what `cnnlab attack` prints)
            one = d["images"][0]
            d.update({k: one[k] for k in ("success", "steps", "original", "final", "linf", "l2")})
            d["trajectory"] = one.get("trajectory", [])
        return d

    def summary_rows(self) -> list[tuple[str, Any]]:
        rows: list[tuple[str, Any]] = [("method", self.method), ("images", len(self)),
                                       ("success_rate", percent(self.success_rate))]
        if len(self) == 1:
            oc, fc = int(self.original_class[0]), int(self.final_class[0])
            rows += [("original", f"{self.name_of(oc)} ({float(self.original_prob[0]):.3f})"),
                     ("final", f"{self.name_of(fc)} ({float(self.final_prob[0]):.3f})")]
        if self.targeted:
            rows.append(("target", ", ".join(sorted({self.name_of(int(t)) for t in self.target}))[:60]))
        s = self.summary()
        return rows + [("mean_steps", round(s["mean_steps"], 1)), ("linf_255", round(s["linf"] * 255, 2)),
                       ("l2", round(s["l2"], 4)), ("seconds", round(self.seconds, 2))]

    # -- pictures ------------------------------------------------------------------------------------
    def figure(self, path: str | Path | None = None, magnify: float | None = None) -> Figure | Path:
        """Rows of [original (class, p) | perturbation, magnified | adversarial (class, p)]."""
        return attack_rows(self, path, magnify)

    def difference_figure(self, path: str | Path | None = None) -> Figure | Path:
        """Heat map of the pixelwise difference |adv - original| (max over channels), per image."""
        return difference_heatmap(self, path)


def _classes_seen(traj: list[dict], name_of: Callable[[int], str]) -> list[dict]:
    """The sequence of predicted classes over the steps, each with the first step it appeared."""
    seen, out = None, []
    for s in traj:
        if s["class"] != seen:
            seen = s["class"]
            out.append({"step": s["step"], "index": seen, "label": name_of(seen)})
    return out
