"""Penultimate-layer features of any Classifier for a whole dataset: decoded in worker threads while
the model runs, batched, on the model's device, cached on disk, L2-normalized by default.

    feats = extract_features(model, split.train)      # FeatureSet: .features [N, D], .labels, .skipped

Under torchrun (a joined process group, see cnnlab.distributed) every process decodes and runs its
share of the batches and every process gets all features in input order, as one process computes them;
only the first writes the cache.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..data.base import EncodedImages, GivenLoader, ImageArrays, ImageFiles
from ..data.datasets import load_dataset
from ..data.given import arrays, is_user_data
from ..errors import CnnlabError, ImageError
from ..images import Preprocessing, open_image
from ..models import Classifier, as_classifier
from ..paths import feature_cache_dir
from ..progress import Progress
from . import cache as fcache

#: What features are extracted from: a dataset part, a list of image files, or a user's own data (a torch
#: Dataset or DataLoader, (x, y) tensors or arrays; see cnnlab.data.load_dataset).
FeatureSource = Union[ImageFiles, ImageArrays, EncodedImages, Sequence[Union[str, Path]], object]


@dataclass
class FeatureSet:
    """Features of one dataset part: `features` float32 [N, D] for the images that decoded."""

    features: torch.Tensor
    labels: np.ndarray
    classes: list[str]
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    l2: bool = True
    model: str = ""
    cache_path: str | None = None
    cache_status: str = "off"  # off | miss (computed, written) | hit | rebuilt (stale file replaced)
    cache_note: str = ""
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def to_dict(self) -> dict:
        """A JSON-able summary (not the features themselves)."""
        return {"model": self.model, "n": len(self), "feature_dim": self.dim, "l2": self.l2,
                "skipped": [{"image": n, "reason": r} for n, r in self.skipped], "cache": self.cache_status,
                "cache_path": self.cache_path, "cache_note": self.cache_note, "seconds": round(self.seconds, 3)}


# -- what to decode ---------------------------------------------------------------------------------

def _as_dataset(data: FeatureSource) -> ImageFiles | ImageArrays | EncodedImages:
    if isinstance(data, (ImageFiles, ImageArrays, EncodedImages)):
        return data
    if isinstance(data, GivenLoader) or is_user_data(data):
        ds = load_dataset(data, "all")
        if isinstance(ds, GivenLoader):  # features need every image once: read its batches into memory
            x, y = ds.tensors()
            return arrays(x, y, ds.name, ds.classes)
        return ds
    if isinstance(data, (str, Path)):
        data = [data]
    paths = [str(p) for p in data]
    return ImageFiles(paths, np.full(len(paths), -1, dtype=np.int64), [], "files")


def dataset_fingerprint(data: ImageFiles | ImageArrays | EncodedImages) -> str:
    """Which images, exactly: file paths with sizes and modification times, or the bytes themselves."""
    h = hashlib.blake2b(digest_size=16)
    if isinstance(data, ImageFiles):
        h.update(b"files;")
        for p in data.paths:
            try:
                st = os.stat(p)
                h.update(f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns};".encode())
            except OSError:
                h.update(f"{os.path.abspath(p)}|missing;".encode())
    elif isinstance(data, EncodedImages):
        h.update(b"encoded;")
        for s, e in zip(data.starts, data.ends):
            h.update(int(e - s).to_bytes(8, "little"))
            h.update(memoryview(data.buffer[s:e]))
    else:
        h.update(f"arrays;{tuple(data.x.shape)};".encode())
        h.update(memoryview(data.x.contiguous().numpy()).cast("B"))
    return h.hexdigest()


def _decoder(data: ImageFiles | EncodedImages, pre: Preprocessing) -> Callable[[int], torch.Tensor]:
    """i -> float [3,H,W] in [0,1] at the model's input size, exactly as cnnlab.load_images makes it."""
    draft = pre.resize or max(pre.input_size)
    return lambda i: pre.apply(open_image(data.file(i), draft_size=draft))


def _image_name(data: ImageFiles | ImageArrays | EncodedImages, i: int) -> str:
    if isinstance(data, ImageFiles):
        return data.paths[i]
    return f"{data.name or 'image'}[{i}]"


