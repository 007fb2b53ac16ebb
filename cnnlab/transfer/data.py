"""Which photos a probe learns from: `pets`, `miniplaces`, an image folder, or an `.npz` file.

Photos of many sizes (Pets, MiniPlaces, a user's folder) stay encoded until the feature extractor
decodes them at the model's input size: `ImageFiles` on disk, or `EncodedImages` for the JPEG-bytes
`.npz` layout (one buffer of JPEG files back to back, `offsets` marking them).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.base import ImageArrays, Split, seeded_split
from ..errors import CnnlabError, unknown

#: Named datasets `--data` accepts besides a folder or a file.
NAMED_DATASETS = ("pets", "miniplaces")


@dataclass
class EncodedImages:
    """Encoded image files held in memory (slices of one byte buffer), with labels and class names."""

    buffer: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    y: np.ndarray
    classes: list[str]
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def blob(self, i: int) -> bytes:
        return self.buffer[self.starts[i]:self.ends[i]].tobytes()

    def subset(self, index) -> "EncodedImages":  # noqa: ANN001
        index = np.asarray(index)
        return EncodedImages(self.buffer, self.starts[index], self.ends[index], self.y[index], self.classes,
                             self.name, dict(self.meta))


def default_data_dir() -> Path:
    """Where named datasets live unless --data-dir says otherwise: $CNNLAB_DATA or ~/.cache/cnnlab/data."""
    return Path(os.environ.get("CNNLAB_DATA", Path.home() / ".cache" / "cnnlab" / "data")).expanduser()


def load_transfer_data(spec: str | Path, data_dir: str | Path | None = None, *, seed: int = 0,
                       test_fraction: float = 0.2, download: bool = False) -> Split:
    """'pets' | 'miniplaces' | a folder | an .npz file -> Split(train, test) for a probe."""
    from ..data.folders import load_folder_dataset, load_miniplaces, load_pets
    text = str(spec)
    if text.lower() in ("pets", "oxford_pets", "oxford-iiit-pet"):
        return load_pets(Path(data_dir) if data_dir else default_data_dir() / "pets", download=download)
    if text.lower() == "miniplaces":
        if data_dir is None:
            raise CnnlabError("MiniPlaces cannot be downloaded automatically; pass the folder holding its "
                              "images and label files with --data-dir.")
        return load_miniplaces(data_dir)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_folder_dataset(path, seed=seed, test_fraction=test_fraction)
    if path.is_file() and path.suffix.lower() == ".npz":
        return load_npz_split(path, seed=seed, test_fraction=test_fraction)
    if path.is_file():
        raise CnnlabError(f"Data file '{path}' is not an .npz file; pass a folder of class folders, an .npz "
                          "file, or one of: " + ", ".join(NAMED_DATASETS) + ".")
    if os.sep in text or "." in text:
        raise CnnlabError(f"Data path '{text}' does not exist; check the path.")
    raise unknown("dataset", text, NAMED_DATASETS)


def load_npz_split(path: str | Path, seed: int = 0, test_fraction: float = 0.2) -> Split:
    """An .npz of labelled images -> Split.

    Two layouts: JPEG bytes (`jpeg` buffer + `offsets`, as in ../shared/data) or decoded arrays
    (`x` uint8 N x H x W x 3); labels in `label` or `y`; class names in `classes` (optional); the
    split in `split` ('train' / 'test' or 'val') when present, else a seeded stratified split.
    """
    path = Path(path)
    try:
        d = np.load(path, allow_pickle=False)
        keys = set(d.files)
    except (OSError, ValueError) as e:
        raise CnnlabError(f"'{path}' is not a readable .npz file ({e}).") from None
    label_key = next((k for k in ("label", "labels", "y") if k in keys), None)
    if label_key is None:
        raise CnnlabError(f"'{path}' has no labels: an .npz for transfer needs a 'label' or 'y' array "
                          f"(it has {', '.join(sorted(keys))}).")
    y = np.asarray(d[label_key]).astype(np.int64).ravel()
    if len(y) and y.min() < 0:
        raise CnnlabError(f"'{path}' has negative labels; labels must be class indices 0..K-1.")
    n_classes = int(y.max()) + 1 if len(y) else 0
    classes = [str(c) for c in d["classes"]] if "classes" in keys else [str(i) for i in range(n_classes)]
    if n_classes > len(classes):
        raise CnnlabError(f"'{path}' has label {n_classes - 1} but only {len(classes)} class names.")
    if "jpeg" in keys and "offsets" in keys:
        offsets = np.asarray(d["offsets"], dtype=np.int64)
        if len(offsets) != len(y) + 1:
            raise CnnlabError(f"'{path}' has {len(offsets)} offsets for {len(y)} labels; expected n+1.")
        data = EncodedImages(np.asarray(d["jpeg"]), offsets[:-1], offsets[1:], y, classes, path.stem,
                             {"file": str(path)})
    elif "x" in keys:
        x = np.asarray(d["x"])
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise CnnlabError(f"'{path}' array 'x' must be uint8 N x H x W x 3, not {x.dtype} {x.shape}.")
        x = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x
        data = ImageArrays(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(y),
                           classes, path.stem, {"file": str(path)})
    else:
        raise CnnlabError(f"'{path}' holds no images: expected 'jpeg' + 'offsets' (JPEG bytes) or 'x' "
                          f"(uint8 N x H x W x 3); it has {', '.join(sorted(keys))}.")
    if "split" in keys:
        split = np.char.lower(np.asarray(d["split"]).astype(str))
        train_idx = np.flatnonzero(split == "train")
        test_idx = np.flatnonzero(np.isin(split, ("test", "val", "valid", "validation")))
        if len(train_idx) == 0 or len(test_idx) == 0:
            raise CnnlabError(f"'{path}' has a 'split' array without both 'train' and 'test' (or 'val') entries.")
    else:
        train_idx, test_idx = seeded_split(len(y), 1.0 - test_fraction, seed, labels=y)
    train, test = data.subset(train_idx), data.subset(test_idx)
    train.meta["part"], test.meta["part"] = "train", "test"
    return Split(train, test)
