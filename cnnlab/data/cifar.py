"""CIFAR-10 and CIFAR-100 in torchvision's on-disk format (downloaded by torchvision when missing).

`load_cifar("cifar10", train=True, data_dir="~/data")` reads `cifar-10-batches-py/` (or
`cifar-100-python/`) under data_dir, downloading the official archive there first if allowed.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import CnnlabError
from ..models.labels import CIFAR10, CIFAR100
from .base import ImageArrays

CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def default_data_dir() -> Path:
    """Where named datasets live unless --data-dir says otherwise ($CNNLAB_DATA or ~/.cache/cnnlab/datasets)."""
    return Path(os.environ.get("CNNLAB_DATA", Path.home() / ".cache" / "cnnlab" / "datasets"))


def load_cifar(name: str, train: bool = True, data_dir: str | Path | None = None,
               download: bool = True) -> ImageArrays:
    """CIFAR-10/100 train or test set as uint8 ImageArrays (torchvision's format and downloader)."""
    root = Path(data_dir) if data_dir else default_data_dir()
    present = (root / CIFAR_FOLDERS[name]).is_dir()
    if not present and not download:
        raise CnnlabError(f"{name.upper()} is not in '{root}' (expected {CIFAR_FOLDERS[name]}/); pass "
                          "--data-dir pointing at it, or allow the download.")
    from torchvision import datasets
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        ds = cls(str(root), train=train, download=not present)
    except Exception as e:  # noqa: BLE001 - network, checksum or disk failures end in the same advice
        raise CnnlabError(f"Could not get {name.upper()} into '{root}' ({str(e).splitlines()[0][:120]}); "
                          f"download {cls.url} and extract it there, or pass --data-dir.") from None
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
    classes = list(CIFAR10 if name == "cifar10" else CIFAR100)
    return ImageArrays(x, y, classes, f"{name}-{'train' if train else 'test'}", {"source": str(root)})