def _batches(data: ImageFiles | ImageArrays | EncodedImages, pre: Preprocessing, batch_size: int, workers: int,
             bad: list[tuple[str, str]], index: Sequence[int] | None = None
             ) -> Iterator[tuple[list[int], torch.Tensor | None]]:
    """(indices that decoded, [n,3,H,W] batch) in order, over the images at `index` (default: all), one
    batch per `batch_size` of them; failures are appended to `bad`."""
    whole = index is None
    index = list(range(len(data))) if whole else list(index)
    n = len(index)
    if isinstance(data, ImageArrays):
        for s in range(0, n, batch_size):
            idx = index[s:s + batch_size]
            yield idx, pre.apply_tensor(data.floats(slice(s, s + len(idx)) if whole else torch.as_tensor(idx)))
        return
    decode = _decoder(data, pre)

    def safe(i: int) -> torch.Tensor | ImageError:
        try:
            return decode(i)
        except ImageError as e:
            return e

    def collect(items: Iterator[tuple[int, torch.Tensor | ImageError]]) -> Iterator[tuple[list[int], torch.Tensor | None]]:
        idx, imgs = [], []
        for j, r in items:
            i = index[j]
            if isinstance(r, ImageError):
                bad.append((_image_name(data, i), str(r)))
            else:
                idx.append(i)
                imgs.append(r)
            if (j + 1) % batch_size == 0 or j == n - 1:
                yield idx, (torch.stack(imgs) if imgs else None)
                idx, imgs = [], []

    if workers <= 0:
        yield from collect((j, safe(index[j])) for j in range(n))
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="cnnlab-decode") as pool:
        def ordered() -> Iterator[tuple[int, torch.Tensor | ImageError]]:
            pending: deque = deque()
            nxt = 0
            while nxt < n or pending:  # keep about two batches decoding ahead of the model
                while nxt < n and len(pending) < 2 * batch_size:
                    pending.append((nxt, pool.submit(safe, index[nxt])))
                    nxt += 1
                j, fut = pending.popleft()
                yield j, fut.result()
        yield from collect(ordered())


def default_workers() -> int:
    """Decoding threads: PIL releases the GIL while decoding and resizing, so they overlap the model."""
    return max(1, min(4, os.cpu_count() or 1))


# -- extraction ----------------------------------------------------------------------------------------

