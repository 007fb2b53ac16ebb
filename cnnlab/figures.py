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
               layout: str | None = None, **subplots: Any) -> tuple["Figure", Any]:
    """A figure and its axes (`squeeze=False` unless given), made without pyplot; its texts show as
    written (see `literal_text`). `layout="constrained"` keeps titles, labels, legends and the suptitle
    clear of each other as the figure is drawn."""
    figure_type = _literal_figure_class()
    _show_figures_in_ipython(figure_type)
    fig = figure_type(figsize=figsize, layout=layout)
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


def _escaped(s: str) -> str:
    """`s` with every '$' escaped, so matplotlib prints it instead of starting math notation; the math that
    matplotlib's own tick formatters write (log axes: '$\\mathdefault{10^{1}}$') is left to render."""
    if "$" not in s or "\\mathdefault" in s:
        return s
    return s.replace("\\$", "$").replace("$", "\\$")


def literal_text(fig: "Figure") -> "Figure":
    """Show every text of `fig` as written: labels come from users' data (run names, metric keys, class
    names, file names), and a '$' in them must print as a dollar sign, not start matplotlib's math
    notation (which fails on '$x_$' with a traceback). Fixed tick labels (class names) are escaped in
    their formatter, since their texts are made while drawing."""
    from matplotlib.text import Text
    from matplotlib.ticker import FixedFormatter, FuncFormatter
    for text in fig.findobj(Text):
        s, escaped = text.get_text(), _escaped(text.get_text())
        if escaped != s:
            text.set_text(escaped)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for fmt in (axis.get_major_formatter(), axis.get_minor_formatter()):
                if isinstance(fmt, FixedFormatter):
                    fmt.seq = [_escaped(str(v)) for v in fmt.seq]
                elif isinstance(fmt, FuncFormatter) and not hasattr(fmt.func, "literal"):  # set_ticklabels' kind
                    fmt.func = _literal_labels(fmt.func)
    return fig


def _literal_labels(func: Any) -> Any:
    """A tick formatter function whose labels print their '$' as written."""
    def labels(x: float, pos: int | None = None) -> str:
        return _escaped(str(func(x, pos)))
    labels.literal = True  # type: ignore[attr-defined]
    return labels


@functools.cache
def _literal_figure_class() -> type:
    """matplotlib's Figure, but every measure or drawing of it (tight_layout, savefig, a notebook showing
    it) first makes its texts literal (see `literal_text`)."""
    from matplotlib.figure import Figure

    class LiteralFigure(Figure):
        def tight_layout(self, *args: Any, **kwargs: Any) -> None:
            literal_text(self)
            super().tight_layout(*args, **kwargs)

        def draw(self, renderer: Any) -> None:
            literal_text(self)
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


def text_overlaps(fig: "Figure", tolerance: float = 1.0) -> list[tuple[str, str]]:
    """The pairs of drawn texts whose boxes overlap, and the texts that lie on another panel's image,
    as (text, other) strings: overlapping text in a figure is a bug.

    The figure is drawn once (Agg, at its real size and dpi) with every text that draws itself recorded
    (multi-line texts included), then measured with matplotlib's `get_window_extent`, so hidden tick
    labels and texts outside the view do not count. Boxes must overlap by more than `tolerance` pixels
    both ways."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import AxesImage
    from matplotlib.text import Text
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    drawn: dict[int, Any] = {}
    draw = Text.draw

    def record(self: Any, renderer: Any) -> None:
        if self.get_visible() and self.get_text().strip():
            drawn[id(self)] = self
        draw(self, renderer)

    Text.draw = record  # type: ignore[method-assign]
    try:
        fig.draw(renderer)
    finally:
        Text.draw = draw  # type: ignore[method-assign]
    texts = [(t, t.get_window_extent(renderer)) for t in drawn.values()]

    def name(t: Any) -> str:
        return repr(t.get_text().replace("\n", " ")[:60])

    def overlap(a: Any, b: Any) -> bool:
        return (min(a.x1, b.x1) - max(a.x0, b.x0) > tolerance) and (min(a.y1, b.y1) - max(a.y0, b.y0) > tolerance)

    found = [(name(a), name(b)) for i, (a, ba) in enumerate(texts) for b, bb in texts[i + 1:] if overlap(ba, bb)]
    pictures = [(ax, ax.get_window_extent(renderer)) for ax in fig.axes
                if ax.get_visible() and any(isinstance(c, AxesImage) for c in ax.get_children())]
    for t, bt in texts:
        owner = t.axes
        for ax, box in pictures:
            if ax is not owner and overlap(bt, box):
                found.append((name(t), f"the image of panel {fig.axes.index(ax)}"))
    return found


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
    """A grid of image panels: each item [3,H,W] (colour), [H,W] (shown with `cmap`) or None (blank);
    laid out when drawn (constrained layout), so a suptitle added afterwards stays clear of the titles."""
    nrows, ncols = len(rows), max(len(r) for r in rows)
    fig, axes = new_figure(nrows, ncols, figsize=(cell * ncols, cell * nrows + 0.3), layout="constrained")
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
