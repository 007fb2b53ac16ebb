"""Linear probes: what they report, the CV choice of C, bad requests (the metrics themselves: tests/test_metrics.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlab.errors import CnnlabError
from cnnlab.transfer import linear_probe


def blobs(n_per_class: list[int], dim: int = 20, seed: int = 0, spread: float = 0.6):
    """Gaussian clusters, one per class, unit-normalized like real probe features."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(len(n_per_class), dim))
    x = np.concatenate([c + spread * rng.normal(size=(n, dim)) for c, n in zip(centers, n_per_class)])
    y = np.concatenate([[k] * n for k, n in enumerate(n_per_class)])
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


@pytest.mark.parametrize("classifier", ["logreg", "svm"])
def test_probe_learns_separable_classes_and_reports_everything(classifier, tmp_path):
    train = blobs([30, 12, 20], seed=1)
    rng = np.random.default_rng(0)  # test points close to the centers of the training clusters
    x_test = np.concatenate([train[0][train[1] == k].mean(0) + 0.05 * rng.normal(size=(n, 20))
                             for k, n in enumerate([10, 4, 6])])
    y_test = np.array([0] * 10 + [1] * 4 + [2] * 6)
    r = linear_probe(train, (x_test, y_test), classifier, classes=["x", "y", "z"])
    assert r.top1 == 1.0 and r.mean_class_accuracy == 1.0
    assert r.metrics.top5 == 1.0 and r.metrics.mean_average_precision == pytest.approx(1.0)
    assert r.cv_folds == 5 and r.C in r.cv_scores and max(r.cv_scores.values()) == r.cv_scores[r.C]
    d = r.to_dict()
    for key in ("top1", "top5", "mean_class_accuracy", "mean_average_precision", "per_class", "n_train", "n_test",
                "feature_dim", "seconds"):
        assert key in d
    assert (d["n_train"], d["n_test"], d["feature_dim"]) == (62, 20, 20)
    json.dumps(d, allow_nan=False)
    assert "recall" in r.table() and [row["name"] for row in d["per_class"]] == ["x", "y", "z"]
    r.figure(tmp_path / "cm.png")
    assert (tmp_path / "cm.png").stat().st_size > 5000


def test_cv_prefers_strong_regularization_on_noise_and_weak_on_signal():
    x, y = blobs([25, 25], dim=50, seed=3, spread=0.05)
    easy = linear_probe((x, y), (x, y), "logreg")
    assert easy.C >= 1.0
    rng = np.random.default_rng(4)
    noise = rng.normal(size=(60, 200))
    labels = np.repeat([0, 1, 2], 20)
    hard = linear_probe((noise, labels), (noise, labels), "logreg", Cs=(0.01, 1.0, 100.0))
    assert set(hard.cv_scores) == {0.01, 1.0, 100.0}
    assert max(hard.cv_scores.values()) < 0.6  # nothing to learn: CV sees chance level


def test_probe_asked_for_more_classes_than_the_data_has():
    x, y = blobs([5, 5, 5])
    with pytest.raises(CnnlabError, match="asked for 5 classes but the training data has images of only 3"):
        linear_probe((x, y), (x, y), classes=["a", "b", "c", "d", "e"])
    with pytest.raises(CnnlabError, match="outside the 2 classes"):
        linear_probe((x, y), (x, y), classes=["a", "b"])
    with pytest.raises(CnnlabError, match="at least two classes"):
        linear_probe((x[:5], y[:5]), (x[:5], y[:5]))
    with pytest.raises(CnnlabError, match="Unknown classifier 'svn'.*svm"):
        linear_probe((x, y), (x, y), "svn")
    with pytest.raises(CnnlabError, match="dimensions"):
        linear_probe((x, y), (x[:, :3], y))
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(CnnlabError, match="NaN"):
        linear_probe((bad, y), (x, y))


def test_one_image_per_class_falls_back_to_a_fixed_C():
    x, y = blobs([1, 1, 1])
    r = linear_probe((x, y), (x, y), "logreg")
    assert r.cv_folds == 0 and r.notes and "too few" in r.notes[0]
    assert r.top1 == 1.0
