"""The four shapes a dataset takes in cnnlab: decoded images in memory, image files on disk, encoded
image files held in memory, or a user's DataLoader.

Small datasets of one image size (CIFAR, .npz arrays) live in memory as uint8 tensors and are
augmented by whole batches (`ImageArrays`); folders of photos stream from disk (`ImageFiles`);
photos of many sizes packed into one file (the JPEG-bytes `.npz` layout: one buffer of JPEG files
back to back, `offsets` marking them) stay encoded until they are decoded at a model's input size
(`EncodedImages`). These three carry labels (-1 where unlabelled) and class names, and `subset`.
A user's DataLoader (`GivenLoader`) is used as given, batch by batch: its labels are known only
batch by batch and it cannot be subset.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
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


def batch_tensors(batch: object, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One DataLoader batch -> (float images [B,3,H,W] in [0,1], int64 labels; -1 where unlabelled)."""
    if isinstance(batch, dict):
        x, y = batch.get("image"), batch.get("label")
    elif isinstance(batch, (tuple, list)):
        x, y = batch[0], (batch[1] if len(batch) > 1 else None)
    else:
        x, y = batch, None
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise CnnlabError(f"A batch of {where} holds images of shape {got}; expected a tensor [B,3,H,W] (add "
                          "transforms.ToTensor() to its dataset).")
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    else:
        x = x.float()
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise CnnlabError(f"A batch of {where} has pixel values from {lo:.3g} to {hi:.3g}; give images in [0, 1] "
                              "(drop transforms.Normalize: the model normalizes inside).")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    y = torch.full((len(x),), -1, dtype=torch.long) if y is None else torch.as_tensor(y).long().reshape(-1)
    return x, y


@dataclass
class GivenLoader:
    """A user's DataLoader, used as given: its batches, in its order, with its transforms.

    `classes` come from its dataset's `classes` attribute (else the model's); labels are checked batch
    by batch. It cannot be split or subset."""

    loader: torch.utils.data.DataLoader
    classes: list[str]
    name: str = "loader"
    meta: dict = field(default_factory=dict)
    y = None  # labels are only known batch by batch

    def __len__(self) -> int:
        try:
            return len(self.loader.dataset)  # type: ignore[arg-type]
        except TypeError:
            return len(self.loader) * (self.loader.batch_size or 1)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index: object) -> "GivenLoader":
        raise CnnlabError(f"'{self.name}' is a DataLoader, used as given: it cannot be split or subset; pass the "
                          "validation data separately (val=...) and limit the data in the loader itself.")

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Its batches as (float images in [0,1], int64 labels)."""
        for batch in self.loader:
            yield batch_tensors(batch, f"'{self.name}'")

    def tensors(self, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Its first `limit` images (all when None) in memory as float [N,3,H,W] and their labels."""
        xs, ys, n = [], [], 0
        for x, y in self.batches():
            xs.append(x)
            ys.append(y)
            n += len(x)
            if limit is not None and n >= limit:
                break
        if not xs:
            raise CnnlabError(f"The DataLoader '{self.name}' gave no batches.")
        x, y = torch.cat(xs), torch.cat(ys)
        return (x, y) if limit is None else (x[:limit], y[:limit])


Dataset = ImageArrays | ImageFiles | EncodedImages | GivenLoader
DATASET_TYPES = (ImageArrays, ImageFiles, EncodedImages, GivenLoader)


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


def signature(data: Dataset, sample: int = 64) -> str | None:
    """A short hash of exactly this data, in this order: the number of images, the class names, every
    label, and the pixels (or file bytes) of `sample` images spread evenly over it; cheap on any size.
    A resumed run compares it with the one it recorded, since resuming on other data (or the same
    images in another order, or relabelled) would silently train on something else. A user's DataLoader
    has none (None): only iterating it would tell, and that is its own business."""
    if isinstance(data, GivenLoader):
        return None
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
        if isinstance(data, GivenLoader):
            data.subset([])  # a DataLoader is never split: this raises the one-sentence error
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
