"""Image arrays from .npz / .npy files, into uint8 [N,3,H,W] tensors held in memory.

Accepted layouts (the first match wins):
  * `x` (or `images`/`data`) uint8 N×H×W×3 (or N×3×H×W, or N×H×W grey) with `y` (or `labels`/`label`);
  * the JPEG-bytes layout: `jpeg` (all files back to back) + `offsets` (n+1), with `y`/`label`;
  * a single `.npy` of images; its labels come from a sibling file named with `labels` in place of
    `data` (the seed's `hw4-train-data.npy` + `hw4-train-labels.npy`), or the images are unlabelled.
Decoding JPEG bytes takes seconds for 50k images, so the decoded array is cached on disk
($CNNLAB_CACHE, default ~/.cache/cnnlab) keyed by the file's path, size and mtime.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import CnnlabError
from .base import ImageArrays

_X_KEYS = ("x", "images", "data", "X", "x_train", "x_test")
_Y_KEYS = ("y", "labels", "label", "Y", "targets", "y_train", "y_test")


def cache_dir() -> Path:
    """Where decoded datasets are cached ($CNNLAB_CACHE or ~/.cache/cnnlab)."""
    return Path(os.environ.get("CNNLAB_CACHE", Path.home() / ".cache" / "cnnlab"))


def load_array_file(path: str | Path, classes: list[str] | None = None, name: str | None = None,
                    split: str | None = None) -> ImageArrays:
    """An .npz or .npy file of images (and labels) -> ImageArrays (labels -1 where unlabelled).

    When the file has a string array `split` ('train'/'test' per image), `split=` keeps those images."""
    path = Path(path)
    if not path.exists():
        raise CnnlabError(f"Data file '{path}' does not exist; check the path.")
    try:
        if path.suffix == ".npy":
            x, y = _load_npy_pair(path)
            extra: dict = {}
        else:
            with np.load(path, allow_pickle=False) as z:
                x, y, extra = _from_npz(z, path)
    except CnnlabError:
        raise
    except (ValueError, OSError, EOFError, KeyError) as e:
        raise CnnlabError(f"Data file '{path}' could not be read as numpy arrays ({str(e).splitlines()[0][:120]}).") from None
    images = to_nchw_uint8(x, path)
    labels = _labels(y, len(images), path)
    if classes is None:
        classes = extra.get("classes") or _default_classes(labels)
    data = ImageArrays(images, labels, list(classes), name or path.stem, {"source": str(path)})
    if split is not None and "split" in extra:
        keep = np.flatnonzero(extra["split"] == split)
        if len(keep) == 0:
            raise CnnlabError(f"Data file '{path}' has no images with split '{split}' "
                              f"(it has: {', '.join(sorted(set(extra['split'].tolist())))}).")
        data = data.subset(keep)
        data.name = f"{data.name}-{split}"
    return data


def _from_npz(z: np.lib.npyio.NpzFile, path: Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    keys = set(z.files)
    extra: dict = {}
    for k in ("classes", "class_names"):
        if k in keys and z[k].dtype.kind in "US":
            extra["classes"] = [str(c) for c in z[k].tolist()]
    if "split" in keys and z["split"].dtype.kind in "US":
        extra["split"] = np.asarray(z["split"]).astype(str)
    y = next((z[k] for k in _Y_KEYS if k in keys), None)
    if "jpeg" in keys and "offsets" in keys:
        return decode_jpeg_cached(z["jpeg"], z["offsets"], path), y, extra
    xk = next((k for k in _X_KEYS if k in keys), None)
    if xk is None:
        raise CnnlabError(f"Data file '{path}' has no image array: expected one of {', '.join(_X_KEYS)} "
                          f"or the jpeg+offsets layout (found keys: {', '.join(sorted(keys))}).")
    return z[xk], y, extra


def _load_npy_pair(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.load(path, allow_pickle=False)
    for a, b in (("data", "labels"), ("images", "labels"), ("x", "y"), ("X", "Y")):
        if a in path.name:
            sibling = path.with_name(path.name.replace(a, b))
            if sibling.exists():
                return x, np.load(sibling, allow_pickle=False)
    return x, None


def to_nchw_uint8(x: np.ndarray, source: str | Path = "<array>") -> torch.Tensor:
    """Images as N×H×W×3, N×3×H×W or N×H×W, uint8 or float in [0,1] -> uint8 tensor [N,3,H,W]."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = np.repeat(x[:, None], 3, axis=1)
    if x.ndim != 4 or 3 not in (x.shape[1], x.shape[3]):
        raise CnnlabError(f"Images in '{source}' have shape {x.shape}; expected N×H×W×3 (or N×3×H×W).")
    if x.dtype != np.uint8:
        if x.dtype.kind not in "fiu":
            raise CnnlabError(f"Images in '{source}' have dtype {x.dtype}; expected uint8 or floats in [0,1].")
        hi = float(x.max()) if x.size else 0.0
        if x.dtype.kind == "f" and hi <= 1.0 + 1e-6:
            x = x * 255.0
        elif hi > 255:
            raise CnnlabError(f"Images in '{source}' have values up to {hi:g}; expected 0..255 or [0,1].")
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.shape[3] == 3:  # N×H×W×3 (the usual numpy/TensorFlow layout)
        t = t.permute(0, 3, 1, 2)
    return t.contiguous()


