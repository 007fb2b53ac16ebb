"""What every result object shares: a short `repr` and an inline rendering in Jupyter.

A result class names its headline numbers in `summary_rows()` -> [(key, value), ...] (keys as in its
JSON; values numbers or short text, fractions written with `percent`) and draws itself in
`figure(path=None)` (a matplotlib Figure built with cnnlab.figures, saved when `path` is given).
From those two, `Result` gives it:

- `repr(result)`: one line such as `EvalResult(n=10000, top1=81.02%, top5=98.87%, ...)`, never a
  tensor dump;
- `_repr_html_()`: what Jupyter shows for it, a small table of the headline numbers, then the figure
  as an inline PNG (`figure()` itself returns a Figure, which Jupyter displays too).

A dataclass keeps this repr only when declared `@dataclass(repr=False)` (otherwise the dataclass
writes its own).
"""
from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The longest repr, in characters (a line and a half of a terminal).
MAX_REPR = 160


def percent(fraction: float | None, digits: int = 2) -> str:
    """0.8102 -> '81.02%' (None or NaN -> '-')."""
    if fraction is None or fraction != fraction:
        return "-"
    return f"{100 * fraction:.{digits}f}%"


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return str(value)


class Result:
    """The mixin: subclasses define `summary_rows()` and `figure(path=None)`."""

    def summary_rows(self) -> list[tuple[str, Any]]:
        """The headline numbers as (key, value) pairs, most important first."""
        raise NotImplementedError

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """The result's picture: a Figure, or the path it was saved to when `path` is given."""
        raise NotImplementedError

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={_text(v)}" for k, v in self.summary_rows())
        text = f"{type(self).__name__}({body})"
        return text if len(text) <= MAX_REPR else text[:MAX_REPR - 2] + "…)"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(str(k))}</th>"
                       f"<td style='text-align:left'>{html.escape(_text(v))}</td></tr>"
                       for k, v in self.summary_rows())
        return (f"<div class='cnnlab-result'><b>{type(self).__name__}</b>"
                f"<table style='margin:4px 0'>{rows}</table>{self._figure_html()}</div>")

    def _figure_html(self) -> str:
        from .figures import figure_png
        try:
            fig = self.figure()
        except Exception as e:  # noqa: BLE001 - the numbers above must still show in the notebook
            return f"<p><i>(no figure: {html.escape(str(e))})</i></p>"
        data = base64.b64encode(figure_png(fig, dpi=80)).decode()
        return f"<img src='data:image/png;base64,{data}' style='max-width:100%'/>"


def rows_of(values: Sequence[tuple[str, Any]], limit: int = 8) -> list[tuple[str, Any]]:
    """At most `limit` (key, value) rows, the rest summarized as one row ('…', 'N more')."""
    values = list(values)
    if len(values) <= limit:
        return values
    return values[:limit - 1] + [("…", f"{len(values) - limit + 1} more")]
