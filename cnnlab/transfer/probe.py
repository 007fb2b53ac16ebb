"""Linear probes on frozen features: multinomial logistic regression with its L2 strength chosen by
cross-validation on the training part (as in Kornblith et al. 2019), or a linear SVM.

    result = linear_probe(train_feats, test_feats, classifier="logreg")
    result.mean_class_accuracy, result.per_class, result.confusion; result.figure("cm.png")
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import CnnlabError, unknown
from ..metrics import ClassificationMetrics, classification_metrics, mean_class_accuracy
from ..results import Result
from .features import FeatureSet

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CLASSIFIERS = ("logreg", "svm")
#: Inverse L2 strengths tried by cross-validation (features are unit length by default, so the useful
#: range sits high); the chosen value is reported, and an edge of the grid is flagged.
LOGREG_CS = tuple(float(c) for c in np.logspace(-2, 4, 13))
SVM_CS = tuple(float(c) for c in np.logspace(-2, 2, 9))


@dataclass(repr=False)
class ProbeResult(Result):
    """A linear probe's test metrics (see cnnlab.metrics), the regularization it chose, and its sizes.

    The metrics' scores are the probe's class probabilities (logistic regression) or decision values
    (SVM), so top-5 and average precision are reported too."""

    classifier: str
    classes: list[str]
    metrics: ClassificationMetrics
    n_train: int
    n_test: int
    feature_dim: int
    C: float
    cv_scores: dict[float, float] = field(default_factory=dict)
    cv_folds: int = 0
    predictions: np.ndarray | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def top1(self) -> float:
        """Top-1 accuracy on the test part."""
        return self.metrics.top1

    @property
    def mean_class_accuracy(self) -> float:
        return self.metrics.mean_class_accuracy

    @property
    def per_class(self) -> list[dict]:
        return self.metrics.per_class

    @property
    def confusion(self) -> np.ndarray:
        return self.metrics.confusion

    def to_dict(self) -> dict:
        m = self.metrics
        return {"classifier": self.classifier, "top1": self.top1, "top5": m.top5,
                "mean_class_accuracy": self.mean_class_accuracy, "mean_average_precision": m.mean_average_precision,
                "per_class": self.per_class, "n_train": self.n_train, "n_test": self.n_test,
                "feature_dim": self.feature_dim, "num_classes": len(self.classes), "C": self.C,
                "cv_folds": self.cv_folds, "cv_mean_class_accuracy": {f"{c:g}": s for c, s in self.cv_scores.items()},
                "confusion": self.confusion.tolist(), "classes": self.classes, "notes": self.notes,
                "seconds": round(self.seconds, 3)}

    def summary_rows(self) -> list[tuple[str, object]]:
        return [("classifier", self.classifier), ("n_train", self.n_train), ("n_test", self.n_test),
                ("feature_dim", self.feature_dim), ("C", f"{self.C:g}")] + self.metrics.summary_rows()[1:]

    def table(self, worst_first: bool = True) -> str:
        """The per-class metrics as aligned text, worst recall first by default."""
        return self.metrics.table(worst_first=worst_first)

    def figure(self, path: str | Path | None = None, normalize: bool = True) -> "Figure | Path":
        """The confusion matrix (rows: true class, normalized per row); the PNG path when `path` is given."""
        return self.metrics.confusion_figure(path, f"{self.classifier} probe: top-1 {100 * self.top1:.1f}%, "
                                                   f"mean class accuracy {100 * self.mean_class_accuracy:.1f}%",
                                             normalize)


def _check_labels(y_train: np.ndarray, y_test: np.ndarray, classes: Sequence[str]) -> None:
    k = len(classes)
    for what, y in (("training", y_train), ("test", y_test)):
        if len(y) and (y.min() < 0 or y.max() >= k):
            raise CnnlabError(f"The {what} labels run from {y.min()} to {y.max()}, outside the {k} classes given "
                              f"(0..{k - 1}); pass the full class list.")
    present = np.unique(y_train)
    if len(present) < 2:
        raise CnnlabError(f"The training images cover {len(present)} class; a probe needs at least two classes.")
    missing = [classes[i] for i in range(k) if i not in set(present.tolist())]
    if missing:
        raise CnnlabError(f"The probe was asked for {k} classes but the training data has images of only "
                          f"{len(present)} (none of: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}); "
                          "add training images for them or leave them out of the class list.")


def _estimator(classifier: str, C: float, seed: int):  # noqa: ANN202
    if classifier == "logreg":
        from sklearn.linear_model import LogisticRegression
        return LogisticRegression(C=C, max_iter=2000, tol=1e-4)
    from sklearn.svm import LinearSVC
    return LinearSVC(C=C, max_iter=2000, random_state=seed)


def linear_probe(train: FeatureSet | tuple[np.ndarray, np.ndarray], test: FeatureSet | tuple[np.ndarray, np.ndarray],
                 classifier: str = "logreg", *, classes: Sequence[str] | None = None, C: float | None = None,
                 Cs: Sequence[float] | None = None, folds: int = 5, seed: int = 0) -> ProbeResult:
    """Fit a linear classifier on training features and measure it on test features.

    Args:
        train, test: FeatureSets (from extract_features) or (features [N, D], labels [N]) pairs.
        classifier: 'logreg' (multinomial logistic regression, L2) or 'svm' (linear SVM, one-vs-rest).
        classes: class names, index order (default: the FeatureSet's).
        C: a fixed inverse L2 strength; default: chosen from `Cs` by stratified `folds`-fold
            cross-validation on the training part, scoring mean class accuracy.
    """
    t0 = time.perf_counter()
    if classifier not in CLASSIFIERS:
        raise unknown("classifier", classifier, CLASSIFIERS)
    x_tr, y_tr, names = _unpack(train, classes)
    x_te, y_te, _ = _unpack(test, names)
    if x_tr.shape[1] != x_te.shape[1]:
        raise CnnlabError(f"Training features have {x_tr.shape[1]} dimensions but test features {x_te.shape[1]}; "
                          "extract both with the same model.")
    _check_labels(y_tr, y_te, names)
    notes: list[str] = []
    # One BLAS thread: these matrices are small, and threaded BLAS on a busy 2-core machine was measured
    # 10-30x slower (its threads spin waiting for cores); see benchmarks/results/transfer.md.
    # (scipy and scikit-learn load their own BLAS: import them first so the limit reaches it.)
    import scipy.optimize  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.svm  # noqa: F401
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        C, cv_scores, n_folds = _choose_C(classifier, x_tr, y_tr, C, Cs, folds, seed, notes)
        est = _fit(_estimator(classifier, C, seed), x_tr, y_tr, notes)
        pred = est.predict(x_te)
        scores = _scores(est, classifier, x_te)
    metrics = classification_metrics(y_te, names, y_pred=pred, scores=scores,
                                     probabilities=scores if classifier == "logreg" else None)
    return ProbeResult(classifier, list(names), metrics, len(y_tr), len(y_te), int(x_tr.shape[1]), float(C),
                       cv_scores, n_folds, pred, time.perf_counter() - t0, notes)


def _scores(est, classifier: str, x: np.ndarray) -> np.ndarray:  # noqa: ANN001 - a fitted scikit-learn classifier
    """Class scores [N, C] (every class is in the training data): probabilities (logistic regression)
    or decision values (SVM)."""
    if classifier == "logreg":
        return est.predict_proba(x)
    s = est.decision_function(x)
    return np.stack([-s, s], axis=1) if s.ndim == 1 else s  # two classes: one margin, positive for class 1


def _choose_C(classifier: str, x: np.ndarray, y: np.ndarray, C: float | None, Cs: Sequence[float] | None,
              folds: int, seed: int, notes: list[str]) -> tuple[float, dict[float, float], int]:
    """The given C, or the best of the grid by cross-validated mean class accuracy."""
    if C is not None:
        return float(C), {}, 0
    grid = sorted(float(c) for c in (Cs or (LOGREG_CS if classifier == "logreg" else SVM_CS)))
    n_folds = int(min(folds, np.bincount(y)[np.unique(y)].min()))
    if n_folds < 2 or len(grid) < 2:
        C = grid[0] if len(grid) == 1 else (1.0 if classifier == "svm" else 100.0)
        if len(grid) > 1:
            notes.append(f"too few training images per class for cross-validation; used C={C:g}")
        return C, {}, 0
    scores = _cross_validate(classifier, x, y, grid, n_folds, seed)
    best = max(scores, key=lambda c: (round(scores[c], 9), -abs(np.log10(c))))
    if best in (grid[0], grid[-1]) and len(grid) > 2:
        notes.append(f"the chosen C={best:g} is at the edge of the grid {grid[0]:g}..{grid[-1]:g}")
    return best, scores, n_folds


def _unpack(part: FeatureSet | tuple[np.ndarray, np.ndarray], classes: Sequence[str] | None
            ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if isinstance(part, FeatureSet):
        x, y = part.features, part.labels
        names = list(classes) if classes is not None else list(part.classes)
    else:
        x, y = part
        names = list(classes) if classes is not None else [str(i) for i in range(int(np.max(y)) + 1)]
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(y):
        raise CnnlabError(f"Features must be [N, D] with one label each; got {x.shape} and {len(y)} labels.")
    if not np.isfinite(x).all():
        raise CnnlabError("The features contain NaN or infinite values; check the model and the images.")
    return x, y, names


def _fit(est, x: np.ndarray, y: np.ndarray, notes: list[str] | None = None):  # noqa: ANN001, ANN202
    """Fit quietly; when `notes` is given, say so there if the solver stopped before converging."""
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        est.fit(x, y)
    if notes is not None and any(issubclass(w.category, ConvergenceWarning) for w in caught):
        notes.append(f"the final {type(est).__name__} fit stopped at its iteration limit before converging")
    return est


def _cross_validate(classifier: str, x: np.ndarray, y: np.ndarray, grid: list[float], folds: int,
                    seed: int) -> dict[float, float]:
    """Mean class accuracy of each C over stratified folds (warm-started along the C path)."""
    from sklearn.model_selection import StratifiedKFold
    scores = {c: [] for c in grid}
    for tr, va in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        est = None
        for c in sorted(grid):
            if classifier == "logreg":
                est = est or _estimator("logreg", c, seed)
                est.set_params(C=c, warm_start=True)
            else:
                est = _estimator("svm", c, seed)
            _fit(est, x[tr], y[tr])
            scores[c].append(mean_class_accuracy(y[va], est.predict(x[va])))
    return {c: float(np.mean(v)) for c, v in scores.items()}
