"""Image arrays from .npz / .npy files: uint8 [N,3,H,W] tensors in memory, or encoded photos.

Accepted layouts (the first match wins):
  * `x` (or `images`/`data`) uint8 N×H×W×3 (or N×3×H×W, or N×H×W grey, or floats in [0,1]) with
    `y` (or `labels`/`label`/`targets`);
  * the JPEG-bytes layout: `jpeg` (all files back to back) + `offsets` (n+1), with `y`/`label`;
  * a single `.npy` of images; its labels come from a sibling file named with `labels` in place of
    `data` (`hw-train-data.npy` + `hw-train-labels.npy`), or the images are unlabelled.
Optional: `classes` (class names, index order), else a per-image name array (`name`, `breed`, ...,
one per image: the names of the classes the file holds), and `split` ('train' / 'test' or 'val' per
image).

JPEG bytes of one image size are decoded into memory, once: the decoded array is cached (see
cnnlab.paths.decoded_cache_dir) keyed by the file's path, size and mtime. Photos of mixed sizes, or
any JPEG bytes when `decode=False`, stay encoded (`EncodedImages`) until a model's preprocessing
decodes them at its input size.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import CnnlabError
from ..paths import decoded_cache_dir
from .base import TEST_PARTS, EncodedImages, ImageArrays, Split

_X_KEYS = ("x", "images", "data", "X", "x_train", "x_test")
_Y_KEYS = ("y", "labels", "label", "Y", "targets", "y_train", "y_test")
#: Arrays naming each image's class (one string per image), read when a file has no `classes` array.
_NAME_KEYS = ("label_name", "label_names", "class_name", "name", "names", "breed")

def unnamed_classes(labels: np.ndarray) -> list[str]:
    """'class 0' ... 'class K' for labels 0..K of a file that names no classes (never guessed from K)."""
    n = int(labels.max()) + 1 if len(labels) and int(labels.max()) >= 0 else 0
    return [f"class {i}" for i in range(n)]


def _classes_from_image_names(names: np.ndarray | None, labels: np.ndarray) -> list[str] | None:
    """Class names from a per-image name array (e.g. `breed`), when every label has one name; labels no
    image of the file has are 'class i'."""
    if names is None or len(names) != len(labels) or not len(labels) or int(labels.min()) < 0:
        return None
    found: dict[int, str] = {}
    for lab, name in zip(labels.tolist(), names.tolist()):
        if found.setdefault(lab, name) != name:
            return None  # not a name per class
    return [found.get(i, f"class {i}") for i in range(int(labels.max()) + 1)]


def read_array_file(path: str | Path, *, decode: bool = True) -> Split:
    """An .npz or .npy file of images (and labels: -1 where unlabelled) -> Split.

    With a `split` array the file's 'train' images are the training part and its 'test'/'val' ones
    the held-out part; without one, the whole file is the training part and nothing is held out.
    Class names come from its `classes` array, else they are 'class 0', 'class 1', ..."""
    path = Path(path)
    if not path.exists():
        raise CnnlabError(f"Data file '{path}' does not exist; check the path.")
    try:
        if path.suffix.lower() == ".npy":
            x, y = _load_npy_pair(path)
            extra: dict = {}
        else:
            with np.load(path, allow_pickle=False) as z:
                x, y, extra = _from_npz(z, path, decode)
    except CnnlabError:
        raise
    except (ValueError, OSError, EOFError, KeyError) as e:
        raise CnnlabError(f"Data file '{path}' is not a readable .npz/.npy file of numpy arrays "
                          f"({str(e).splitlines()[0][:120]}).") from None
    n = len(x.starts) if isinstance(x, EncodedImages) else len(x)
    labels = _labels(y, n, path)
    classes = extra.get("classes") or _classes_from_image_names(extra.get("image_names"), labels) or \
        unnamed_classes(labels)
    if len(labels) and int(labels.max()) >= len(classes):
        raise CnnlabError(f"'{path}' has label {int(labels.max())} but only {len(classes)} class names.")
    meta = {"source": str(path)}
    if isinstance(x, EncodedImages):
        x.y, x.classes, x.name, x.meta = labels, list(classes), path.stem, meta
        data = x
    else:
        data = ImageArrays(to_nchw_uint8(x, path), torch.from_numpy(labels), list(classes), path.stem, meta)
    if "split" not in extra:
        return Split(data)
    split = np.char.lower(extra["split"])
    train_idx, test_idx = np.flatnonzero(split == "train"), np.flatnonzero(np.isin(split, TEST_PARTS))
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise CnnlabError(f"Data file '{path}' has a 'split' array without both 'train' and 'test' (or 'val') "
                          f"images (it has: {', '.join(sorted(set(split.tolist())))}).")
    train, test = data.subset(train_idx), data.subset(test_idx)
    train.name, test.name = f"{data.name}-train", f"{data.name}-test"
    train.meta["part"], test.meta["part"] = "train", "test"
    return Split(train, test, data)


def load_array_file(path: str | Path, split: str = "all", *, decode: bool = True) -> ImageArrays | EncodedImages:
    """One part ('train', 'test' or 'all') of an .npz or .npy file (see `read_array_file`)."""
    return read_array_file(path, decode=decode).part(split)


def _from_npz(z: np.lib.npyio.NpzFile, path: Path, decode: bool
              ) -> tuple[np.ndarray | EncodedImages, np.ndarray | None, dict]:
    keys = set(z.files)
    extra: dict = {}
    for k in ("classes", "class_names"):
        if k in keys and z[k].dtype.kind in "US":
            extra["classes"] = [str(c) for c in z[k].tolist()]
    per_image = next((k for k in _NAME_KEYS if k in keys and z[k].dtype.kind in "US" and z[k].ndim == 1), None)
    if per_image is not None and "classes" not in extra:
        extra["image_names"] = np.asarray(z[per_image]).astype(str)
    if "split" in keys and z["split"].dtype.kind in "US":
        extra["split"] = np.asarray(z["split"]).astype(str)
    y = next((z[k] for k in _Y_KEYS if k in keys), None)
    if "jpeg" in keys and "offsets" in keys:
        offsets = np.asarray(z["offsets"], dtype=np.int64)
        if y is not None and len(offsets) != len(y) + 1:
            raise CnnlabError(f"'{path}' has {len(offsets)} offsets for {len(y)} labels; expected one more offset "
                              "than images.")
        decoded = decode_jpeg_cached(z["jpeg"], offsets, path) if decode else None
        if decoded is not None:
            return decoded, y, extra
        encoded = EncodedImages(np.asarray(z["jpeg"], dtype=np.uint8), offsets[:-1], offsets[1:], np.zeros(0), [])
        return encoded, y, extra
    xk = next((k for k in _X_KEYS if k in keys), None)
    if xk is None:
        raise CnnlabError(f"Data file '{path}' holds no image array: expected one of {', '.join(_X_KEYS)} "
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
    """Images as N×H×W×3, N×3×H×W, N×H×W×1 or N×H×W, uint8 or float in [0,1] -> uint8 tensor [N,3,H,W]."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[3] == 1:
        x = x[..., 0]
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


