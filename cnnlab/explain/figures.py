"""Pictures of explanations: heat maps, overlays, labelled grids, TensorBoard images.

matplotlib is imported inside the functions that draw (cold start of `cnnlab predict` matters).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from ..images import normalize01


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


def save_figure(fig, path: str | Path) -> Path:  # noqa: ANN001
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def panel_figure(rows: Sequence[Sequence[torch.Tensor]], titles: Sequence[Sequence[str]] | None = None,
                 row_labels: Sequence[str] | None = None, cell: float = 2.0, cmap: str = "gray"):
    """A grid of image panels: each item [3,H,W] (colour), [H,W] (shown with `cmap`) or None (blank)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    nrows, ncols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows + 0.3), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            ax.axis("off")
            if j >= len(row) or row[j] is None:
                continue
            img = row[j].detach().float().cpu()
            if img.dim() == 3:
                ax.imshow(img.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            else:
                ax.imshow(img.numpy(), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            if titles and j < len(titles[i]) and titles[i][j]:
                ax.set_title(titles[i][j], fontsize=8)
        if row_labels and i < len(row_labels):
            axes[i][0].text(-0.08, 0.5, row_labels[i], transform=axes[i][0].transAxes, rotation=90,
                            ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def labeled_grid(rows: Sequence[Sequence[torch.Tensor]], titles: Sequence[Sequence[str]], pad: int = 4,
                 text_h: int = 14) -> torch.Tensor:
    """A [3,H,W] grid of equally sized [3,h,w] tiles, each with a one-line title above it (PIL text,
    no matplotlib: the tour draws its figures in milliseconds)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from ..images import to_uint8
    h, w = rows[0][0].shape[-2:]
    ncols = max(len(r) for r in rows)
    canvas = Image.new("RGB", (ncols * (w + pad) + pad, len(rows) * (h + text_h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            x0, y0 = pad + j * (w + pad), pad + i * (h + text_h + pad)
            canvas.paste(Image.fromarray(to_uint8(tile)), (x0, y0 + text_h))
            title = titles[i][j] if i < len(titles) and j < len(titles[i]) else ""
            draw.text((x0 + 1, y0 + 1), title[: max(4, w // 6)], fill=(0, 0, 0))
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255


def write_tensorboard(logdir: str | Path, images: dict[str, torch.Tensor], step: int = 0) -> Path:
    """Write [3,H,W] images in [0,1] as TensorBoard image summaries under `logdir`."""
    from torch.utils.tensorboard import SummaryWriter
    with SummaryWriter(str(logdir)) as w:
        for tag, img in images.items():
            w.add_image(tag, img.detach().float().cpu().clamp(0, 1), step)
    return Path(logdir)
