"""The one dataset resolver: a dataset's name, an array file, an image folder or a user's own data ->
its images, in parts.

    open_dataset("pets")                  # Split(train, test): every part of a source
    load_dataset("cifar10", "test")       # one part: 'train', 'test' (or 'val') or 'all'
    load_dataset(TensorDataset(x, y))     # a user's data (see below): the whole of it
    train_val_split("train.npz")          # what a training run uses: (train, validation)

| source | training part | held-out part |
| --- | --- | --- |
| `cifar10`, `cifar100` | the official 50,000 images | the official 10,000 test images |
| `pets` (Oxford-IIIT Pets) | the official trainval list (3,680) | the official test list (3,669) |
| `miniplaces` | the train list (100,000) | the val list (10,000) |
| an `.npz` / `.npy` file | the images its `split` array marks 'train', else all | those marked 'test'/'val' |
| a folder with `train/` and `test/` (or `val/`) | `train/<class>/...` | `test/<class>/...` |
| a folder of class folders | a seeded, stratified 1 - test_fraction of each class | the rest |

Named datasets are read from (and CIFAR and Pets downloaded into) `data_dir`, by default
cnnlab.paths.data_dir() (`$CNNLAB_DATA`; Pets in its `pets/`, MiniPlaces in its `miniplaces/`).
A name is taken as that dataset even when a folder of the same name exists. A source that holds
nothing out leaves the held-out part to its consumer: training holds out a seeded validation
fraction, a probe a seeded test fraction (`Split.holdout`).

A user's own data is one part, converted by cnnlab.data.given: `(x, y)` tensors or numpy arrays
(uint8 or floats in [0, 1], N×H×W×3 or N×3×H×W) and a torch `Dataset` that fits in memory become
in-memory uint8 arrays (the fast path; a Dataset is read once, and a note says so); a `DataLoader`
is used as given (its batches, its order, its transforms), so it is never split: a run on it
validates on the `val` data given with it, or not at all.
"""
from __future__ import annotations

from pathlib import Path

from .. import paths
from ..errors import CnnlabError, unknown
from .arrays import read_array_file
from .base import DATASET_TYPES, PARTS, Dataset, GivenLoader, Split
from .cifar import load_cifar
from .folders import load_folder_dataset, load_miniplaces, load_pets
from .given import from_user, is_user_data

NAMED = ("cifar10", "cifar100", "pets", "miniplaces")
_ALIASES = {"cifar-10": "cifar10", "cifar_10": "cifar10", "cifar-100": "cifar100", "cifar_100": "cifar100",
            "oxford_pets": "pets", "oxford-pets": "pets", "oxford-iiit-pet": "pets"}
#: Whether a named dataset is downloaded when missing and nobody said: CIFAR (about 170 MB) yes,
#: Pets (about 800 MB) only when asked; MiniPlaces cannot be.
_DOWNLOAD_BY_DEFAULT = {"cifar10": True, "cifar100": True, "pets": False, "miniplaces": False}
ARRAY_SUFFIXES = (".npz", ".npy")


def dataset_names() -> list[str]:
    """The datasets known by name (files and folders are given by path)."""
    return list(NAMED)


def _named(spec: str | Path) -> str | None:
    text = str(spec).lower()
    key = _ALIASES.get(text, text)
    return key if key in NAMED else None


def _named_split(key: str, data_dir: str | Path | None, download: bool | None) -> Split:
    download = _DOWNLOAD_BY_DEFAULT[key] if download is None else download
    if key in ("cifar10", "cifar100"):
        return Split(load_cifar(key, True, data_dir, download), load_cifar(key, False, data_dir, download))
    if key == "pets":
        return load_pets(Path(data_dir) if data_dir else paths.data_dir() / "pets", download=download)
    folder = Path(data_dir) if data_dir else paths.data_dir() / "miniplaces"
    if data_dir is None and not folder.is_dir():
        raise CnnlabError(f"MiniPlaces is not in '{folder}' and cannot be downloaded automatically; pass the folder "
                          "holding its images and label files with --data-dir (or put it there).")
    return load_miniplaces(folder)


