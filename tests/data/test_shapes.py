"""The offline stand-in dataset: reproducible, balanced, the shape of CIFAR-10, and its classes differ."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.data import SHAPE_CLASSES, ImageArrays, shapes
from cnnlab.errors import CnnlabError


def test_shapes_are_reproducible_balanced_uint8() -> None:
    a, b = shapes(250, 32, seed=3), shapes(250, 32, seed=3)
    assert isinstance(a, ImageArrays) and a.x.shape == (250, 3, 32, 32) and a.x.dtype == torch.uint8
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, shapes(250, 32, seed=4).x)
    assert a.classes == list(SHAPE_CLASSES) and np.bincount(a.y.numpy()).tolist() == [25] * 10
    assert shapes(40, 96).x.shape[-2:] == (96, 96)


def test_each_class_has_its_own_form() -> None:
    """Foreground fraction differs by class (a disk fills more than a ring, stripes about half)."""
    d = shapes(500, 32, seed=0, noise=0.0)
    x = d.x.float()
    corner = x[:, :, :1, :1]  # backgrounds of shapes; stripes' corners are either colour
    fg = ((x - corner).abs().sum(1) > 30).float().mean((1, 2))
    means = [float(fg[d.y == c].mean()) for c in range(10)]
    disk, ring, stripes = means[0], means[1], means[6:9]
    assert ring < disk and all(0.25 < s < 0.75 for s in stripes)


def test_bad_arguments_are_one_sentence() -> None:
    with pytest.raises(CnnlabError, match="at least"):
        shapes(0)
