"""Classification metrics, computed by scikit-learn: top-1/top-k accuracy, the confusion matrix, mean
per-class accuracy, per-class precision/recall/F1 and average precision.

    m = classification_metrics(y_true, classes, scores=logits)     # or y_pred=... without scores
    m.top1, m.top5, m.mean_class_accuracy, m.mean_average_precision, m.per_class, m.confusion

Which number to report:
- **top-1 accuracy** (the fraction of images whose top class is right) when the classes are about
  equally frequent in the test data; **top-5** when several answers are acceptable (ImageNet's
  near-synonymous classes).
- **mean class accuracy** (the mean over classes of each class's accuracy, i.e. its recall;
  scikit-learn's balanced accuracy) when the classes are unbalanced: every class weighs the same,
  so a model that ignores a rare class cannot hide it behind the common ones.
- **precision** of a class (of the images predicted as it, the fraction that are it) beside its
  **recall** (of its images, the fraction found) when the two kinds of error cost differently;
  F1 is their harmonic mean.
- **mean average precision** (macro, one-vs-rest, from the probabilities) when the model's scores
  rank images, as in retrieval: for each class, the area under the precision-recall curve of
  ranking all images by that class's probability, averaged over classes. It rewards confident
  right answers and needs scores, not just predictions.

Classes without test images have no recall or average precision, and classes never predicted have
no precision: those are NaN in the arrays, null in JSON, and left out of the means.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import torch

from .errors import CnnlabError
from .results import Result, percent

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Labels, predictions or scores: a numpy array, a tensor (on any device) or a list.
ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float]]


def _array(values: ArrayLike, dtype: type) -> np.ndarray:
    """A numpy array of `values` (tensors are copied to the CPU first)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def top_k_accuracy(y_true: ArrayLike, scores: ArrayLike, k: int = 5) -> float:
    """The fraction of images whose true class is among the `k` highest `scores` [N, C]."""
    y, s = _array(y_true, np.int64), _array(scores, np.float64)
    if k <= 1:
        from sklearn.metrics import accuracy_score
        return float(accuracy_score(y, s.argmax(1)))
    if k >= s.shape[1]:
        return 1.0
    from sklearn.metrics import top_k_accuracy_score
    return float(top_k_accuracy_score(y, s, k=k, labels=np.arange(s.shape[1])))


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> np.ndarray:
    """Counts [C, C]: entry (i, j) is the number of images of class i predicted as class j."""
    from sklearn.metrics import confusion_matrix as sk_confusion
    return sk_confusion(_array(y_true, np.int64), _array(y_pred, np.int64), labels=np.arange(num_classes))


