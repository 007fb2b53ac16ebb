"""The report's own figures: which curves are drawn from a run's metrics rows."""
from __future__ import annotations

import pytest

from cnnlab.report.charts import constant_lr, curve_series
from tests.report.test_build import epoch_rows


def test_validation_error_comes_from_validation_accuracy() -> None:
    rows = epoch_rows(5)
    for r in rows:
        r["val_error"] = 0.5  # a stale or wrong column must not be what the panel shows
    panels = curve_series(rows)
    assert set(panels) == {"objective", "error", "lr"}
    assert panels["error"]["validation error"][1] == pytest.approx([100 * (1 - r["val_top1"]) for r in rows])
    assert panels["error"]["training error (augmented batches)"][1] == pytest.approx(
        [100 * (1 - r["train_top1"]) for r in rows])
    assert not any("top5" in name or "1 -" in name for name in panels["error"])  # each curve once, named
    assert panels["lr"]["learning rate"][0] == [1.0, 2.0, 3.0, 4.0, 5.0]
    pct = curve_series(epoch_rows(5, percent=True))
    assert pct["error"]["validation error"][1] == pytest.approx([100 - r["val_top1"] for r in epoch_rows(5, True)])


def test_val_error_alone_and_constant_lr() -> None:
    rows = [{"epoch": e, "train_loss": 1.0 / e, "val_error": 0.5 / e, "lr": 0.001} for e in (1, 2, 3)]
    panels = curve_series(rows)
    assert panels["error"]["validation error"][1] == pytest.approx([50.0, 25.0, 50 / 3])
    assert "lr" not in panels and constant_lr(rows) == 0.001
