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
augmentation runs on the decoded batch. A file that cannot be read is skipped with a warning naming it
(its batch is one image shorter) and counted in `.skipped`; only when more than MAX_UNREADABLE of the
files fail does the loader stop, in one sentence.

Both yield batches on `device`. On a GPU the whole uint8 array moves there once (as airbench keeps
CIFAR-10 on the GPU) and batches are gathered and augmented there, with each batch's draws made by a
generator on that device seeded as on the CPU (so a GPU's batches are as reproducible as the CPU's,
though not equal to them); streamed batches come from pinned memory with non-blocking copies. On the
CPU the batches are exactly those of earlier versions.

`GivenBatches` serves a user's DataLoader (cnnlab.data.given) through the same interface: its batches
as given, resized to the model's input size where they differ.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..errors import CnnlabError, ImageError
from .base import Dataset, EncodedImages, GivenLoader, ImageArrays, ImageFiles

#: A streamed dataset stops (one sentence) when more than this share of its files cannot be read; fewer
#: are skipped with a warning each, as a handful of broken downloads in a photo folder should not end a run.
MAX_UNREADABLE = 0.10
_warned: set[str] = set()  # each unreadable file is reported once per process, not once per epoch


@dataclass(frozen=True)
class Augment:
    """Batch augmentation: translate ±`crop_pad` px (reflect or zero padding), horizontal flip, cutout.

    `altflip` (airbench's alternating flip) mirrors each image in every other epoch instead of at
    random: a seeded coin per image picks whether it starts mirrored, so over any two epochs the
    network sees every image both ways."""

    crop_pad: int = 0
    flip: bool = False
    cutout: int = 0
    pad_mode: str = "reflect"
    altflip: bool = False

    @classmethod
    def parse(cls, spec: "str | Augment | None") -> "Augment":
        """'crop4,flip' / 'crop2,flip,cutout8,zeros' / 'crop2,altflip' / 'standard' (= crop4,flip) / 'none'."""
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
            elif part == "altflip":
                kw["altflip"] = True
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
        return bool(self.crop_pad or self.flip or self.cutout or self.altflip)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        parts = ([f"crop{self.crop_pad}"] if self.crop_pad else []) + (["flip"] if self.flip else []) + \
                (["altflip"] if self.altflip else []) + ([f"cutout{self.cutout}"] if self.cutout else [])
        if self.crop_pad and self.pad_mode != "reflect":
            parts.append(self.pad_mode)
        return ",".join(parts) or "none"


def augment_batch(x: torch.Tensor, aug: Augment, gen: torch.Generator, rows: slice | None = None,
                  n_all: int | None = None, mirrored: torch.Tensor | None = None) -> torch.Tensor:
    """Apply `aug` to a float batch [B,3,H,W]; all random draws come from `gen`; `mirrored` [B] says
    which images the alternating flip mirrors (see `alternating_flips`).

    Draws are made for the whole batch even when `rows` selects only part of it (a DDP rank's
    slice), so every rank consumes the generator identically.
    """
    n_all = x.shape[0] if rows is None or n_all is None else n_all
    b, _, h, w = x.shape
    g, dev = gen.device, x.device  # draws on the generator's device; index arithmetic on the images'
    if aug.crop_pad:
        k = aug.crop_pad
        dy = torch.randint(-k, k + 1, (n_all,), generator=gen, device=g)
        dx = torch.randint(-k, k + 1, (n_all,), generator=gen, device=g)
        if rows is not None:
            dy, dx = dy[rows], dx[rows]
        padded = F.pad(x, (k, k, k, k), mode="reflect" if aug.pad_mode == "reflect" and k < min(h, w) else "constant")
        r = (k + dy.to(dev))[:, None] + torch.arange(h, device=dev)[None]
        c = (k + dx.to(dev))[:, None] + torch.arange(w, device=dev)[None]
        x = padded[torch.arange(b, device=dev)[:, None, None, None],
                   torch.arange(x.shape[1], device=dev)[None, :, None, None], r[:, None, :, None], c[:, None, None, :]]
    if aug.flip:
        flip = torch.rand(n_all, generator=gen, device=g) < 0.5
        if rows is not None:
            flip = flip[rows]
        x = torch.where(flip.to(dev)[:, None, None, None], x.flip(3), x)
    if aug.altflip and mirrored is not None:
        x = torch.where(mirrored.to(dev)[:, None, None, None], x.flip(3), x)
    if aug.cutout:
        s = aug.cutout
        cy = torch.randint(0, h, (n_all,), generator=gen, device=g).to(dev)
        cx = torch.randint(0, w, (n_all,), generator=gen, device=g).to(dev)
        if rows is not None:
            cy, cx = cy[rows], cx[rows]
        ys, xs = torch.arange(h, device=dev)[None, :, None], torch.arange(w, device=dev)[None, None, :]
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