def precision_recall_f1(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per class (index order): precision, recall, F1 (NaN where undefined) and support (images)."""
    from sklearn.metrics import precision_recall_fscore_support
    p, r, f, n = precision_recall_fscore_support(_array(y_true, np.int64), _array(y_pred, np.int64),
                                                 labels=np.arange(num_classes), zero_division=np.nan)
    return p.astype(float), r.astype(float), f.astype(float), n.astype(np.int64)


def mean_class_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """The mean over the classes present in `y_true` of each class's accuracy (its recall)."""
    from sklearn.metrics import balanced_accuracy_score
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true": expected
        return float(balanced_accuracy_score(_array(y_true, np.int64), _array(y_pred, np.int64)))


def average_precision(y_true: ArrayLike, probabilities: ArrayLike) -> np.ndarray:
    """One-vs-rest average precision of each class [C] from probabilities [N, C] (NaN for classes
    without images in `y_true`)."""
    from sklearn.metrics import average_precision_score
    y, p = _array(y_true, np.int64), _array(probabilities, np.float64)
    out = np.full(p.shape[1], np.nan)
    for c in np.unique(y):
        out[c] = average_precision_score(y == c, p[:, c])
    return out


def mean_average_precision(y_true: ArrayLike, probabilities: ArrayLike) -> float:
    """The macro mean of `average_precision` over the classes present in `y_true`."""
    return float(np.nanmean(average_precision(y_true, probabilities)))


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits [N, C] (numerically stable)."""
    z = np.asarray(scores, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _json_number(x: float) -> float | None:
    """A float for JSON: NaN (undefined) becomes null, so the file stays strict JSON."""
    return None if x is None or math.isnan(x) else float(x)


@dataclass(repr=False)
class ClassificationMetrics(Result):
    """Metrics of one set of predictions (see the module docstring for what each means).

    `confusion[i, j]` counts images of class i predicted as j; `precision`, `recall`, `f1` and
    `average_precision` are per class in index order, NaN where undefined. `top5` and the average
    precisions need scores and are None without them."""

    classes: list[str]
    confusion: np.ndarray
    top1: float
    mean_class_accuracy: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    top5: float | None = None
    average_precision: np.ndarray | None = None
    mean_average_precision: float | None = None

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def support(self) -> np.ndarray:
        """Test images per class."""
        return self.confusion.sum(axis=1)

    @property
    def per_class(self) -> list[dict]:
        """One row per class: index, name, n (its test images), recall (= the class's accuracy),
        precision, f1, average_precision (None where undefined)."""
        ap = self.average_precision if self.average_precision is not None else np.full(len(self.classes), np.nan)
        return [{"index": i, "name": name, "n": int(n), "recall": _json_number(r), "precision": _json_number(p),
                 "f1": _json_number(f), "average_precision": _json_number(a)}
                for i, (name, n, r, p, f, a) in enumerate(zip(self.classes, self.support, self.recall, self.precision,
                                                               self.f1, ap))]

    def summary_rows(self) -> list[tuple[str, object]]:
        rows: list[tuple[str, object]] = [("n", self.n), ("top1", percent(self.top1))]
        if self.top5 is not None:
            rows.append(("top5", percent(self.top5)))
        rows.append(("mean_class_accuracy", percent(self.mean_class_accuracy)))
        if self.mean_average_precision is not None:
            rows.append(("mean_average_precision", percent(self.mean_average_precision)))
        return rows

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """The confusion matrix, normalized per true class (see `confusion_figure`)."""
        return self.confusion_figure(path)

    def to_dict(self) -> dict:
        """Strict-JSON metrics: undefined values are null."""
        return {"n": self.n, "top1": self.top1, "top5": self.top5, "mean_class_accuracy": self.mean_class_accuracy,
                "mean_average_precision": self.mean_average_precision, "per_class": self.per_class,
                "confusion": self.confusion.tolist(), "classes": list(self.classes)}

    def table(self, worst_first: bool = False, present_only: bool = False) -> str:
        """Per-class recall (the class's accuracy), precision, F1 and average precision as aligned text."""
        rows = [r for r in self.per_class if r["n"] or not present_only]
        if worst_first:
            rows.sort(key=lambda r: (r["recall"] is None, r["recall"] if r["recall"] is not None else 0.0))
        width = max([len(r["name"]) for r in rows] + [5])

        def pct(v: float | None) -> str:
            return "      -" if v is None else f"{100 * v:6.1f}%"
        lines = [f"{'class':<{width}}  {'n':>6}  {'recall':>7}  {'precision':>9}  {'f1':>7}  {'AP':>7}"]
        lines += [f"{r['name']:<{width}}  {r['n']:>6}  {pct(r['recall'])}  {pct(r['precision']):>9}  {pct(r['f1'])}  "
                  f"{pct(r['average_precision'])}" for r in rows]
        return "\n".join(lines)

    def confusion_figure(self, path: str | Path | None = None, title: str = "", normalize: bool = True
                         ) -> "Figure | Path":
        """The confusion matrix (rows: true class, normalized per row unless `normalize=False`); the
        figure, or the PNG path when `path` is given."""
        from .figures import finish, new_figure
        cm = self.confusion.astype(float)
        shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
        k = len(self.classes)
        size = min(16, max(5, 0.28 * k + 2))
        fig, axes = new_figure(figsize=(size + 1, size))
        ax = axes[0][0]
        im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
        fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class" if normalize else "images")
        if k <= 60:
            fontsize = 7 if k > 20 else 9
            ax.set_xticks(range(k), self.classes, rotation=90, fontsize=fontsize)
            ax.set_yticks(range(k), self.classes, fontsize=fontsize)
        if k <= 15:
            for i in range(k):
                for j in range(k):
                    if cm[i, j]:
                        ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if shown[i, j] > 0.5 * (shown.max() or 1) else "black")
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(title or f"top-1 {100 * self.top1:.1f}%, mean class accuracy "
                              f"{100 * self.mean_class_accuracy:.1f}% (n={self.n})")
        fig.tight_layout()
        return finish(fig, path)


def classification_metrics(y_true: ArrayLike, classes: Sequence[str], *, y_pred: ArrayLike | None = None,
                           scores: ArrayLike | None = None, probabilities: ArrayLike | None = None
                           ) -> ClassificationMetrics:
    """All metrics of one set of predictions of `len(classes)`-way classifier.

    Args:
        y_true: true class indices [N].
        y_pred: predicted class indices [N] (default: the argmax of `scores`).
        scores: class scores [N, C] such as logits, for top-5 (and for average precision through
            their softmax unless `probabilities` are given).
        probabilities: class probabilities [N, C] for average precision.
    """
    k = len(classes)
    y = _array(y_true, np.int64)
    s = None if scores is None else _array(scores, np.float64)
    if y_pred is None:
        if s is None:
            raise ValueError("classification_metrics needs y_pred or scores")
        y_pred = s.argmax(1)
    pred = _array(y_pred, np.int64)
    if len(y) == 0:
        raise CnnlabError("There are no test images to measure accuracy on.")
    if len(pred) != len(y):
        raise CnnlabError(f"{len(pred)} predictions were given for {len(y)} labels; give one per image.")
    for what, v in (("Labels", y), ("Predictions", pred)):
        if v.min() < 0 or v.max() >= k:
            raise CnnlabError(f"{what} run from {v.min()} to {v.max()}, outside the {k} classes (0..{k - 1}).")
    p, r, f, _ = precision_recall_f1(y, pred, k)
    from sklearn.metrics import accuracy_score
    metrics = ClassificationMetrics(list(classes), confusion_matrix(y, pred, k), float(accuracy_score(y, pred)),
                                    mean_class_accuracy(y, pred), p, r, f)
    if s is not None:
        metrics.top5 = top_k_accuracy(y, s, 5)
    if probabilities is not None or s is not None:
        probs = _array(probabilities, np.float64) if probabilities is not None else softmax(s)
        metrics.average_precision = average_precision(y, probs)
        metrics.mean_average_precision = float(np.nanmean(metrics.average_precision))
    return metrics
