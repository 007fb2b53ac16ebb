"""The on-disk feature cache: what makes two extractions the same, and atomic reads/writes.

A cache file is named by the model name and a digest of the dataset, preprocessing and
normalization; inside it records the weights' fingerprint and the extraction code's version. A
file written by other weights or older code is found under the same name, detected, and rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..models import Classifier

#: Bump when extraction changes what features come out (decoding, preprocessing, hooks).
FEATURE_CODE_VERSION = 1


def weights_fingerprint(model: Classifier) -> str:
    """A digest of every parameter and buffer (names, shapes, values): other weights, other digest."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in model.net.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def _tensor_bytes(t: torch.Tensor) -> bytes:
    if t.numel() == 0:
        return b""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def model_identity(model: Classifier) -> dict:
    """What about the model decides which features come out, besides its weights."""
    return {"model": model.name, "head": model.head_name, "preprocessing": model.preprocessing.to_dict(),
            **{k: [round(v, 8) for v in vals] for k, vals in model.normalization.items()}}


def digest(obj: object) -> str:
    """A short stable digest of a JSON-able object."""
    return hashlib.blake2b(json.dumps(obj, sort_keys=True).encode(), digest_size=12).hexdigest()


def cache_file(cache_dir: Path, model: Classifier, dataset_fingerprint: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model.name)[:60]
    return cache_dir / f"{slug}-{digest([model_identity(model), dataset_fingerprint])}.npz"


def read_cache(path: Path) -> tuple[np.ndarray, dict] | None:
    """(features, meta) from a cache file, or None when it is absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as d:
            return np.asarray(d["features"]), json.loads(str(d["meta"]))
    except (OSError, ValueError, KeyError, json.JSONDecodeError, EOFError):
        return None


def write_cache(path: Path, features: np.ndarray, meta: dict) -> None:
    """Write atomically (temp file + rename), so a killed run never leaves half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, features=features, meta=np.array(json.dumps(meta)))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
