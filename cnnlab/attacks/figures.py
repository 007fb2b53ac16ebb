"""Pictures of attacks (matplotlib Agg, imported lazily): the seed's original | noise | adversarial rows,
the pixelwise-difference heat map, the trajectory of a descent, the transformation-robustness grid."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .result import AttackResult
    from .transforms import RobustnessTable


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _hwc(t: torch.Tensor):  # noqa: ANN202
    return t.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def _finish(fig, path: str | Path | None):  # noqa: ANN001, ANN202
    if path is None:
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def _short(label: str, n: int = 22) -> str:
    label = label.split(",")[0]
    return label if len(label) <= n else label[: n - 1] + "…"


def attack_rows(result: "AttackResult", path: str | Path | None = None, magnify: float | None = None,
                max_rows: int = 8):
    """One row per image: original (class, p) | perturbation, magnified around grey | adversarial (class, p)."""
    plt = _plt()
    n = min(len(result), max_rows)
    fig, axes = plt.subplots(n, 3, figsize=(9, 3.1 * n), squeeze=False)
    for i in range(n):
        d = result.perturbations[i]
        peak = float(d.abs().max())
        m = magnify or (0.5 / peak if peak > 0 else 1.0)
        oc, fc = int(result.original_class[i]), int(result.final_class[i])
        panels = [
            (result.originals[i], f"original: {_short(result.name_of(oc))}\np = {float(result.original_prob[i]):.3f}"),
            ((0.5 + d * m).clamp(0, 1), f"perturbation ×{m:.0f}\nL∞ = {peak * 255:.2f}/255, L2 = {float(d.norm()):.3f}"),
            (result.images[i], f"{'adversarial' if bool(result.success[i]) else 'attack failed'}: "
                               f"{_short(result.name_of(fc))}\np = {float(result.final_prob[i]):.3f}"),
        ]
        for ax, (img, title) in zip(axes[i], panels):
            ax.imshow(_hwc(img))
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.suptitle(f"{result.method}: {result.success[:n].sum()}/{n} succeeded", fontsize=11)
    fig.tight_layout()
    return _finish(fig, path)


def difference_heatmap(result: "AttackResult", path: str | Path | None = None, max_images: int = 8):
    """|adversarial - original| per pixel (max over RGB), in grey levels out of 255, one panel per image."""
    plt = _plt()
    n = min(len(result), max_images)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    for i in range(n):
        diff = result.perturbations[i].abs().amax(0).cpu() * 255
        ax = axes[0, i]
        im = ax.imshow(diff.numpy(), cmap="inferno", vmin=0)
        ax.set_title(f"|δ| (grey levels): max {float(diff.max()):.2f}\nmean {float(diff.mean()):.3f}", fontsize=9)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _finish(fig, path)


def trajectory_figure(results: list["AttackResult"], path: str | Path | None = None, image: int = 0):
    """Per step: gradient norm (log scale) and the probability of the original class, for each result;
    shows why descent on the probability stalls (its gradient vanishes while p is near 1)."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in results:
        traj = (r.trajectory or [[]])[image]
        if not traj:
            continue
        steps = [s["step"] for s in traj if s["grad_norm"] == s["grad_norm"]]
        norms = [max(s["grad_norm"], 1e-30) for s in traj if s["grad_norm"] == s["grad_norm"]]
        a1.semilogy(steps, norms, marker=".", label=r.method)
        a2.plot([s["step"] for s in traj], [s.get("attacked_class_prob", float("nan")) for s in traj], marker=".",
                label=f"{r.method}")
    a1.set(xlabel="step", ylabel="‖∇‖₂ of the objective", title="gradient norm")
    a2.set(xlabel="step", ylabel="probability", title="probability of the attacked class\n"
           "(the class descended from, or the target)")
    for a in (a1, a2):
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.tight_layout()
    return _finish(fig, path)


def robustness_figure(table: "RobustnessTable", path: str | Path | None = None):
    """Rows: images (original and adversarial); columns: the transformations; titles: top-1 class, p."""
    plt = _plt()
    names = table.transforms
    rows = table.rows
    fig, axes = plt.subplots(len(rows), len(names), figsize=(2.3 * len(names), 2.5 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        for j, t in enumerate(names):
            cell = row["cells"][t]
            ax = axes[i, j]
            ax.imshow(_hwc(table.images[i][t]))
            colour = "tab:red" if cell.get("is_target") else ("tab:green" if cell.get("is_original") else "black")
            ax.set_title(f"{_short(cell['label'], 16)}\np = {cell['prob']:.2f}", fontsize=8, color=colour)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(row["name"], fontsize=8)
            if i == 0:
                ax.set_xlabel("")
                ax.set_title(f"[{t}]\n{_short(cell['label'], 16)}\np = {cell['prob']:.2f}", fontsize=8, color=colour)
    fig.suptitle("top-1 after each transformation (red: adversarial class kept; green: original class back)",
                 fontsize=9)
    fig.tight_layout()
    return _finish(fig, path)