def alternating_flips(n: int, seed: int) -> torch.Tensor:
    """A seeded coin per image [n]: whether it is mirrored in even epochs (and not in odd ones)."""
    return torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(_seed(seed, 2))).bool()


def _mirrored(aug: Augment, coins: torch.Tensor | None, idx: torch.Tensor, epoch: int) -> torch.Tensor | None:
    return coins[idx.to(coins.device)] ^ bool(epoch % 2) if aug.altflip and coins is not None else None


class TensorLoader:
    """Batches (float [B,3,H,W] in [0,1], int64 labels) from an in-memory uint8 dataset.

    Args:
        data: the images (uint8) and labels.
        batch_size: images per step over all processes (each DDP rank gets batch_size / world_size).
        shuffle: a fresh seeded permutation each epoch (training); off for evaluation.
        augment: batch augmentation (training only).
        size: resize batches to (H, W) (e.g. CIFAR images for a 224 px ImageNet model).
        drop_last: skip the final short batch (keeps BatchNorm statistics well-behaved).
        device: where the batches are made; the uint8 images move there once, here.
    """

    def __init__(self, data: ImageArrays, batch_size: int = 128, *, shuffle: bool = True,
                 augment: Augment | str | None = None, seed: int = 0, drop_last: bool = False,
                 size: tuple[int, int] | None = None, rank: int = 0, world_size: int = 1,
                 channels_last: bool = False, device: torch.device | str | None = None) -> None:
        if batch_size < 1:
            raise CnnlabError(f"--batch-size must be at least 1, got {batch_size}.")
        if world_size > 1 and batch_size % world_size:
            raise CnnlabError(f"--batch-size {batch_size} must be divisible by the {world_size} processes.")
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle
        self.augment = Augment.parse(augment)
        self.seed, self.drop_last = int(seed), drop_last
        self.size = tuple(size) if size is not None and tuple(size) != tuple(data.x.shape[-2:]) else None
        self.rank, self.world_size, self.channels_last = rank, world_size, channels_last
        self.device = torch.device(device if device is not None else "cpu")
        self._x, self._y = data.x.to(self.device), data.y.to(self.device)  # once; the same tensors on the CPU
        self.epoch, self.batch = 0, 0
        self.coins = alternating_flips(len(data), self.seed) if self.augment.altflip else None

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
        order = self.order(self.epoch).to(self.device)  # drawn on the CPU on every device: the same order
        for b in range(self.batch, len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            self.batch = b + 1
            yield self._make(idx, b)
        self.epoch, self.batch = self.epoch + 1, 0

    def _make(self, idx: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = slice(self.rank, None, self.world_size) if self.world_size > 1 else None
        mine = idx if rows is None else idx[rows]
        x = self._x[mine].float().div_(255.0)
        if self.shuffle and self.augment.active:
            gen = torch.Generator(device=self.device).manual_seed(_seed(self.seed, self.epoch, b, 1))
            x = augment_batch(x, self.augment, gen, rows, len(idx), _mirrored(self.augment, self.coins, mine, self.epoch))
        if self.size is not None:
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self._y[mine]


class _FileImages(torch.utils.data.Dataset):
    """Decode one image file (a path or its bytes) to a uint8 [3,H,W] tensor at a fixed size (worker-side);
    a file that cannot be read gives a blank image and the reason, for the loader to drop."""

    def __init__(self, files: ImageFiles | EncodedImages, size: tuple[int, int]) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, str]:
        from ..images import Preprocessing, open_image
        pre = Preprocessing(input_size=self.size, resize=int(round(min(self.size) * 1.143)))
        try:
            img = open_image(self.files.file(i), draft_size=min(self.size))
        except ImageError as e:
            return torch.zeros((3, *self.size), dtype=torch.uint8), int(self.files.y[i]), i, str(e)
        return (pre.apply(img) * 255).round_().to(torch.uint8), int(self.files.y[i]), i, ""


class StreamLoader:
    """Batches from image files (on disk, or encoded in memory), decoded by `workers` processes; same
    interface as TensorLoader. For a GPU, the decoded uint8 batches wait in pinned memory and are
    copied without blocking; augmentation runs on the GPU."""

    def __init__(self, data: ImageFiles | EncodedImages, batch_size: int = 64, *, size: tuple[int, int] = (224, 224),
                 shuffle: bool = True, augment: Augment | str | None = None, seed: int = 0,
                 drop_last: bool = False, workers: int = 2, rank: int = 0, world_size: int = 1,
                 channels_last: bool = False, device: torch.device | str | None = None) -> None:
        self.data, self.batch_size, self.size, self.shuffle = data, batch_size, tuple(size), shuffle
        self.augment, self.seed, self.drop_last, self.workers = Augment.parse(augment), int(seed), drop_last, workers
        self.rank, self.world_size, self.channels_last = rank, world_size, channels_last
        self.device = torch.device(device if device is not None else "cpu")
        self.epoch, self.batch = 0, 0
        self.skipped: dict[int, str] = {}  # index in the dataset -> why its file could not be read
        self.coins = alternating_flips(len(data), self.seed) if self.augment.altflip else None

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
                                         num_workers=self.workers, persistent_workers=False,
                                         pin_memory=self.device.type == "cuda")
        start = self.batch
        for j, (xb, yb, index, why) in enumerate(dl):
            b = start + j
            self.batch = b + 1
            if self.device.type != "cpu":
                xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
            x = xb.float().div_(255.0)
            if self.shuffle and self.augment.active:  # every row drawn for, so a skipped file changes no draws
                gen = torch.Generator(device=self.device).manual_seed(_seed(self.seed, self.epoch, b, 1))
                x = augment_batch(x, self.augment, gen, rows, len(batches[j]),
                                  _mirrored(self.augment, self.coins, mine[j], self.epoch))
            readable = [k for k, reason in enumerate(why) if not reason]
            if len(readable) < len(why):
                for k in set(range(len(why))) - set(readable):
                    self._skip(int(index[k]), why[k])
                if not readable:
                    continue
                x, yb = x[readable], yb[readable]
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, yb.long()
        self.epoch, self.batch = self.epoch + 1, 0

    def _skip(self, i: int, why: str) -> None:
        """Count an unreadable file (warning once), and stop when too many are."""
        self.skipped[i] = why
        if why not in _warned:
            _warned.add(why)
            print(f"warning: skipping an unreadable file: {why}", file=sys.stderr, flush=True)
        if len(self.skipped) > max(1, int(MAX_UNREADABLE * len(self.data))):
            raise CnnlabError(f"{len(self.skipped)} of the {len(self.data)} image files of '{self.data.name}' could "
                              f"not be read, more than the {MAX_UNREADABLE:.0%} that are skipped (first: "
                              f"{next(iter(self.skipped.values())).rstrip('.')}); fix or remove them.")


class GivenBatches:
    """The training/evaluation loader over a GivenLoader: the same interface as TensorLoader (length,
    iteration, a resumable state), batches moved to `device` and resized to the model's input size when
    they differ."""

    rank, world_size = 0, 1  # every process iterates the whole loader

    def __init__(self, data: GivenLoader, size: tuple[int, int] | None = None, channels_last: bool = False,
                 device: torch.device | str | None = None) -> None:
        self.data, self.size, self.channels_last = data, tuple(size) if size else None, channels_last
        self.device = torch.device(device if device is not None else "cpu")
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
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
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
        return GivenBatches(data, size, kwargs.get("channels_last", False), kwargs.get("device"))
    if isinstance(data, ImageArrays):
        kwargs.pop("workers", None)
        return TensorLoader(data, batch_size, size=size, **kwargs)
    return StreamLoader(data, batch_size, size=size or (224, 224), **kwargs)
