"""Pictures only explanations draw: labelled grids drawn with PIL (no matplotlib, milliseconds) and
TensorBoard images. Heat maps, overlays and matplotlib figures come from cnnlab.figures.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..figures import colorize, overlay  # noqa: F401 - tests/serve/test_app.py imports colorize from here


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
    from ..tensorboard_log import summary_writer
    with summary_writer(logdir) as w:
        for tag, img in images.items():
            w.add_image(tag, img.detach().float().cpu().clamp(0, 1), step)
    return Path(logdir)
