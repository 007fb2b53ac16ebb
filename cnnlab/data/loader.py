"""Batches for training and evaluation: augmentation as whole-batch tensor ops, seeded and resumable.

`TensorLoader` keeps a dataset in memory as uint8 [N,3,H,W] and, per batch, gathers the images,
translates them by up to ±k pixels (pad + random crop), flips and cuts out as tensor ops over the
whole batch — no per-image PIL transforms, no worker processes. The order of an epoch and every
random choice in it are functions of (seed, epoch, batch index), so the loader's whole state is three
integers: a resumed run sees exactly the batches an uninterrupted one would. Under
DistributedDataParallel each rank takes its slice of every global batch (same augmentation draws),
so N processes see the same images per step as one process does.

`StreamLoader` does the same for photos too big or too varied for memory (image folders, encoded
photos of mixed sizes): worker processes decode files to the model's input size and the batch
augmentation runs on the decoded batch.

`GivenBatches` serves a user's DataLoader (cnnlab.data.given) through the same interface: its batches
as given, resized to the model's input size where they differ.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..errors import CnnlabError
from .base import Dataset, EncodedImages, GivenLoader, ImageArrays, ImageFiles


@dataclass(frozen=True)
class Augment:
    """Batch augmentation: translate ±`crop_pad` px (reflect or zero padding), horizontal flip, cutout."""

    crop_pad: int = 0
    flip: bool = False
    cutout: int = 0
    pad_mode: str = "reflect"

    @classmethod
    def parse(cls, spec: "str | Augment | None") -> "Augment":
        """'crop4,flip' / 'crop2,flip,cutout8,zeros' / 'standard' (= crop4,flip) / 'none'."""
        if isinstance(spec, Augment):
            return spec
        if spec is None or str(spec).strip().lower() in ("", "none", "off"):
            return cls()
        kw: dict = {}
        for part in str(spec).lower().replace(" ", "").split(","):
            if part in ("standard", "default"):
                kw.update(crop_pad=4, flip=True)
            elif part == "flip":
                kw["flip"] = True
            elif part.startswith("crop") and part[4:].isdigit():
                kw["crop_pad"] = int(part[4:])
            elif part.startswith("cutout") and part[6:].isdigit():
                kw["cutout"] = int(part[6:])
            elif part in ("zeros", "reflect"):
                kw["pad_mode"] = part
            else:
                raise CnnlabError(f"Unknown augmentation '{part}' in --augment '{spec}'; use e.g. "
                                  "'crop4,flip', 'crop2,flip,cutout8', 'standard' or 'none'.")
        return cls(**kw)

    @property
    def active(self) -> bool:
        return bool(self.crop_pad or self.flip or self.cutout)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        parts = ([f"crop{self.crop_pad}"] if self.crop_pad else []) + (["flip"] if self.flip else []) + \
                ([f"cutout{self.cutout}"] if self.cutout else [])
        if self.crop_pad and self.pad_mode != "reflect":
            parts.append(self.pad_mode)
        return ",".join(parts) or "none"


def augment_batch(x: torch.Tensor, aug: Augment, gen: torch.Generator, rows: slice | None = None,
                  n_all: int | None = None) -> torch.Tensor:
    """Apply `aug` to a float batch [B,3,H,W]; all random draws come from `gen`.

    Draws are made for the whole batch even when `rows` selects only part of it (a DDP rank's
    slice), so every rank consumes the generator identically.
    """
    n_all = x.shape[0] if rows is None or n_all is None else n_all
    b, _, h, w = x.shape
    if aug.crop_pad:
        k = aug.crop_pad
        dy = torch.randint(-k, k + 1, (n_all,), generator=gen)
        dx = torch.randint(-k, k + 1, (n_all,), generator=gen)
        if rows is not None:
            dy, dx = dy[rows], dx[rows]
        padded = F.pad(x, (k, k, k, k), mode="reflect" if aug.pad_mode == "reflect" and k < min(h, w) else "constant")
        r = (k + dy)[:, None] + torch.arange(h)[None]
        c = (k + dx)[:, None] + torch.arange(w)[None]
        x = padded[torch.arange(b)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None],
                   r[:, None, :, None], c[:, None, None, :]]
    if aug.flip:
        flip = torch.rand(n_all, generator=gen) < 0.5
        if rows is not None:
            flip = flip[rows]
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if aug.cutout:
        s = aug.cutout
        cy = torch.randint(0, h, (n_all,), generator=gen)
        cx = torch.randint(0, w, (n_all,), generator=gen)
        if rows is not None:
            cy, cx = cy[rows], cx[rows]
        ys, xs = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
        inside = ((ys - (cy - s // 2)[:, None, None]) >= 0) & ((ys - (cy - s // 2)[:, None, None]) < s) & \
                 ((xs - (cx - s // 2)[:, None, None]) >= 0) & ((xs - (cx - s // 2)[:, None, None]) < s)
        x = x.masked_fill(inside[:, None], 0.5)
    return x


def _seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (so epochs and batches get unrelated streams)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class TensorLoader:
    """Batches (float [B,3,H,W] in [0,1], int64 labels) from an in-memory uint8 dataset.

    Args:
        data: the images (uint8) and labels.
        batch_size: images per step over all processes (each DDP rank gets batch_size / world_size).
        shuffle: a fresh seeded permutation each epoch (training); off for evaluation.
        augment: batch augmentation (training only).
        size: resize batches to (H, W) (e.g. CIFAR images for a 224 px ImageNet model).
        drop_last: skip the final short batch (keeps BatchNorm statistics well-behaved).
    """

    def __init__(self, data: ImageArrays, batch_size: int = 128, *, shuffle: bool = True,
                 augment: Augment | str | None = None, seed: int = 0, drop_last: bool = False,
                 size: tuple[int, int] | None = None, rank: int = 0, world_size: int = 1,
                 channels_last: bool = False) -> None:
        if batch_size < 1:
            raise CnnlabError(f"--batch-size must be at least 1, got {batch_size}.")
        if world_size > 1 and batch_size % world_size:
            raise CnnlabError(f"--batch-size {batch_size} must be divisible by the {world_size} processes.")
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle
        self.augment = Augment.parse(augment)
        self.seed, self.drop_last = int(seed), drop_last
        self.size = tuple(size) if size is not None and tuple(size) != tuple(data.x.shape[-2:]) else None
        self.rank, self.world_size, self.channels_last = rank, world_size, channels_last
        self.epoch, self.batch = 0, 0

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last and n >= self.batch_size else -(-n // self.batch_size)

    @property
    def images_per_rank(self) -> int:
        return self.batch_size // self.world_size

    def order(self, epoch: int) -> torch.Tensor:
        """The permutation of the dataset used in `epoch` (identity without shuffling)."""
        if not self.shuffle:
            return torch.arange(len(self.data))
        return torch.randperm(len(self.data), generator=torch.Generator().manual_seed(_seed(self.seed, epoch)))

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batch, self.seed = int(state["epoch"]), int(state["batch"]), int(state["seed"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order(self.epoch)
        for b in range(self.batch, len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            self.batch = b + 1
            yield self._make(idx, b)
        self.epoch, self.batch = self.epoch + 1, 0

    def _make(self, idx: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = slice(self.rank, None, self.world_size) if self.world_size > 1 else None
        mine = idx if rows is None else idx[rows]
        x = self.data.x[mine].float().div_(255.0)
        if self.shuffle and self.augment.active:
            gen = torch.Generator().manual_seed(_seed(self.seed, self.epoch, b, 1))
            x = augment_batch(x, self.augment, gen, rows, len(idx))
        if self.size is not None:
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.data.y[mine]


class _FileImages(torch.utils.data.Dataset):
    """Decode one image file (a path or its bytes) to a uint8 [3,H,W] tensor at a fixed size (worker-side)."""

    def __init__(self, files: ImageFiles | EncodedImages, size: tuple[int, int]) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from ..images import Preprocessing, open_image
        pre = Preprocessing(input_size=self.size, resize=int(round(min(self.size) * 1.143)))
        img = open_image(self.files.file(i), draft_size=min(self.size))
        return (pre.apply(img) * 255).round_().to(torch.uint8), int(self.files.y[i])


class StreamLoader:
    """Batches from image files (on disk, or encoded in memory), decoded by `workers` processes; same
    interface as TensorLoader."""

    def __init__(self, data: ImageFiles | EncodedImages, batch_size: int = 64, *, size: tuple[int, int] = (224, 224),
                 shuffle: bool = True, augment: Augment | str | None = None, seed: int = 0,
                 drop_last: bool = False, workers: int = 2, rank: int = 0, world_size: int = 1,
                 channels_last: bool = False) -> None:
        self.data, self.batch_size, self.size, self.shuffle = data, batch_size, tuple(size), shuffle
        self.augment, self.seed, self.drop_last, self.workers = Augment.parse(augment), int(seed), drop_last, workers
        self.rank, self.world_size, self.channels_last = rank, world_size, channels_last
        self.epoch, self.batch = 0, 0

    __len__ = TensorLoader.__len__
    order = TensorLoader.order
    state_dict = TensorLoader.state_dict
    load_state_dict = TensorLoader.load_state_dict

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order(self.epoch)
        batches = [order[b * self.batch_size:(b + 1) * self.batch_size] for b in range(self.batch, len(self))]
        rows = slice(self.rank, None, self.world_size) if self.world_size > 1 else None
        mine = [bi if rows is None else bi[rows] for bi in batches]
        dl = torch.utils.data.DataLoader(_FileImages(self.data, self.size), batch_sampler=[m.tolist() for m in mine],
                                         num_workers=self.workers, persistent_workers=False)
        start = self.batch
        for j, (xb, yb) in enumerate(dl):
            b = start + j
            self.batch = b + 1
            x = xb.float().div_(255.0)
            if self.shuffle and self.augment.active:
                gen = torch.Generator().manual_seed(_seed(self.seed, self.epoch, b, 1))
                x = augment_batch(x, self.augment, gen, rows, len(batches[j]))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, yb.long()
        self.epoch, self.batch = self.epoch + 1, 0


class GivenBatches:
    """The training/evaluation loader over a GivenLoader: the same interface as TensorLoader (length,
    iteration, a resumable state), batches resized to the model's input size when they differ."""

    rank, world_size = 0, 1  # every process iterates the whole loader

    def __init__(self, data: GivenLoader, size: tuple[int, int] | None = None, channels_last: bool = False) -> None:
        self.data, self.size, self.channels_last = data, tuple(size) if size else None, channels_last
        self.epoch, self.batch = 0, 0

    def __len__(self) -> int:
        return len(self.data.loader)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch, "seed": 0}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        skip = self.batch
        for b, (x, y) in enumerate(self.data.batches()):
            if b < skip:  # resuming inside an epoch: the loader's batches before it were done
                continue
            self.batch = b + 1
            if self.size is not None and tuple(x.shape[-2:]) != self.size:
                x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y
        self.epoch, self.batch = self.epoch + 1, 0


def make_loader(data: Dataset, batch_size: int, *, size: tuple[int, int] | None = None, **kwargs
                ) -> TensorLoader | StreamLoader | GivenBatches:
    """The right loader for a dataset: in memory for decoded arrays, streaming for image files, and a
    user's DataLoader as given (its own batch size, order and transforms: no cnnlab augmentation)."""
    if isinstance(data, GivenLoader):
        return GivenBatches(data, size, kwargs.get("channels_last", False))
    if isinstance(data, ImageArrays):
        kwargs.pop("workers", None)
        return TensorLoader(data, batch_size, size=size, **kwargs)
    return StreamLoader(data, batch_size, size=size or (224, 224), **kwargs)
