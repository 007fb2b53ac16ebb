"""Pictures of attacks, through cnnlab.figures (matplotlib's object API; no pyplot, no backend switch):
original | perturbation | adversarial rows, the pixelwise-difference heat map, the trajectory of a
descent, the transformation-robustness grid, an adversarial patch and fooling images, robust accuracy
against eps and the spread of minimal perturbations."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..figures import finish, hwc, new_figure, short_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .deepfool import MinimalPerturbation
    from .evaluate import RobustnessCurve
    from .fooling import FoolingResult
    from .patch import PatchResult
    from .result import AttackResult
    from .transforms import RobustnessTable


def attack_rows(result: AttackResult, path: str | Path | None = None, magnify: float | None = None,
                max_rows: int = 8) -> Figure | Path:
    """One row per image: original (class, p) | perturbation, magnified around grey | adversarial (class, p)."""
    n = min(len(result), max_rows)
    fig, axes = new_figure(n, 3, figsize=(9, 3.1 * n + 0.3), layout="constrained")  # suptitle clear of titles
    for i in range(n):
        d = result.perturbations[i]
        peak = float(d.abs().max())
        m = magnify or (0.5 / peak if peak > 0 else 1.0)
        oc, fc = int(result.original_class[i]), int(result.final_class[i])
        panels = [
            (result.originals[i], f"original: {short_label(result.name_of(oc))}\n"
                                  f"p = {float(result.original_prob[i]):.3f}"),
            ((0.5 + d * m).clamp(0, 1), f"perturbation ×{m:.0f}\nL∞ = {peak * 255:.2f}/255, L2 = {float(d.norm()):.3f}"),
            (result.images[i], f"{'adversarial' if bool(result.success[i]) else 'attack failed'}: "
                               f"{short_label(result.name_of(fc))}\np = {float(result.final_prob[i]):.3f}"),
        ]
        for ax, (img, title) in zip(axes[i], panels):
            ax.imshow(hwc(img))
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.suptitle(f"{result.method}: {result.success[:n].sum()}/{n} succeeded", fontsize=11)
    return finish(fig, path)


def difference_heatmap(result: AttackResult, path: str | Path | None = None,
                       max_images: int = 8) -> Figure | Path:
    """|adversarial - original| per pixel (max over RGB), in grey levels out of 255, one panel per image."""
    n = min(len(result), max_images)
    fig, axes = new_figure(1, n, figsize=(3.6 * n, 3.2))
    for i in range(n):
        diff = result.perturbations[i].abs().amax(0).cpu() * 255
        ax = axes[0, i]
        im = ax.imshow(diff.numpy(), cmap="inferno", vmin=0)
        ax.set_title(f"|δ| (grey levels): max {float(diff.max()):.2f}\nmean {float(diff.mean()):.3f}", fontsize=9)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return finish(fig, path)


def trajectory_figure(results: list[AttackResult], path: str | Path | None = None,
                      image: int = 0) -> Figure | Path:
    """Per step: gradient norm (log scale) and the probability of the original class, for each result;
    shows why descent on the probability stalls (its gradient vanishes while p is near 1)."""
    fig, axes = new_figure(1, 2, figsize=(10, 3.6))
    a1, a2 = axes[0]
    for r in results:
        traj = (r.trajectory or [[]])[image]
        if not traj:
            continue
        steps = [s["step"] for s in traj if s.get("grad_norm") is not None]
        norms = [max(s["grad_norm"], 1e-30) for s in traj if s.get("grad_norm") is not None]
        a1.semilogy(steps, norms, marker=".", label=r.method)
        a2.plot([s["step"] for s in traj], [s.get("attacked_class_prob", float("nan")) for s in traj], marker=".",
                label=f"{r.method}")
    start = results[0].start_point if results else "original"
    xlabel = "step (0: the random start, not the original)" if start == "random start" else "step (0: the original)"
    a1.set(xlabel=xlabel, ylabel="‖∇‖₂ of the objective", title="gradient norm")
    a2.set(xlabel=xlabel, ylabel="probability", title="probability of the attacked class\n"
           "(the class descended from, or the target)")
    for a in (a1, a2):
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.tight_layout()
    return finish(fig, path)


def robustness_figure(table: RobustnessTable, path: str | Path | None = None) -> Figure | Path:
    """Rows: images (original and adversarial); columns: the transformations, named once above the top
    row; each panel titled with the top-1 class and p (constrained layout: titles never reach the row
    above, and the suptitle stays above the column names)."""
    names = table.transforms
    rows = table.rows
    fig, axes = new_figure(len(rows), len(names), figsize=(2.3 * len(names), 2.75 * len(rows) + 0.6),
                           layout="constrained")
    for i, row in enumerate(rows):
        for j, t in enumerate(names):
            cell = row["cells"][t]
            ax = axes[i, j]
            ax.imshow(hwc(table.images[i][t]))
            colour = "tab:red" if cell.get("is_target") else ("tab:green" if cell.get("is_original") else "black")
            title = f"{short_label(cell['label'], 16)}\np = {cell['prob']:.2f}"
            ax.set_title(f"[{t}]\n{title}" if i == 0 else title, fontsize=8, color=colour)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(row["name"], fontsize=8)
    fig.suptitle("top-1 after each transformation (red: adversarial class kept; green: original class back)",
                 fontsize=9)
    return finish(fig, path)


def patch_figure(result: PatchResult, path: str | Path | None = None) -> Figure | Path:
    """The patch, then held-out images before / with the patch (predicted class and probability)."""
    k = 0 if result.examples is None else min(6, len(result.examples))
    fig, axes = new_figure(2, k + 1, figsize=(2.2 * (k + 1), 5.0), layout="constrained")
    axes[0, 0].imshow(hwc(result.patch))
    axes[0, 0].set_title(f"patch → {short_label(result.target_label)}\n{result.area:.0%} of the image", fontsize=8)
    axes[1, 0].axis("off")
    axes[1, 0].text(0, 0.5, f"held-out success\n{result.heldout_success:.1%}\n({result.heldout_n} images ×\n"
                            f"{result.heldout_placements} placements)", fontsize=8)
    for j in range(k):
        axes[0, j + 1].imshow(hwc(result.example_originals[j]))
        axes[0, j + 1].set_title("original", fontsize=8)
        lab, p = result.example_pred[j]
        axes[1, j + 1].imshow(hwc(result.examples[j]))
        axes[1, j + 1].set_title(f"with patch: {short_label(lab, 12)} {p:.2f}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return finish(fig, path)


def fooling_figure(result: FoolingResult, path: str | Path | None = None) -> Figure | Path:
    """The fooling images in a row, each titled with the class and the model's confidence."""
    n = len(result.images)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig, axes = new_figure(rows, cols, figsize=(2.4 * cols, 2.8 * rows + 0.3), layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(hwc(result.images[i]), interpolation="nearest")
        ax.set_title(f"{short_label(result.target_labels[i], 16)}\n{result.confidence[i]:.2%}", fontsize=8)
    fig.suptitle(f"fooling images ({result.method})", fontsize=9)
    return finish(fig, path)


def robustness_curve(curve: RobustnessCurve, path: str | Path | None = None) -> Figure | Path:
    """Robust top-1 accuracy (%) against eps, starting from the clean accuracy at eps 0."""
    fig, axes = new_figure(figsize=(5.5, 3.6))
    ax = axes[0][0]
    scale = 255 if curve.norm == "linf" else 1
    eps = [0.0] + [e * scale for e in curve.eps]
    ax.plot(eps, [100 * curve.top1] + [100 * a for a in curve.robust_top1], "-o", ms=4)
    ax.set(xlabel="eps (x/255)" if curve.norm == "linf" else f"eps ({curve.norm})", ylabel="top-1 %",
           title=f"{curve.method} on {curve.n} images", ylim=(0, 100))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return finish(fig, path)


def minimal_perturbation_figure(mp: MinimalPerturbation, path: str | Path | None = None) -> Figure | Path:
    """Histograms of the minimal L2 and L-inf (x255) perturbations of the images fooled, medians marked."""
    import math
    fig, axes = new_figure(1, 2, figsize=(8, 3.2))
    for ax, values, median, name in ((axes[0][0], mp.l2, mp.median_l2, "L2"),
                                     (axes[0][1], [v * 255 for v in mp.linf], mp.median_linf_255, "L-inf (x/255)")):
        finite = [v for v in values if math.isfinite(v)]
        ax.hist(finite, bins=20, color="C0")
        if math.isfinite(median):
            ax.axvline(median, color="C3", ls="--", label=f"median {median:.3g}")
            ax.legend(fontsize=7)
        ax.set(xlabel=f"minimal {name}", ylabel="images", title=f"{mp.fooled} of {mp.n} images fooled")
    fig.tight_layout()
    return finish(fig, path)
