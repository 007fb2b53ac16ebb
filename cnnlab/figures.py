"""The one place figures are made: matplotlib's object API only, so cnnlab never switches the user's
backend or touches pyplot's global state (a notebook's own `plt.show()` keeps working), and shared
helpers for image panels, heat maps and saving.

matplotlib is imported inside the functions that draw (the cold start of `cnnlab predict` matters).
A `Figure` returned here displays inline in Jupyter, and saves with `save_figure`.
"""
from __future__ import annotations

import functools
import io
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .images import normalize01

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.8),
               **subplots: Any) -> tuple["Figure", Any]:
    """A figure and its axes (`squeeze=False` unless given), made without pyplot; its texts show as
    written (see `literal_text`)."""
    figure_type = _literal_figure_class()
    _show_figures_in_ipython(figure_type)
    fig = figure_type(figsize=figsize)
    subplots.setdefault("squeeze", False)
    return fig, fig.subplots(nrows, ncols, **subplots)


def _show_figures_in_ipython(figure_type: type) -> None:
    """In Jupyter, draw a Figure that ends a cell as a PNG. IPython learns to draw figures only when
    pyplot loads its inline backend, which cnnlab never does; an existing rule (pyplot's) is kept."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    png = shell.display_formatter.formatters["image/png"]
    try:
        png.lookup_by_type(figure_type)
    except KeyError:
        png.for_type(figure_type, lambda fig: figure_png(fig, dpi=100))


def literal_text(fig: "Figure") -> "Figure":
    """Show every text of `fig` as written: labels come from users' data (run names, metric keys, class
    names, file names), and a '$' in them must print as a dollar sign, not start matplotlib's math
    notation (which fails on '$x_$' with a traceback)."""
    from matplotlib.text import Text
    for text in fig.findobj(Text):
        text.set_parse_math(False)
    return fig


@functools.cache
def _literal_figure_class() -> type:
    """matplotlib's Figure, but every measure or drawing of it (tight_layout, savefig, a notebook showing
    it) first makes its texts literal, tick labels made while drawing included."""
    import matplotlib
    from matplotlib.figure import Figure

    class LiteralFigure(Figure):
        def tight_layout(self, *args: Any, **kwargs: Any) -> None:
            literal_text(self)
            with matplotlib.rc_context({"text.parse_math": False}):
                super().tight_layout(*args, **kwargs)

        def draw(self, renderer: Any) -> None:
            literal_text(self)
            with matplotlib.rc_context({"text.parse_math": False}):
                super().draw(renderer)

    return LiteralFigure


def save_figure(fig: "Figure", path: str | Path, dpi: int = 100) -> Path:
    """Write `fig` to `path` (PNG unless the suffix says otherwise), making its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def figure_png(fig: "Figure", dpi: int = 80) -> bytes:
    """`fig` as PNG bytes (for reports and Jupyter's `_repr_png_`)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def finish(fig: "Figure", path: str | Path | None) -> "Figure | Path":
    """The figure itself when `path` is None, else the path it was saved to."""
    return fig if path is None else save_figure(fig, path)


def hwc(img: torch.Tensor) -> np.ndarray:
    """A [3,H,W] tensor in [0,1] as an H x W x 3 array for imshow."""
    return img.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def short_label(label: str, n: int = 22) -> str:
    """A class name cut to its first synonym and `n` characters (ImageNet names run long)."""
    label = label.split(",")[0]
    return label if len(label) <= n else label[: n - 1] + "…"


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run small tensor work (figures) on one thread: on a busy 2-core machine every multi-threaded
    elementwise op on a small image waits milliseconds for the other thread (measured 8 ms vs 0.006 ms)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def colorize(heat: torch.Tensor, cmap: str = "jet") -> torch.Tensor:
    """[H,W] values (any range) -> [3,H,W] colours in [0,1], contrast-stretched first ('jet' needs no
    matplotlib: it is three clipped ramps)."""
    if cmap == "jet":
        t = normalize01(heat.detach().float().cpu())
        return torch.stack([(1.5 - (4 * t - c).abs()).clamp(0, 1) for c in (3.0, 2.0, 1.0)])
    from matplotlib import colormaps
    lut = torch.tensor(colormaps[cmap](torch.linspace(0, 1, 256).numpy())[:, :3], dtype=torch.float32)
    idx = (normalize01(heat.detach().float().cpu()) * 255).round().long()
    return lut[idx].permute(2, 0, 1)


def overlay(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.5, cmap: str = "jet") -> torch.Tensor:
    """Blend a heat map (resized to the image) over an image [3,H,W] in [0,1]."""
    heat = heat.detach().float().cpu()
    if tuple(heat.shape[-2:]) != tuple(image.shape[-2:]):
        heat = torch.nn.functional.interpolate(heat[None, None], size=image.shape[-2:], mode="bilinear",
                                               align_corners=False)[0, 0]
    return ((1 - alpha) * image.detach().float().cpu() + alpha * colorize(heat, cmap)).clamp(0, 1)


def panel_figure(rows: Sequence[Sequence[torch.Tensor | None]], titles: Sequence[Sequence[str]] | None = None,
                 row_labels: Sequence[str] | None = None, cell: float = 2.0, cmap: str = "gray") -> "Figure":
    """A grid of image panels: each item [3,H,W] (colour), [H,W] (shown with `cmap`) or None (blank)."""
    nrows, ncols = len(rows), max(len(r) for r in rows)
    fig, axes = new_figure(nrows, ncols, figsize=(cell * ncols, cell * nrows + 0.3))
    for i, row in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            ax.axis("off")
            if j >= len(row) or row[j] is None:
                continue
            img = row[j].detach().float().cpu()
            if img.dim() == 3:
                ax.imshow(hwc(img), interpolation="nearest")
            else:
                ax.imshow(img.numpy(), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            if titles and j < len(titles[i]) and titles[i][j]:
                ax.set_title(titles[i][j], fontsize=8)
        if row_labels and i < len(row_labels):
            axes[i][0].text(-0.08, 0.5, row_labels[i], transform=axes[i][0].transAxes, rotation=90,
                            ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def bars_figure(panels: Sequence[tuple[str, Sequence[str], Sequence[float]]], percent: bool = True,
                xlabel: str = "", cols: int = 4) -> "Figure":
    """Horizontal bar charts side by side (wrapping after `cols`), one per (title, labels, values); the
    first label on top. Values are fractions shown in percent unless `percent=False`."""
    n = max(1, len(panels))
    ncols = min(cols, n)
    nrows = -(-n // ncols)
    height = max(1.2, 0.32 * max((len(p[1]) for p in panels), default=1) + 0.8)
    fig, axes = new_figure(nrows, ncols, figsize=(max(4.8, 3.6 * ncols), height * nrows))
    for i in range(nrows * ncols):
        ax = axes[i // ncols][i % ncols]
        if i >= len(panels):
            ax.axis("off")
            continue
        title, labels, values = panels[i]
        shown = [100 * v for v in values] if percent else list(values)
        y = list(range(len(labels)))[::-1]
        ax.barh(y, shown, color="C0")
        ax.set_yticks(y, [short_label(str(lab), 28) for lab in labels], fontsize=8)
        for yi, v in zip(y, shown):
            ax.text(v, yi, f" {v:.1f}%" if percent else f" {v:,.4g}", va="center", fontsize=7)
        if percent:
            ax.set_xlim(0, 115)
        else:
            ax.set_xlim(0, max(shown, default=1) * 1.25 or 1)
        ax.set_title(title if len(title) <= 48 else title[:47] + "…", fontsize=9)
        ax.set_xlabel(xlabel or ("%" if percent else ""), fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig
