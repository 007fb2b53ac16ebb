"""The HTML report of a run: one self-contained file built from the run directory alone.

    from cnnlab.report import build_report
    path = build_report("runs/r20")      # runs/r20/report.html, images embedded, no network needed
"""
from .build import build_report, render_report
from .discover import RunContents, discover

__all__ = ["build_report", "render_report", "discover", "RunContents"]
