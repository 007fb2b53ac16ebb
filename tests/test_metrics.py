"""The metrics module against hand-checked values and properties that hold whatever computes them."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.metrics import (average_precision, classification_metrics, confusion_matrix, mean_average_precision,
                            mean_class_accuracy, precision_recall_f1, softmax, top_k_accuracy)

# class a: 8 test images, 7 right, 1 taken for b; class b: 2 images, both taken for a; class c: none
Y_TRUE = np.array([0] * 8 + [1] * 2)
Y_PRED = np.array([0] * 7 + [1] + [0, 0])


def test_hand_checked_unbalanced_case():
    m = classification_metrics(Y_TRUE, ["a", "b", "c"], y_pred=Y_PRED)
    assert m.n == 10 and m.top1 == pytest.approx(0.7)                        # 7 of 10 images
    assert m.mean_class_accuracy == pytest.approx((7 / 8 + 0 / 2) / 2)         # 0.4375: classes weigh equally
    assert m.confusion.tolist() == [[7, 1, 0], [2, 0, 0], [0, 0, 0]]
    rows = {r["name"]: r for r in m.per_class}
    assert rows["a"]["recall"] == pytest.approx(7 / 8) and rows["a"]["precision"] == pytest.approx(7 / 9)
    assert rows["a"]["f1"] == pytest.approx(14 / 17)                            # 2PR / (P + R)
    assert (rows["b"]["recall"], rows["b"]["precision"], rows["b"]["f1"]) == (0.0, 0.0, 0.0)
    assert rows["c"] == {"index": 2, "name": "c", "n": 0, "recall": None, "precision": None, "f1": None,
                         "average_precision": None}
    assert m.top5 is None and m.mean_average_precision is None                  # predictions only, no scores
    json.dumps(m.to_dict(), allow_nan=False)                                    # strict JSON: undefined is null
    assert "a" in m.table() and "c" not in m.table(present_only=True).split("\n", 1)[1]


def test_mean_class_accuracy_is_balanced_accuracy_and_ignores_class_sizes():
    from sklearn.metrics import balanced_accuracy_score
    assert mean_class_accuracy(Y_TRUE, Y_PRED) == pytest.approx(balanced_accuracy_score(Y_TRUE, Y_PRED))
    twice_a = np.concatenate([Y_TRUE[:8], Y_TRUE]), np.concatenate([Y_PRED[:8], Y_PRED])
    assert mean_class_accuracy(*twice_a) == pytest.approx(mean_class_accuracy(Y_TRUE, Y_PRED))
    assert np.mean(twice_a[0] == twice_a[1]) != pytest.approx(0.7)             # top-1 does move


def test_top_k_by_hand():
    scores = np.array([[0.1, 0.5, 0.3, 0.1],    # ranks: 1, 2, 0|3
                       [0.6, 0.1, 0.2, 0.1],    # ranks: 0, 2, 1|3
                       [0.2, 0.2, 0.1, 0.5]])   # ranks: 3, 0|1, 2
    y = np.array([2, 0, 2])
    assert top_k_accuracy(y, scores, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(y, scores, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(y, scores, 4) == 1.0 and top_k_accuracy(y, scores, 9) == 1.0
    assert top_k_accuracy(torch.tensor([1, 0]), torch.tensor([[0.2, 0.8], [0.3, 0.7]]), 1) == 0.5  # two classes


def test_average_precision_by_hand():
    probs = np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.9, 0.1]])
    y = np.array([1, 0, 1, 0])
    # class 1 ranks images 0 (pos), 1 (neg), 2 (pos), 3: precision 1 at the first hit, 2/3 at the second
    # class 0 ranks images 3 (pos), 2 (neg), 1 (pos), 0: the same
    assert average_precision(y, probs).tolist() == pytest.approx([5 / 6, 5 / 6])
    assert mean_average_precision(y, probs) == pytest.approx(5 / 6)
    three = np.concatenate([probs, np.zeros((4, 1))], axis=1)
    assert np.isnan(average_precision(y, three)[2]) and mean_average_precision(y, three) == pytest.approx(5 / 6)


def test_map_of_perfect_scores_is_one_and_of_a_random_ranking_the_prevalence():
    rng = np.random.default_rng(0)
    prevalence = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    y = rng.choice(5, size=20000, p=prevalence)
    perfect = np.eye(5)[y] * 0.9 + 0.02
    assert mean_average_precision(y, perfect) == pytest.approx(1.0)
    random = softmax(rng.normal(size=(len(y), 5)))
    ap = average_precision(y, random)
    assert np.abs(ap - np.bincount(y) / len(y)).max() < 0.02                    # ranking by chance finds the base rate
    assert mean_average_precision(y, random) == pytest.approx(0.2, abs=0.01)


def test_scores_give_top5_and_map_and_argmax_predictions():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 12, 300)
    logits = rng.normal(size=(300, 12)) + 3 * np.eye(12)[y]
    m = classification_metrics(torch.from_numpy(y), [f"c{i}" for i in range(12)], scores=torch.from_numpy(logits))
    assert m.top1 == pytest.approx(np.mean(logits.argmax(1) == y)) and m.top1 <= m.top5 <= 1
    assert m.mean_average_precision == pytest.approx(mean_average_precision(y, softmax(logits)))
    p, r, f, n = precision_recall_f1(y, logits.argmax(1), 12)
    assert n.sum() == 300 and np.nanmean(r) == pytest.approx(m.mean_class_accuracy)
    assert confusion_matrix(y, logits.argmax(1), 12).trace() == round(300 * m.top1)


def test_bad_input_is_one_sentence():
    with pytest.raises(CnnlabError, match="outside the 3 classes"):
        classification_metrics([0, 3], ["a", "b", "c"], y_pred=[0, 1])
    with pytest.raises(CnnlabError, match="no test images"):
        classification_metrics([], ["a"], y_pred=[])
    with pytest.raises(CnnlabError, match="2 predictions were given for 3 labels"):
        classification_metrics([0, 1, 1], ["a", "b"], y_pred=[0, 1])


def test_confusion_figure(tmp_path):
    m = classification_metrics(Y_TRUE, ["a", "b", "c"], y_pred=Y_PRED)
    from matplotlib.figure import Figure
    assert isinstance(m.confusion_figure(), Figure)
    assert m.confusion_figure(tmp_path / "cm.png", "toy").stat().st_size > 3000
