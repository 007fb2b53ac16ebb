"""The three shapes a dataset takes in cnnlab: decoded images in memory, image files on disk, or
encoded image files held in memory.

Small datasets of one image size (CIFAR, .npz arrays) live in memory as uint8 tensors and are
augmented by whole batches (`ImageArrays`); folders of photos stream from disk (`ImageFiles`);
photos of many sizes packed into one file (the JPEG-bytes `.npz` layout: one buffer of JPEG files
back to back, `offsets` marking them) stay encoded until they are decoded at a model's input size
(`EncodedImages`). All three carry labels (-1 where unlabelled) and class names, and `subset`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import CnnlabError


class _Labelled:
    """What every dataset shape has: a label per image in `y` (-1 where unlabelled) and `classes`."""

    y: torch.Tensor | np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class ImageArrays(_Labelled):
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

    def subset(self, index: torch.Tensor | np.ndarray | list[int] | slice) -> "ImageArrays":
        if not isinstance(index, slice):
            index = torch.as_tensor(index, dtype=torch.long)
        return ImageArrays(self.x[index], self.y[index], self.classes, self.name, dict(self.meta))

    def floats(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Float [n, 3, H, W] in [0, 1] (all images, or those at `index`)."""
        x = self.x if index is None else self.x[index]
        return x.float().div_(255.0)


@dataclass
class ImageFiles(_Labelled):
    """Image files on disk with labels: decoded (and preprocessed) on the fly."""

    paths: list[str]
    y: np.ndarray
    classes: list[str]
    name: str = ""
    meta: dict = field(default_factory=dict)

    def subset(self, index: np.ndarray | list[int] | range) -> "ImageFiles":
        index = np.asarray(index, dtype=np.int64)
        return ImageFiles([self.paths[i] for i in index], self.y[index], self.classes, self.name, dict(self.meta))

    def file(self, i: int) -> str:
        """What `cnnlab.images.open_image` reads for image i: its path."""
        return self.paths[i]


@dataclass
class EncodedImages(_Labelled):
    """Encoded image files held in memory (slices of one byte buffer), with labels and class names."""

    buffer: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    y: np.ndarray
    classes: list[str]
    name: str = ""
    meta: dict = field(default_factory=dict)

    def file(self, i: int) -> bytes:
        """What `cnnlab.images.open_image` reads for image i: the bytes of its file."""
        return self.buffer[self.starts[i]:self.ends[i]].tobytes()

    def subset(self, index: np.ndarray | list[int] | range) -> "EncodedImages":
        index = np.asarray(index, dtype=np.int64)
        return EncodedImages(self.buffer, self.starts[index], self.ends[index], self.y[index], self.classes,
                             self.name, dict(self.meta))


Dataset = ImageArrays | ImageFiles | EncodedImages
DATASET_TYPES = (ImageArrays, ImageFiles, EncodedImages)


def concat(first: Dataset, second: Dataset) -> Dataset:
    """The images of `first` followed by those of `second` (two parts of one dataset)."""
    if isinstance(first, ImageArrays) and isinstance(second, ImageArrays):
        return ImageArrays(torch.cat([first.x, second.x]), torch.cat([first.y, second.y]), first.classes,
                           first.name, dict(first.meta))
    if isinstance(first, ImageFiles) and isinstance(second, ImageFiles):
        return ImageFiles(first.paths + second.paths, np.concatenate([first.y, second.y]), first.classes,
                          first.name, dict(first.meta))
    if isinstance(first, EncodedImages) and isinstance(second, EncodedImages) and first.buffer is second.buffer:
        return EncodedImages(first.buffer, np.concatenate([first.starts, second.starts]),
                             np.concatenate([first.ends, second.ends]), np.concatenate([first.y, second.y]),
                             first.classes, first.name, dict(first.meta))
    raise TypeError(f"cannot join a {type(first).__name__} and a {type(second).__name__}")


def signature(data: Dataset, sample: int = 64) -> str:
    """A short hash of exactly this data, in this order: the number of images, the class names, every
    label, and the pixels (or file bytes) of `sample` images spread evenly over it; cheap on any size.
    A resumed run compares it with the one it recorded, since resuming on other data (or the same
    images in another order, or relabelled) would silently train on something else."""
    import hashlib
    h = hashlib.sha256()
    h.update(f"{type(data).__name__}:{len(data)}:{'|'.join(map(str, data.classes))}".encode())
    h.update(np.ascontiguousarray(np.asarray(data.y, dtype=np.int64)).tobytes())
    picks = np.unique(np.linspace(0, len(data) - 1, num=min(sample, len(data))).astype(np.int64)) if len(data) else []
    for i in picks:
        if isinstance(data, ImageArrays):
            h.update(data.x[int(i)].contiguous().numpy().tobytes())
        elif isinstance(data, EncodedImages):
            h.update(data.file(int(i)))
        else:  # a file on disk: its size and first MB (a file that cannot be read counts as such)
            try:
                with open(data.file(int(i)), "rb") as f:
                    h.update(f"{os.fstat(f.fileno()).st_size}:".encode() + f.read(1 << 20))
            except OSError as e:
                h.update(f"unreadable:{e.errno}".encode())
    return h.hexdigest()[:16]


#: The names a part of a dataset goes by: the held-out part is called test or val(idation).
TEST_PARTS = ("test", "val", "valid", "validation")
PARTS = ("train", *TEST_PARTS, "all")


@dataclass
class Split:
    """A dataset's training part and held-out part (None when the source holds out nothing: a file
    without a split, which the consumer splits itself). `whole`: all images in the source's own
    order, when the parts were cut from one file or folder."""

    train: Dataset
    test: Dataset | None = None
    whole: Dataset | None = None

    @property
    def classes(self) -> list[str]:
        return self.train.classes

    @property
    def name(self) -> str:
        return (self.whole if self.whole is not None else self.train).name

    def all(self) -> Dataset:
        """Every image of the source."""
        if self.whole is not None:
            return self.whole
        return self.train if self.test is None else concat(self.train, self.test)

    def part(self, which: str) -> Dataset:
        """'train', 'test' (or 'val') or 'all'. A source without a held-out part answers 'test' with
        all its images (that is what it has)."""
        if which == "all":
            return self.all()
        if which in TEST_PARTS:
            return self.test if self.test is not None else self.all()
        if which == "train":
            return self.train
        raise CnnlabError(f"Unknown split '{which}'; use train, test or all.")

    def holdout(self, fraction: float, seed: int = 0) -> "Split":
        """This split, or, when the source holds nothing out, a seeded split with `fraction` of each
        class held out (see `seeded_split`)."""
        if self.test is not None:
            return self
        data = self.train
        labels = np.asarray(data.y)
        labelled = len(labels) and labels.min() >= 0
        keep, held = seeded_split(len(data), 1.0 - fraction, seed, labels if labelled else None)
        train, test = data.subset(keep), data.subset(held)
        train.meta["part"], test.meta["part"] = "train", "test"
        return Split(train, test, data)


def seeded_split(n: int, fraction: float, seed: int = 0, labels: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (first, second) with `fraction` of n in the first part, stratified by `labels` if given:
    per class, a permutation from numpy's generator seeded with `seed`, its first round(fraction * n_c)
    images in the first part.

    Kept instead of scikit-learn's `train_test_split(stratify=)` on purpose: that draws another
    permutation, so every existing seed would hold out other images (measured on CIFAR-10's test
    labels, seeds 0 and 1: only 9-10% of the 1,000 held-out images are the same, i.e. chance), and it
    refuses a class with a single image, which small folders have."""
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