def compute_features(model: Classifier | nn.Module, data: FeatureSource, *, batch_size: int = 64,
                     workers: int | None = None, progress: bool = True, fast: bool = True
                     ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Raw penultimate features (float32 [n_ok, D]), the indices that decoded, and the (name, reason) of
    images that did not. No cache, no normalization. `fast` folds BatchNorms into a frozen copy
    (see cnnlab.transfer.fast); False runs `model.features` itself."""
    from .fast import feature_function
    model = as_classifier(model)
    data = _as_dataset(data)
    workers = default_workers() if workers is None else workers
    was_training = model.training
    model.eval()
    features_of, _ = feature_function(model, fast)
    device = model.device
    ctx = distributed.current()
    mine = distributed.my_batches(-(-len(data) // batch_size), ctx)
    index = distributed.batch_items(mine, batch_size, len(data)) if ctx.active else None
    bad: list[tuple[str, str]] = []
    done: list[tuple[int, tuple[np.ndarray | None, list[int], list[tuple[str, str]]]]] = []
    total = len(data) if index is None else len(index)  # the first process shows its own share
    try:
        with torch.inference_mode(), Progress(total, f"features {model.name}", "img",
                                              enabled=progress and ctx.is_main) as bar:
            for b, (idx, x) in zip(mine, _batches(data, model.preprocessing, batch_size, workers, bad, index)):
                f = features_of(x.to(device)).float().cpu().numpy() if x is not None else None
                done.append((b, (f, idx, bad[:])))
                bar.update(len(idx) + len(bad))
                bad.clear()
    finally:
        model.train(was_training)
    batches = distributed.gather_in_order(done, ctx)
    feats = [f for f, _, _ in batches if f is not None]
    kept = [i for _, idx, _ in batches for i in idx]
    bad = [e for _, _, errs in batches for e in errs]
    dim = feats[0].shape[1] if feats else 0
    return (np.concatenate(feats) if feats else np.zeros((0, dim), np.float32)), kept, bad


def l2_normalize(features: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Each row divided by its L2 norm (rows of zeros stay zero)."""
    return features / features.norm(dim=1, keepdim=True).clamp_min(eps)


def extract_features(model: Classifier | nn.Module, data: FeatureSource, *, l2: bool = True, batch_size: int = 64,
                     cache_dir: str | Path | None | bool = None, workers: int | None = None,
                     progress: bool = True, fast: bool = True) -> FeatureSet:
    """Penultimate-layer features of every image in `data`, cached on disk.

    Args:
        model: any Classifier (a bare nn.Module is wrapped by `as_classifier`); its preprocessing
            (resize/crop) and normalization are applied.
        data: ImageFiles, EncodedImages, ImageArrays (a Split part), a list of image paths, or a user's
            torch Dataset, DataLoader or (x, y) tensors/arrays (read into memory once).
        l2: divide each feature vector by its L2 norm (the cache keeps raw features either way).
        cache_dir: folder for the cache (default: cnnlab.paths.feature_cache_dir()); False turns caching off.
        workers: decoding threads (0: decode in this thread).
        fast: fold BatchNorms into a frozen copy of the net (equal to model.features up to rounding).
        progress: show progress (see cnnlab.progress) while features are computed.
    """
    t0 = time.perf_counter()
    model = as_classifier(model)
    data = _as_dataset(data)
    if len(data) == 0:
        raise CnnlabError(f"Dataset '{data.name or 'images'}' has no images to extract features from.")
    model.head()  # a clear error for models without a named head, before any decoding
    path, expected, status, note = None, None, "off", ""
    raw = None
    if cache_dir is not False:
        folder = Path(cache_dir) if cache_dir not in (None, True) else feature_cache_dir()
        data_fp = dataset_fingerprint(data)
        path = fcache.cache_file(folder, model, data_fp)
        expected = {"identity": fcache.model_identity(model), "weights": fcache.weights_fingerprint(model),
                    "dataset": data_fp, "n": len(data), "code_version": fcache.FEATURE_CODE_VERSION, "fast": fast}
        found = fcache.read_cache(path) if path.exists() else None
        if found is not None:
            cached, meta = found
            stale = [k for k in expected if meta.get(k) != expected[k]]
            if not stale and cached.shape[0] == len(meta.get("kept", ())):
                raw, kept, bad, status = cached, meta["kept"], [tuple(b) for b in meta["bad"]], "hit"
            else:
                status = "rebuilt"
                note = (f"cache '{path.name}' was written by another "
                        f"{'model version' if 'weights' in stale or 'identity' in stale else 'code version'} "
                        f"({', '.join(stale) or 'shape'} differ); rebuilt it")
        elif path.exists():
            status, note = "rebuilt", f"cache '{path.name}' was unreadable; rebuilt it"
        else:
            status = "miss"
    if raw is None:
        raw, kept, bad = compute_features(model, data, batch_size=batch_size, workers=workers, progress=progress,
                                          fast=fast)
        if path is not None and expected is not None and distributed.current().is_main:
            fcache.write_cache(path, raw.astype(np.float32), {**expected, "kept": kept, "bad": bad,
                                                                "model_name": model.name})
    if len(kept) == 0:
        raise CnnlabError(f"None of the {len(data)} images of '{data.name or 'images'}' could be decoded "
                          f"(first: {bad[0][0]}: {bad[0][1]})." if bad else "No images were given.")
    features = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))
    if l2:
        features = l2_normalize(features)
    labels = np.asarray(data.y)[np.asarray(kept, dtype=np.int64)]
    labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels, dtype=np.int64)
    names = [_image_name(data, i) for i in kept]
    return FeatureSet(features, labels.astype(np.int64), list(data.classes), names, bad, l2, model.name,
                      str(path) if path else None, status, note, time.perf_counter() - t0)