def open_dataset(spec: str | Path | object, *, data_dir: str | Path | None = None, download: bool | None = None,
                 seed: int = 0, test_fraction: float = 0.2, decode: bool = True) -> Split:
    """Every part of a source (see the table above); a dataset object or a user's data is one part.

    Args:
        data_dir: where a named dataset lives (default: cnnlab.paths.data_dir()).
        download: fetch a missing named dataset (default: CIFAR yes, Pets no).
        seed, test_fraction: the split of a folder of class folders.
        decode: decode a JPEG-bytes file of one image size into memory (False keeps it encoded).
    """
    if isinstance(spec, DATASET_TYPES):
        return Split(spec)
    if is_user_data(spec):
        return Split(from_user(spec))
    key = _named(spec)
    if key is not None:
        return _named_split(key, data_dir, download)
    text = str(spec)
    path = Path(text).expanduser()
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return read_array_file(path, decode=decode)
    if path.is_dir():
        return load_folder_dataset(path, seed=seed, test_fraction=test_fraction)
    if path.exists():
        raise CnnlabError(f"Data file '{path}' is not an .npz/.npy file; pass one, a folder of class folders, or a "
                          f"dataset name ({', '.join(NAMED)}).")
    if "/" in text or "\\" in text or "." in text:
        raise CnnlabError(f"Data path '{text}' does not exist; check the path (or name a dataset: "
                          f"{', '.join(NAMED)}).")
    raise unknown("dataset", text, NAMED)


def load_dataset(spec: str | Path | Dataset | object, split: str = "train", data_dir: str | Path | None = None,
                 download: bool | None = None, *, decode: bool = True) -> Dataset:
    """One part of a source: 'train', 'test' ('val' is the same part) or 'all'. A dataset object is
    returned as it is, a user's data (a torch Dataset, a DataLoader, (x, y) tensors or arrays) as one
    (every part of it). A source with no held-out part answers 'test' with all its images."""
    if isinstance(spec, DATASET_TYPES):
        return spec
    if is_user_data(spec):
        return from_user(spec)
    if split not in PARTS:
        raise CnnlabError(f"Unknown split '{split}'; use train, test or all.")
    key = _named(spec)
    if key in ("cifar10", "cifar100") and split != "all":  # read only the part asked for
        download = _DOWNLOAD_BY_DEFAULT[key] if download is None else download
        return load_cifar(key, split == "train", data_dir, download)
    return open_dataset(spec, data_dir=data_dir, download=download, decode=decode).part(split)


def train_val_split(data: str | Path | Dataset, val: str | Path | Dataset | None = None,
                    val_fraction: float = 0.1, seed: int = 0, data_dir: str | Path | None = None,
                    download: bool | None = None) -> Split:
    """The (train, validation) pair of a run.

    `val` may be another dataset spec, 'test' (the source's held-out part) or None: then a seeded,
    class-stratified `val_fraction` of the training data is held out (0 keeps none).
    """
    train = load_dataset(data, "train", data_dir, download)
    if isinstance(val, (str, Path)) and str(val) == "split":
        val = None
    if isinstance(train, GivenLoader) and val is None:  # a DataLoader is never split
        return Split(train, None)
    if val is not None:
        if isinstance(val, str) and val == "test":
            if isinstance(data, DATASET_TYPES) or is_user_data(data):
                raise CnnlabError("--val test needs a named dataset or a file with a test split.")
            valset = load_dataset(data, "test", data_dir, download)
        else:
            valset = load_dataset(val, "test" if isinstance(val, (str, Path)) and _named(val) else "all", data_dir,
                                  download)
        return Split(train, valset)
    if not 0.0 <= val_fraction < 1.0:
        raise CnnlabError(f"--val-split {val_fraction} must be in [0, 1): the fraction held out for validation.")
    if val_fraction == 0.0:
        return Split(train, train.subset([]))
    held = Split(train).holdout(val_fraction, seed)
    held.train.name, held.test.name = f"{train.name}-train", f"{train.name}-val"
    return Split(held.train, held.test)


def check_labels(data: Dataset, num_classes: int, what: str = "data") -> None:
    """Refuse labels outside 0..num_classes-1 with one sentence naming the data and the fix (a DataLoader's
    labels are checked batch by batch instead)."""
    y = data.y
    if y is None or len(y) == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        raise CnnlabError(f"The {what} '{data.name}' has unlabelled images (label -1); training, evaluation and "
                          "probes need labels.")
    if hi >= num_classes:
        raise CnnlabError(f"The {what} '{data.name}' has labels up to {hi} but the model has num_classes="
                          f"{num_classes}; pass --num-classes {max(hi + 1, len(data.classes))}.")

