"""Where cnnlab keeps what it downloads and what it caches; each place can be moved by an environment
variable, and nothing else in cnnlab picks a default location.

- `data_dir()`: named datasets (CIFAR-10/100, Oxford-IIIT Pets, MiniPlaces) are read from, and
  downloaded into, `$CNNLAB_DATA`, else `<user cache>/cnnlab/datasets`. Pets lives in its
  `pets/` subfolder and MiniPlaces in `miniplaces/`; `--data-dir` names another folder for one run.
- `cache_dir()`: the root of cnnlab's caches, `$CNNLAB_CACHE`, else `<user cache>/cnnlab`.
  Everything under it can be deleted at any time; it is rebuilt on demand.
- `decoded_cache_dir()`: `cache_dir()/decoded`: `.npy` arrays of JPEG-bytes `.npz` files decoded
  once (decoding 50,000 CIFAR images takes seconds), keyed by the source file's path, size and
  modification time.
- `feature_cache_dir()`: `cache_dir()/features`: penultimate-layer features of a model on a dataset
  (see cnnlab.transfer.cache), keyed by the model, its weights and the images.

`<user cache>` is `$XDG_CACHE_HOME`, else `~/.cache`. Pretrained weights are not cnnlab's: they live
in torch.hub's cache (`$TORCH_HOME`), where torchvision puts them too.
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "CNNLAB_DATA"
CACHE_ENV = "CNNLAB_CACHE"


def _from_env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def user_cache() -> Path:
    """The user's cache folder: $XDG_CACHE_HOME, else ~/.cache."""
    return _from_env("XDG_CACHE_HOME") or Path.home() / ".cache"


def data_dir() -> Path:
    """Where named datasets live and download to: $CNNLAB_DATA, else <user cache>/cnnlab/datasets."""
    return _from_env(DATA_ENV) or user_cache() / "cnnlab" / "datasets"


def cache_dir() -> Path:
    """The root of cnnlab's caches: $CNNLAB_CACHE, else <user cache>/cnnlab."""
    return _from_env(CACHE_ENV) or user_cache() / "cnnlab"


def decoded_cache_dir() -> Path:
    """Decoded arrays of JPEG-bytes .npz files: cache_dir()/decoded."""
    return cache_dir() / "decoded"


def feature_cache_dir() -> Path:
    """Penultimate-layer features per model and dataset: cache_dir()/features."""
    return cache_dir() / "features"
