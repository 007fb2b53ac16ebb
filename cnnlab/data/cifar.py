"""CIFAR-10 and CIFAR-100 in torchvision's on-disk format (downloaded by torchvision when missing).

`load_cifar("cifar10", train=True, data_dir="~/data")` reads `cifar-10-batches-py/` (or
`cifar-100-python/`) under data_dir, downloading the official archive there first if allowed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import CnnlabError
from ..models.labels import CIFAR10, CIFAR100
from .. import paths
from .base import ImageArrays

CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def load_cifar(name: str, train: bool = True, data_dir: str | Path | None = None,
               download: bool = True) -> ImageArrays:
    """CIFAR-10/100 train or test set as uint8 ImageArrays (torchvision's format and downloader), from
    `data_dir` (default: cnnlab.paths.data_dir())."""
    root = Path(data_dir).expanduser() if data_dir else paths.data_dir()
    present = (root / CIFAR_FOLDERS[name]).is_dir()
    if not present and not download:
        raise CnnlabError(f"{name.upper()} is not in '{root}' (expected {CIFAR_FOLDERS[name]}/ there); pass "
                          "--data-dir pointing at it (or set $CNNLAB_DATA), or allow the download.")
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
