"""The report's own figures: which curves are drawn from a run's metrics rows."""
from __future__ import annotations

import pytest

from cnnlab.report.charts import curve_series
from tests.report.test_build import epoch_rows


def test_curve_series_reads_error_from_val_error_or_top1() -> None:
    rows = epoch_rows(5)
    panels = curve_series(rows)
    assert set(panels) == {"objective", "error", "lr"}
    assert panels["error"]["val_error"][1] == [r["val_error"] for r in rows]
    assert "1 - val_top1" not in panels["error"]  # val_error is logged: no duplicate
    assert panels["lr"]["lr"][0] == [1.0, 2.0, 3.0, 4.0, 5.0]
    pct = curve_series(epoch_rows(5, percent=True))
    assert pct["error"]["100 - val_top1"][1] == pytest.approx([100 - r["val_top1"] for r in epoch_rows(5, True)])
