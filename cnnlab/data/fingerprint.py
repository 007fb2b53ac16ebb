"""Which images a run trained, validated and was evaluated on: a 64-bit hash per image and one
fingerprint per set, so that an evaluation can tell when its images were training images.

An image's hash is that of its pixels (decoded arrays), of its file's bytes (encoded photos held in
memory) or of its file's real path and size (photos on disk: reading 100k files to hash them would
cost minutes). The same image therefore hashes the same whichever part or file order it comes in, as
long as it comes in the same shape. A set's fingerprint is the hash of its sorted image hashes: two
sets of the same images have the same fingerprint, whatever their order.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from .base import Dataset, EncodedImages, ImageArrays, ImageFiles


def _h64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def image_hashes(data: Dataset) -> np.ndarray:
    """One uint64 per image of `data`, in its order (see the module docstring for what is hashed)."""
    if isinstance(data, ImageArrays):
        flat = data.x.flatten(1).contiguous().numpy()  # [0, ...] too: an empty held-out part
        return np.fromiter((_h64(row.tobytes()) for row in flat), dtype=np.uint64, count=len(flat))
    if isinstance(data, EncodedImages):
        return np.fromiter((_h64(data.file(i)) for i in range(len(data))), dtype=np.uint64, count=len(data))
    if isinstance(data, ImageFiles):
        def key(path: str) -> bytes:
            real = os.path.realpath(path)
            size = os.path.getsize(real) if os.path.exists(real) else -1
            return f"{real}|{size}".encode()
        return np.fromiter((_h64(key(p)) for p in data.paths), dtype=np.uint64, count=len(data.paths))
    raise TypeError(f"cannot fingerprint a {type(data).__name__}")


def set_fingerprint(hashes: np.ndarray) -> str:
    """16 hex digits naming the set of images with these hashes (order does not matter)."""
    return hashlib.blake2b(np.sort(np.asarray(hashes, dtype=np.uint64)).tobytes(), digest_size=8).hexdigest()


def describe_images(data: Dataset, hashes: np.ndarray | None = None) -> dict:
    """What a run or an evaluation records about a set of images: its name, source, part, size and
    fingerprint."""
    hashes = image_hashes(data) if hashes is None else hashes
    meta = data.meta or {}
    return {"name": data.name, "source": meta.get("source") or meta.get("root"), "part": meta.get("part"),
            "n": int(len(data)), "fingerprint": set_fingerprint(hashes)}


def shared_images(hashes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """A bool per image of `hashes`: whether it is one of `others`."""
    return np.isin(np.asarray(hashes, dtype=np.uint64), np.asarray(others, dtype=np.uint64))
