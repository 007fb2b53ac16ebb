"""The two shapes a dataset takes in cnnlab: images in memory, or image files on disk.

Small datasets (CIFAR, .npz arrays, a few thousand photos) live in memory as uint8 tensors and are
augmented by whole batches; large folders stream from disk. Both carry their class names.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class ImageArrays:
    """Images in memory: `x` uint8 [N, 3, H, W], `y` int64 [N] (or -1 where unlabelled), `classes`."""

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4 or self.x.shape[1] != 3:
            raise ValueError(f"ImageArrays.x must be uint8 [N,3,H,W], got {self.x.dtype} {tuple(self.x.shape)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} images but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index: torch.Tensor | np.ndarray | list[int] | slice) -> "ImageArrays":
        if not isinstance(index, slice):
            index = torch.as_tensor(index, dtype=torch.long)
        return ImageArrays(self.x[index], self.y[index], self.classes, self.name, dict(self.meta))

    def floats(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Float [n, 3, H, W] in [0, 1] (all images, or those at `index`)."""
        x = self.x if index is None else self.x[index]
        return x.float().div_(255.0)


@dataclass
class ImageFiles:
    """Image files on disk with labels: decoded (and preprocessed) on the fly."""

    paths: list[str]
    y: np.ndarray
    classes: list[str]
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index) -> "ImageFiles":  # noqa: ANN001
        index = np.asarray(index)
        return ImageFiles([self.paths[i] for i in index], self.y[index], self.classes, self.name, dict(self.meta))


Dataset = ImageArrays | ImageFiles


@dataclass
class Split:
    """A train/test (or train/validation) pair of one dataset."""

    train: Dataset
    test: Dataset

    @property
    def classes(self) -> list[str]:
        return self.train.classes


def seeded_split(n: int, fraction: float, seed: int = 0, labels: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (first, second) with `fraction` of n in the first part, stratified by `labels` if given."""
    rng = np.random.default_rng(seed)
    if labels is None:
        perm = rng.permutation(n)
        k = int(round(n * fraction))
        return np.sort(perm[:k]), np.sort(perm[k:])
    first, second = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * fraction))
        first.append(idx[:k])
        second.append(idx[k:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))