def _labels(y: np.ndarray | None, n: int, path: Path) -> np.ndarray:
    """Class indices int64 [n] (one-hot rows and whole floats accepted), -1 for every image without labels."""
    if y is None:
        return np.full(n, -1, dtype=np.int64)
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
    return y.astype(np.int64)


def decode_jpeg_cached(jpeg: np.ndarray, offsets: np.ndarray, source: Path) -> np.ndarray | None:
    """Decode the JPEG-bytes layout once and cache the uint8 N×H×W×3 array (None: mixed image sizes)."""
    st = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = decoded_cache_dir() / f"{source.stem}-{key}.npy"
    if cached.exists():
        try:
            return np.load(cached, mmap_mode=None, allow_pickle=False)
        except (ValueError, OSError):
            cached.unlink(missing_ok=True)
    x = decode_jpeg_bytes(jpeg, offsets)
    if x is None:
        return None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, x)
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only or full cache only costs the decode time next run
    return x


def decode_jpeg_bytes(jpeg: np.ndarray, offsets: np.ndarray) -> np.ndarray | None:
    """The JPEG-bytes layout -> uint8 N×H×W×3, or None as soon as an image's size differs from the first's."""
    from PIL import Image
    buf = np.asarray(jpeg, dtype=np.uint8)
    out = None
    for i in range(len(offsets) - 1):
        with Image.open(io.BytesIO(buf[offsets[i]:offsets[i + 1]].tobytes())) as im:
            a = np.asarray(im.convert("RGB"))
        if out is None:
            out = np.empty((len(offsets) - 1, *a.shape), dtype=np.uint8)
        if a.shape != out.shape[1:]:
            return None
        out[i] = a
    return out if out is not None else np.zeros((0, 32, 32, 3), np.uint8)
