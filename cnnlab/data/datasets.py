"""Datasets by name or path: `load_dataset("cifar10")`, `load_dataset("train.npz")`, `load_dataset("photos/")`.

`train_val_split` turns a spec into the (train, validation) pair a training run uses: a seeded,
class-stratified 90/10 split of the training data, or a separate validation set.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import CnnlabError, unknown
from .base import Dataset, ImageArrays, ImageFiles, Split, seeded_split

NAMED = ("cifar10", "cifar100")
_ALIASES = {"cifar-10": "cifar10", "cifar_10": "cifar10", "cifar-100": "cifar100", "cifar_100": "cifar100"}
ARRAY_SUFFIXES = (".npz", ".npy")


def dataset_names() -> list[str]:
    """The datasets known by name (files and folders are given by path)."""
    return list(NAMED)


def load_dataset(spec: str | Path | Dataset, split: str = "train", data_dir: str | Path | None = None,
                 download: bool = True) -> Dataset:
    """A dataset by name ('cifar10', 'cifar100'), .npz/.npy file or image folder; split 'train' or 'test'.

    Named datasets are read from (or downloaded into) `data_dir`. Arrays stay in memory as uint8;
    large folders come back as ImageFiles that stream from disk.
    """
    if isinstance(spec, (ImageArrays, ImageFiles)):
        return spec
    if split not in ("train", "test", "val", "all"):
        raise CnnlabError(f"Unknown split '{split}'; use train or test.")
    text = str(spec)
    key = _ALIASES.get(text.lower(), text.lower())
    if key in NAMED:
        from .cifar import load_cifar
        return load_cifar(key, train=split != "test", data_dir=data_dir, download=download)
    path = Path(text).expanduser()
    if path.suffix.lower() in ARRAY_SUFFIXES or (path.is_file() and path.suffix.lower() in ARRAY_SUFFIXES):
        from .arrays import load_array_file
        return load_array_file(path, split=None if split == "all" else split)
    if path.is_dir():
        return _load_folder(path, split)
    if path.exists():
        raise CnnlabError(f"Data '{path}' is neither an .npz/.npy file nor an image folder.")
    if "/" in text or "\\" in text or "." in text:
        raise CnnlabError(f"Data path '{text}' does not exist; check the path (or name a dataset: "
                          f"{', '.join(NAMED)}).")
    raise unknown("dataset", text, NAMED)


def _load_folder(path: Path, split: str) -> Dataset:
    try:
        from .folders import load_folder_dataset
    except ImportError:
        raise CnnlabError(f"Image folders ('{path}') need cnnlab.data.folders, which this install lacks.") from None
    result = load_folder_dataset(path)
    if isinstance(result, Split):
        return result.test if split == "test" else result.train
    return result


def train_val_split(data: str | Path | Dataset, val: str | Path | Dataset | None = None,
                    val_fraction: float = 0.1, seed: int = 0, data_dir: str | Path | None = None,
                    download: bool = True) -> Split:
    """The (train, validation) pair of a run.

    `val` may be another dataset spec, 'test' (the named dataset's test split) or None: then a
    seeded, class-stratified `val_fraction` of the training data is held out (0 keeps none).
    """
    train = load_dataset(data, "train", data_dir, download)
    if val is not None and str(val) != "split":
        if str(val) == "test":
            if isinstance(data, (ImageArrays, ImageFiles)):
                raise CnnlabError("--val test needs a named dataset or a file with a test split.")
            valset = load_dataset(data, "test", data_dir, download)
        else:
            valset = load_dataset(val, "test" if _has_splits(val) else "all", data_dir, download)
        return Split(train, valset)
    if not 0.0 <= val_fraction < 1.0:
        raise CnnlabError(f"--val-split {val_fraction} must be in [0, 1): the fraction held out for validation.")
    if val_fraction == 0.0:
        return Split(train, train.subset([]))
    labels = train.y.numpy() if isinstance(train, ImageArrays) else train.y
    labelled = labels.min() >= 0 if len(labels) else False
    keep, held = seeded_split(len(train), 1.0 - val_fraction, seed, labels if labelled else None)
    tr, va = train.subset(keep), train.subset(held)
    tr.name, va.name = f"{train.name}-train", f"{train.name}-val"
    return Split(tr, va)


def _has_splits(spec: str | Path | Dataset) -> bool:
    return isinstance(spec, str) and spec.lower() in (*NAMED, *_ALIASES)


def check_labels(data: Dataset, num_classes: int, what: str = "data") -> None:
    """Refuse labels outside 0..num_classes-1 with one sentence naming the data and the fix."""
    y = data.y
    if len(y) == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        raise CnnlabError(f"The {what} '{data.name}' has unlabelled images (label -1); training and "
                          "evaluation need labels.")
    if hi >= num_classes:
        raise CnnlabError(f"The {what} '{data.name}' has labels up to {hi} but the model has num_classes="
                          f"{num_classes}; pass --num-classes {max(hi + 1, len(data.classes))}.")
