"""A small labelled image set made on the spot, for trying things out with no download: ten classes of
simple shapes and textures (a disk, a ring, a square, a frame, a triangle, a plus, stripes in three
orientations, a checkerboard), each in random colours on a random background, at a random place and
size, with pixel noise.

    from cnnlab.data import shapes
    data = shapes(2000, size=32, seed=0)      # ImageArrays: uint8 [2000, 3, 32, 32], 200 per class

Where a shape sits and how it is coloured vary, so a classifier must learn its form: a linear model on
the raw pixels does poorly, a small CNN learns it in a few epochs. It stands in for CIFAR-10 (same size,
ten classes) where the real set cannot be downloaded; it is not a benchmark.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import CnnlabError
from .base import ImageArrays

SHAPE_CLASSES = ("disk", "ring", "square", "frame", "triangle", "plus", "horizontal stripes", "vertical stripes",
                 "diagonal stripes", "checkerboard")


def _masks(kind: int, dx: np.ndarray, dy: np.ndarray, r: np.ndarray, period: np.ndarray, phase: np.ndarray
           ) -> np.ndarray:
    """Foreground of class `kind` [n, S, S] for offsets from each image's centre (dx, dy), size r, period."""
    r, period, phase = r[:, None, None], period[:, None, None], phase[:, None, None]
    dist = np.sqrt(dx ** 2 + dy ** 2)
    box = np.maximum(np.abs(dx), np.abs(dy))
    inside = box <= r
    wave = (lambda t: np.sin(2 * np.pi * t / period + phase) > 0)
    if kind == 0:
        return dist <= r
    if kind == 1:
        return (dist <= r) & (dist >= 0.6 * r)
    if kind == 2:
        return inside
    if kind == 3:
        return inside & (box >= 0.65 * r)
    if kind == 4:  # apex up: below the apex, above the base, between the two slanted sides
        return (dy <= 0.8 * r) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if kind == 5:
        return inside & ((np.abs(dx) <= 0.3 * r) | (np.abs(dy) <= 0.3 * r))
    if kind == 6:
        return wave(dy)
    if kind == 7:
        return wave(dx)
    if kind == 8:
        return wave((dx + dy) / np.sqrt(2))
    return wave(dx) ^ wave(dy)


def shapes(n: int = 2000, size: int = 32, seed: int = 0, noise: float = 0.06, name: str = "shapes") -> ImageArrays:
    """`n` images of SHAPE_CLASSES (as balanced as `n` allows, in random order), `size` pixels square,
    made reproducibly from `seed`."""
    if n < 1 or size < 8:
        raise CnnlabError(f"shapes() needs at least 1 image of at least 8 pixels, not n={n}, size={size}.")
    rng = np.random.default_rng(seed)
    k = len(SHAPE_CLASSES)
    y = rng.permutation(np.arange(n) % k)
    grid = np.linspace(-1.0, 1.0, size)
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    centre = rng.uniform(-0.3, 0.3, (2, n))
    dx, dy = gx[None] - centre[0][:, None, None], gy[None] - centre[1][:, None, None]
    r = rng.uniform(0.35, 0.65, n)
    period = rng.uniform(0.3, 0.6, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    mask = np.zeros((n, size, size), dtype=bool)
    for c in range(k):
        sel = y == c
        if sel.any():
            mask[sel] = _masks(c, dx[sel], dy[sel], r[sel], period[sel], phase[sel])
    background = rng.uniform(0.0, 1.0, (n, 3))
    foreground = (background + rng.uniform(0.35, 0.65, (n, 3))) % 1.0  # every channel differs by 0.35 or more
    img = np.where(mask[:, None], foreground[:, :, None, None], background[:, :, None, None])
    img = img + rng.normal(0.0, noise, img.shape)
    x = torch.from_numpy(np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return ImageArrays(x, torch.from_numpy(y.astype(np.int64)), list(SHAPE_CLASSES), name,
                       {"generator": "cnnlab.data.shapes", "seed": seed, "size": size})
