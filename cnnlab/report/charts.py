"""Figures the report draws itself from a run's data: training curves and the confusion matrix.

Drawn with cnnlab.figures (matplotlib's object API, imported lazily) straight to PNG bytes, so the
report needs no figure files from the trainer: metrics.jsonl alone gives the curves.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from ..figures import figure_png, new_figure

#: Panels of the training-curves figure: title, y label, and how to get each series from a row.
LOSS_KEYS = ("train_loss", "loss", "objective", "train_objective", "val_loss", "test_loss")
LR_KEYS = ("lr", "learning_rate")


def _num(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _is_percent(values: Sequence[float]) -> bool:
    return any(v > 1.0 for v in values)


def curve_series(rows: list[dict]) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """Group metrics rows into panels {'objective': {name: (x, y)}, 'error': ..., 'lr': ...}.

    Validation error comes from `val_error` when logged, else 1 - `val_top1` (same unit as logged);
    other accuracy-like keys (robust, clean, top5) are plotted as errors too.
    """
    panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {"objective": {}, "error": {}, "lr": {}}
    xs_all = [_num(r.get("epoch")) for r in rows]
    use_epoch = all(x is not None for x in xs_all) and len(set(xs_all)) == len(xs_all)

    def add(panel: str, name: str, getter) -> None:
        xs, ys = [], []
        for i, r in enumerate(rows):
            y = getter(r)
            if y is not None:
                xs.append(xs_all[i] if use_epoch else float(i + 1))
                ys.append(y)
        if ys:
            panels[panel][name] = (xs, ys)

    keys = list(dict.fromkeys(k for r in rows for k in r))
    for k in keys:
        if k in LOSS_KEYS or (k.endswith("_loss") and not k.startswith("adv")):
            add("objective", k, lambda r, k=k: _num(r.get(k)))
        elif k in LR_KEYS:
            add("lr", k, lambda r, k=k: _num(r.get(k)))
    for k in keys:
        if k.endswith("_error") or k == "error":
            add("error", k, lambda r, k=k: _num(r.get(k)))
    for k in keys:
        if not k.endswith(("_top1", "_top5", "_acc", "_accuracy")):
            continue
        if k.endswith("_top1") and f"{k[:-5]}_error" in keys:
            continue  # val_error already drawn
        vals = [v for r in rows if (v := _num(r.get(k))) is not None]
        top = 100.0 if _is_percent(vals) else 1.0
        add("error", f"{'100' if top == 100 else '1'} - {k}",
            lambda r, k=k, top=top: None if _num(r.get(k)) is None else top - _num(r.get(k)))
    return {p: s for p, s in panels.items() if s}


def training_curves_png(rows: list[dict]) -> bytes | None:
    """One PNG with up to three panels (objective, validation error, learning rate) vs epoch."""
    panels = curve_series(rows)
    if not panels:
        return None
    titles = {"objective": ("Objective (loss)", "loss"), "error": ("Validation error", "error"),
              "lr": ("Learning rate during each epoch", "lr")}
    fig, axes = new_figure(1, len(panels), figsize=(4.2 * len(panels), 3.3))
    fig.set_layout_engine("constrained")
    axes = axes[0]
    xlabel = "epoch" if all(_num(r.get("epoch")) is not None for r in rows) else "log entry"
    for ax, (panel, series) in zip(axes, panels.items()):
        for name, (x, y) in series.items():
            if panel == "lr" and xlabel == "epoch" and x:  # logged at an epoch's end: the lr of (e-1, e]
                ax.plot([x[0] - 1, *x], [y[0], *y], drawstyle="steps-pre", label=name)
            else:
                ax.plot(x, y, marker="o" if len(x) <= 30 else None, markersize=3, label=name)
        title, ylabel = titles[panel]
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if panel == "objective" and all(v > 0 for _, ys in series.values() for v in ys):
            span = max(v for _, ys in series.values() for v in ys) / min(v for _, ys in series.values() for v in ys)
            if span > 30:
                ax.set_yscale("log")
        ax.legend(fontsize=8)
    return figure_png(fig, dpi=110)


def confusion_png(matrix: Sequence[Sequence[float]], labels: Sequence[str] | None = None) -> bytes:
    """A confusion matrix (rows: true class, columns: predicted) as a PNG, counts written when small."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    n = m.shape[0]
    side = min(12.0, max(4.0, 0.45 * n + 2))
    fig, axes = new_figure(figsize=(side + 1, side))
    fig.set_layout_engine("constrained")
    ax = axes[0, 0]
    rowsum = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rowsum, out=np.zeros_like(m), where=rowsum > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    if labels is not None and len(labels) == n and n <= 40:
        ax.set_xticks(range(n), [str(s)[:14] for s in labels], rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), [str(s)[:14] for s in labels], fontsize=8)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{m[i, j]:g}", ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    return figure_png(fig, dpi=100)