def _labels(y: np.ndarray | None, n: int, path: Path) -> torch.Tensor:
    if y is None:
        return torch.full((n,), -1, dtype=torch.long)
    y = np.asarray(y).reshape(-1) if np.asarray(y).ndim > 1 and np.asarray(y).shape[-1] == 1 else np.asarray(y)
    if y.ndim == 2:  # one-hot
        y = y.argmax(1)
    if len(y) != n:
        raise CnnlabError(f"'{path}' has {n} images but {len(y)} labels.")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.equal(np.mod(y, 1), 0)):
            y = y.astype(np.int64)
        else:
            raise CnnlabError(f"Labels in '{path}' have dtype {y.dtype}; expected integer class indices.")
    return torch.from_numpy(y.astype(np.int64))


def _default_classes(labels: torch.Tensor) -> list[str]:
    """'class 0' ... 'class K' for labels 0..K of a file that names no classes (never guessed from K)."""
    n = int(labels.max()) + 1 if len(labels) and int(labels.max()) >= 0 else 0
    return [f"class {i}" for i in range(n)]


def decode_jpeg_cached(jpeg: np.ndarray, offsets: np.ndarray, source: Path) -> np.ndarray:
    """Decode the JPEG-bytes layout once and cache the uint8 N×H×W×3 array next to other caches."""
    st = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = cache_dir() / "decoded" / f"{source.stem}-{key}.npy"
    if cached.exists():
        try:
            return np.load(cached, mmap_mode=None, allow_pickle=False)
        except (ValueError, OSError):
            cached.unlink(missing_ok=True)
    x = decode_jpeg_bytes(jpeg, offsets)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, x)
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only or full cache only costs the decode time next run
    return x


def decode_jpeg_bytes(jpeg: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The JPEG-bytes layout -> uint8 N×H×W×3 (all images must share one size)."""
    from PIL import Image
    buf = np.asarray(jpeg, dtype=np.uint8)
    out = None
    for i in range(len(offsets) - 1):
        with Image.open(io.BytesIO(buf[offsets[i]:offsets[i + 1]].tobytes())) as im:
            a = np.asarray(im.convert("RGB"))
        if out is None:
            out = np.empty((len(offsets) - 1, *a.shape), dtype=np.uint8)
        if a.shape != out.shape[1:]:
            raise CnnlabError(f"JPEG image {i} is {a.shape[1]}×{a.shape[0]}, not {out.shape[2]}×{out.shape[1]} like "
                              "the first; images of mixed sizes belong in an image folder.")
        out[i] = a
    return out if out is not None else np.zeros((0, 32, 32, 3), np.uint8)
