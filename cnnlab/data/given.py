"""A user's own data as a cnnlab dataset: a torch `Dataset`, a `DataLoader`, `(x, y)` tensors or numpy
arrays. cnnlab.data's resolver (`load_dataset`, `open_dataset`) calls `from_user`; `arrays` also
serves where a DataLoader's images must be in memory at once (feature extraction, probes).

- `(x, y)` tensors or arrays, or `x` alone (unlabelled): images as N×H×W×3 or N×3×H×W, uint8 or
  floats in [0, 1] -> the in-memory uint8 `ImageArrays` every fast path uses.
- A map-style `Dataset` whose items are `(image, label)` (a [3,H,W] tensor, an H×W×3 array or a PIL
  image) and fit in memory -> read once into `ImageArrays` (a note on stderr says so). A
  `TensorDataset` is read without indexing item by item.
- A `DataLoader` -> `GivenLoader`: its batches, in its order, with its own transforms, every epoch.
  Such data cannot be split or subset (give validation data separately). A training run on it
  resumes at the start of the epoch after its last checkpoint; the order of that epoch is the one
  an uninterrupted run would have seen when the loader shuffles with torch's default generator
  (the checkpoint keeps its state), else whatever the loader's own generator gives.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import CnnlabError
from ..progress import Progress, note
from .arrays import to_nchw_uint8, unnamed_classes
from .base import GivenLoader, ImageArrays

#: The most bytes of decoded uint8 images a Dataset is read into memory for (beyond that: a DataLoader).
MAX_IN_MEMORY = 8 * 2**30


def is_user_data(obj: object) -> bool:
    """Whether `obj` is data this module converts (rather than a name, a path or a cnnlab dataset)."""
    if isinstance(obj, (torch.Tensor, np.ndarray, torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        return True
    return isinstance(obj, tuple) and len(obj) == 2 and all(isinstance(v, (torch.Tensor, np.ndarray, list))
                                                            for v in obj)


def from_user(obj: object, name: str | None = None) -> ImageArrays | GivenLoader:
    """The cnnlab dataset for a user's data (see the module docstring)."""
    if isinstance(obj, torch.utils.data.DataLoader):
        return GivenLoader(obj, _classes_of(obj.dataset), name or f"{type(obj.dataset).__name__} loader")
    if isinstance(obj, torch.utils.data.Dataset):
        return _read_dataset(obj, name or type(obj).__name__)
    if isinstance(obj, tuple):
        x, y = obj
        return arrays(x, y, name or "arrays")
    return arrays(obj, None, name or "arrays")


def arrays(x: Any, y: Any = None, name: str = "arrays", classes: list[str] | None = None) -> ImageArrays:
    """Images (N×H×W×3 or N×3×H×W, uint8 or floats in [0, 1]) and labels (None: unlabelled) -> ImageArrays."""
    xs = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if xs.dtype.kind == "f" and xs.size and (float(xs.min()) < -1e-6 or float(xs.max()) > 1 + 1e-6):
        raise CnnlabError(f"The images of '{name}' have values from {float(xs.min()):.3g} to {float(xs.max()):.3g}; "
                          "give them in [0, 1] (or uint8 0..255), not normalized: the model normalizes inside.")
    images = to_nchw_uint8(xs, name)
    if y is None:
        labels = torch.full((len(images),), -1, dtype=torch.long)
    else:
        labels = torch.as_tensor(y.detach().cpu() if isinstance(y, torch.Tensor) else np.asarray(y)).long().reshape(-1)
        if len(labels) != len(images):
            raise CnnlabError(f"'{name}' has {len(images)} images but {len(labels)} labels; give one label per image.")
    return ImageArrays(images, labels, list(classes) if classes else unnamed_classes(labels.numpy()), name,
                       {"source": name})


def _classes_of(dataset: object) -> list[str]:
    classes = getattr(dataset, "classes", None)
    return [str(c) for c in classes] if isinstance(classes, (list, tuple)) and classes else []


def _image_array(img: object) -> np.ndarray:
    """One item's image as a numpy array (PIL images as H×W×3 uint8)."""
    if isinstance(img, torch.Tensor):
        return img.detach().cpu().numpy()
    if hasattr(img, "convert") and hasattr(img, "size"):  # a PIL image
        return np.asarray(img.convert("RGB"))
    return np.asarray(img)


def _read_dataset(ds: torch.utils.data.Dataset, name: str) -> ImageArrays:
    """A map-style Dataset of (image, label) items read into memory as uint8, once."""
    if isinstance(ds, torch.utils.data.TensorDataset):
        x, *rest = ds.tensors
        return arrays(x, rest[0] if rest else None, name, _classes_of(ds))
    try:
        n = len(ds)  # type: ignore[arg-type]
    except TypeError:
        raise CnnlabError(f"'{name}' is an iterable dataset without a length; wrap it in a DataLoader "
                          "(it is then used as given).") from None
    if n == 0:
        raise CnnlabError(f"The dataset '{name}' is empty.")
    first = _image_array(_item(ds, 0, name)[0])
    if (first.size * n) > MAX_IN_MEMORY:
        raise CnnlabError(f"'{name}' ({n} images of {first.shape}) would take {first.size * n / 2**30:.0f} GB in "
                          "memory; pass a DataLoader over it instead (used as given, batch by batch).")
    note(f"note: reading the {n} images of '{name}' into memory once (uint8), for the fast in-memory path")
    images, labels = [], []
    with Progress(n, f"reading {name}", "img") as bar:
        for i in range(n):
            img, label = _item(ds, i, name)
            a = _image_array(img)
            if a.shape != first.shape:
                raise CnnlabError(f"Image {i} of '{name}' has shape {a.shape}, image 0 {first.shape}; give images of "
                                  "one size (resize them in the dataset's transform) or pass a DataLoader.")
            images.append(a)
            labels.append(label)
            bar.update(1)
    y = None if all(v is None for v in labels) else [(-1 if v is None else int(v)) for v in labels]
    return arrays(np.stack(images), y, name, _classes_of(ds))


def _item(ds: torch.utils.data.Dataset, i: int, name: str) -> tuple[object, int | None]:
    item = ds[i]
    if isinstance(item, (tuple, list)) and len(item) >= 2:
        return item[0], int(item[1])
    if isinstance(item, dict) and "image" in item:
        return item["image"], item.get("label")
    if isinstance(item, (tuple, list)):
        return item[0], None
    return item, None
