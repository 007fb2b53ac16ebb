"""The images of a dataset as float tensors in [0, 1] at a model's input size, and the one way every
command picks its images: a part of a source, a seeded random `--limit`, class names.

Decoded arrays are resized as a batch; photo files and encoded photos of any size go through the
model's preprocessing (short-side resize and centre crop, or a whole-image resize), exactly as
`cnnlab.load_images` prepares a single photo.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import CnnlabError
from .base import DATASET_TYPES, Dataset, GivenLoader, ImageArrays, seeded_subset
from .datasets import load_dataset, name_classes

if TYPE_CHECKING:
    from ..images import Preprocessing


def select_images(data: str | Path | Dataset, split: str = "test", *, limit: int | None = None, seed: int = 0,
                  data_dir: str | Path | None = None, classes: Sequence[str] | str | None = None,
                  fallback_all: bool = True) -> Dataset:
    """The images a command works on: part `split` of `data` (a source that holds nothing out gives all
    its images unless `fallback_all` is False), then a seeded random `limit` of them
    (`seeded_subset`), with `classes` (a list, a comma list or a file) as the class names. A DataLoader
    is used as given (its consumer takes the `limit` of its images)."""
    ds = data if isinstance(data, DATASET_TYPES) else load_dataset(data, split, data_dir, decode=True,
                                                                   fallback_all=fallback_all)
    if classes is not None:
        ds = name_classes(ds, classes)
    return ds if isinstance(ds, GivenLoader) else seeded_subset(ds, limit, seed)


def image_batches(data: Dataset, preprocessing: Preprocessing, batch_size: int = 64
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images float [B,3,H,W] in [0,1] at the preprocessing's input size, labels [B]) in dataset order."""
    from ..images import load_images
    if batch_size < 1:
        raise CnnlabError(f"The batch size must be at least 1, not {batch_size}.")
    if isinstance(data, GivenLoader):  # its own batches and transforms
        for x, y in data.batches():
            yield (x if tuple(x.shape[-2:]) == tuple(preprocessing.input_size) else preprocessing.apply_tensor(x)), y
        return
    for i in range(0, len(data), batch_size):
        idx = range(i, min(i + batch_size, len(data)))
        if isinstance(data, ImageArrays):
            x = preprocessing.apply_tensor(data.floats(slice(idx.start, idx.stop)))
            y = data.y[idx.start:idx.stop].long()
        else:
            x = load_images([data.file(j) for j in idx], preprocessing)
            y = torch.as_tensor(data.y[idx.start:idx.stop], dtype=torch.long)
        yield x, y


def image_tensors(data: Dataset, preprocessing: Preprocessing) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of `data` at once (see `image_batches`): for the small sets an attack or a patch uses."""
    parts = list(image_batches(data, preprocessing, 256))
    if not parts:
        raise CnnlabError(f"The data '{data.name}' holds no images.")
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
