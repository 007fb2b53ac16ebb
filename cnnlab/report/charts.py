"""Figures the report draws itself from a run's data: training curves and the confusion matrix.

Drawn with cnnlab.figures (matplotlib's object API, imported lazily) straight to PNG bytes, so the
report needs no figure files from the trainer: metrics.jsonl alone gives the curves.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ..figures import figure_png, new_figure

#: Keys of the objective panel, in the order they are drawn, with their legend names.
LOSS_NAMES = {"train_loss": "training objective", "loss": "training objective", "objective": "training objective",
              "train_objective": "training objective", "val_loss": "validation loss", "test_loss": "test loss"}
LR_KEYS = ("lr", "learning_rate")
#: Accuracies drawn as errors (100 - accuracy, in percent), with their legend names. The validation error
#: comes from the validation accuracy; `val_error` is used only where no accuracy was logged.
ERROR_NAMES = {"val_top1": "validation error", "train_top1": "training error (augmented batches)",
               "val_robust_top1": "robust validation error (under attack)", "test_top1": "test error"}


def _num(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _is_percent(values: Sequence[float]) -> bool:
    return any(v > 1.0 for v in values)


Series = dict[str, tuple[list[float], list[float]]]


def curve_series(rows: list[dict]) -> dict[str, Series]:
    """Group metrics rows into panels {'objective': {legend: (x, y)}, 'error': ..., 'lr': ...}.

    Errors are in percent: 100 - accuracy for each accuracy of ERROR_NAMES (fractions or percent, as
    logged), `val_error` only when the validation accuracy was not logged. The learning-rate panel is
    left out when the rate never changed (the caption says its value)."""
    panels: dict[str, Series] = {"objective": {}, "error": {}, "lr": {}}
    xs_all = [_num(r.get("epoch")) for r in rows]
    use_epoch = all(x is not None for x in xs_all) and len(set(xs_all)) == len(xs_all)

    def add(panel: str, name: str, getter: Callable[[dict], float | None]) -> None:
        xs, ys = [], []
        for i, r in enumerate(rows):
            y = getter(r)
            if y is not None:
                xs.append(xs_all[i] if use_epoch else float(i + 1))
                ys.append(y)
        if ys and name not in panels[panel]:
            panels[panel][name] = (xs, ys)

    keys = list(dict.fromkeys(k for r in rows for k in r))
    for k in keys:
        if k in LOSS_NAMES:
            add("objective", LOSS_NAMES[k], lambda r, k=k: _num(r.get(k)))
    for k, name in ERROR_NAMES.items():
        vals = [v for r in rows if (v := _num(r.get(k))) is not None]
        scale = 1.0 if _is_percent(vals) else 100.0
        add("error", name, lambda r, k=k, s=scale: None if _num(r.get(k)) is None else 100.0 - s * _num(r.get(k)))
    if "validation error" not in panels["error"] and "val_error" in keys:
        vals = [v for r in rows if (v := _num(r.get("val_error"))) is not None]
        scale = 1.0 if _is_percent(vals) else 100.0
        add("error", "validation error", lambda r, s=scale: None if _num(r.get("val_error")) is None
            else s * _num(r.get("val_error")))
    for k in keys:
        if k in LR_KEYS:
            add("lr", "learning rate", lambda r, k=k: _num(r.get(k)))
    lr = panels["lr"].get("learning rate")
    if lr and len(set(lr[1])) == 1:
        panels["lr"] = {}
    return {p: s for p, s in panels.items() if s}


def constant_lr(rows: list[dict]) -> float | None:
    """The learning rate when every row logged the same one (the curves then leave its panel out)."""
    values = {_num(r.get(k)) for r in rows for k in LR_KEYS if k in r}
    return values.pop() if len(values) == 1 and None not in values else None


def training_curves_png(rows: list[dict]) -> bytes | None:
    """One PNG, page-wide, with up to three panels against the epoch: the objective (training loss and
    validation loss), the error in percent (validation, training, robust) and the learning rate."""
    panels = curve_series(rows)
    if not panels:
        return None
    titles = {"objective": ("Objective", "cross-entropy"), "error": ("Error", "error (%)"),
              "lr": ("Learning rate during each epoch", "learning rate")}
    fig, axes = new_figure(1, len(panels), figsize=(3.6 * len(panels) + 1.0, 3.4))
    fig.set_layout_engine("constrained")
    axes = axes[0]
    xlabel = "epoch" if all(_num(r.get("epoch")) is not None for r in rows) else "log entry"
    for ax, (panel, series) in zip(axes, panels.items()):
        for name, (x, y) in series.items():
            if panel == "lr" and xlabel == "epoch" and x:  # logged at an epoch's end: the lr of (e-1, e]
                ax.plot([x[0] - 1, *x], [y[0], *y], drawstyle="steps-pre", label=name)
            else:
                dashed = name.startswith("training")
                ax.plot(x, y, "--" if dashed else "-", marker="o" if len(x) <= 30 else None, markersize=3,
                        label=name)
        title, ylabel = titles[panel]
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if panel == "objective" and all(v > 0 for _, ys in series.values() for v in ys):
            span = max(v for _, ys in series.values() for v in ys) / min(v for _, ys in series.values() for v in ys)
            if span > 30:
                ax.set_yscale("log")
        if panel != "lr":
            ax.legend(fontsize=8)
    return figure_png(fig, dpi=130)


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
