"""The explorer's computations: one model, a small cache of uploaded images, and one lock.

Every model call happens under `Explorer.lock`, so concurrent requests never share hooks or
half-finished state; results are plain dicts with PNGs as data URIs (what the JSON API returns).
The algorithms live in cnnlab.explain and cnnlab.attacks; this module only adapts their results.

A shared page must stay responsive and bounded whatever its clients do:
- at most `max_waiting` requests wait for the model; the next ones are refused at once (`Busy`,
  answered 503 with Retry-After) instead of queueing without end;
- each computation carries a `Job`: its deadline, and a test for a client that went away; the job is
  checked before every forward pass of the model (between attack steps, attribution batches), so
  abandoned work stops within one step and the next request gets the model;
- at most `max_decodes` uploads are decoded at once (decoding runs outside the model lock, and each
  decode may hold up to MAX_PIXELS pixels), so parallel uploads cannot add up;
- every image gets its own random id (never one derived from its content), so two clients who send
  the same file each see their own file name, and no one can guess another client's id;
- when the last request finishes, freed memory is handed back to the operating system.
"""
from __future__ import annotations

import base64
import contextlib
import io
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CnnlabError, ImageError, unknown
from ..figures import colorize, overlay
from ..images import (BUNDLED_PHOTOS, MAX_PIXELS, bundled_photo, make_grid, normalize01, open_image,
                      pil_to_tensor, to_uint8)
from ..models import Classifier, as_classifier
from ..models.fastpath import release_memory
from . import adapters

MAX_STEPS = 200
CACHE_SIZE = 48
#: Requests allowed to wait for the model; more are answered 503 with Retry-After.
MAX_WAITING = 8
#: Uploads decoded at the same time.
MAX_DECODES = 2
#: A computation that runs longer than this is stopped (its client most likely gave up).
REQUEST_SECONDS = 120.0


def png_data_uri(img: torch.Tensor) -> str:
    """A float [3,H,W] / [H,W] tensor in [0,1] as a PNG data URI."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class InputImage:
    """An image as the model sees it (preprocessed [1,3,H,W]) and the id the page uses to refer to it."""

    id: str
    x: torch.Tensor
    source: str


class Busy(CnnlabError):
    """Too many requests are waiting for the model; the client should try again after `retry_after` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Cancelled(CnnlabError):
    """A computation stopped because its client went away or its deadline passed."""


@dataclass
class Job:
    """One request's computation: when it must end, and how to tell that its client has gone.

    `check()` raises Cancelled once either happens; the explorer calls it while waiting for the model
    and before every forward pass. `client_gone` is polled at most every `poll_s` seconds."""

    deadline_s: float = REQUEST_SECONDS
    client_gone: Callable[[], bool] | None = None
    poll_s: float = 0.05
    start: float = field(default_factory=time.monotonic)
    _polled: float = 0.0

    def check(self) -> None:
        now = time.monotonic()
        if now - self.start > self.deadline_s:
            raise Cancelled(f"The request took longer than {self.deadline_s:g} s and was stopped; ask for fewer "
                            "steps or try again when the server is less busy.")
        if self.client_gone is not None and now - self._polled >= self.poll_s:
            self._polled = now
            if self.client_gone():
                raise Cancelled("The client closed the connection; the request was stopped.")


class Explorer:
    """One model behind the explorer page: predict, explain, feature maps, attacks, class search.

    Args:
        max_waiting: requests that may wait for the model before new ones are refused (Busy).
        max_decodes: uploads decoded at the same time.
        request_seconds: the deadline of each computation, waiting included.
    """

    def __init__(self, model: Classifier | nn.Module, max_pixels: int | None = None, *,
                 max_waiting: int = MAX_WAITING, max_decodes: int = MAX_DECODES,
                 request_seconds: float = REQUEST_SECONDS) -> None:
        self.model = as_classifier(model).eval()
        self.lock = threading.Lock()
        self._cache: OrderedDict[str, InputImage] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._thumbs: list[dict] | None = None
        self.max_pixels = max_pixels or MAX_PIXELS
        self.max_waiting, self.request_seconds = max_waiting, request_seconds
        self._decodes = threading.BoundedSemaphore(max_decodes)
        self._counts = threading.Lock()
        self.waiting = 0  # requests waiting for the model now
        self.busy = 0  # requests using or waiting for the model now
        self.cancelled = 0  # computations stopped so far (client gone or deadline)
        self.refused = 0  # requests answered Busy so far

    def job(self, client_gone: Callable[[], bool] | None = None) -> Job:
        """A Job with this explorer's deadline."""
        return Job(self.request_seconds, client_gone)

    # -- images ------------------------------------------------------------------------------------
    def add_upload(self, data: bytes, name: str = "upload") -> InputImage:
        """Decode uploaded bytes (any image type PIL reads; refused otherwise) and cache the model input."""
        pre = self.model.preprocessing
        try:
            with self._decodes:
                x = pre.apply(open_image(data, draft_size=pre.resize or max(self.model.input_size),
                                         max_pixels=self.max_pixels))[None]
        except ImageError as e:  # name the uploaded file, not '<image bytes>'
            raise ImageError(str(e).replace("'<image bytes>'", f"'{name}'")
                             .replace("The uploaded image", f"The uploaded image '{name}'")) from None
        return self._store(x, name)

    def add_photo(self, name: str) -> InputImage:
        """One of the bundled photos, by name only (never a path from the client)."""
        if name not in BUNDLED_PHOTOS:
            raise unknown("bundled photo", name, BUNDLED_PHOTOS)
        with self._decodes:
            x = self.model.preprocessing.apply(open_image(bundled_photo(name)))[None]
        return self._store(x, name)

    def get(self, image_id: str) -> InputImage:
        with self._cache_lock:
            item = self._cache.get(image_id)
            if item is None:
                raise ExpiredImage("That image is no longer held by the server; upload it again.")
            self._cache.move_to_end(image_id)
            return item

    def _store(self, x: torch.Tensor, source: str) -> InputImage:
        item = InputImage(secrets.token_urlsafe(18), x, source)
        with self._cache_lock:
            self._cache[item.id] = item
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return item

    # -- the model, one request at a time ----------------------------------------------------------------
    @contextlib.contextmanager
    def using_model(self, job: Job | None = None, watch_passes: bool = False) -> Iterator[None]:
        """Hold the model for one computation: refused (Busy) when `max_waiting` requests already wait;
        waiting stops when `job` is cancelled; with `watch_passes`, `job` is checked before every forward
        pass. When the last request is done, freed memory goes back to the operating system."""
        job = job or self.job()
        with self._counts:
            if self.waiting >= self.max_waiting:
                self.refused += 1
                raise Busy(f"The explorer is busy ({self.waiting} requests are waiting for the model); try again "
                           "in a few seconds.", retry_after=max(1, self.waiting))
            self.waiting += 1
            self.busy += 1
        try:
            try:
                while not self.lock.acquire(timeout=0.05):
                    job.check()
            finally:
                with self._counts:
                    self.waiting -= 1
            try:
                job.check()
                hook = self.model.register_forward_pre_hook(lambda module, args: job.check()) if watch_passes else None
                try:
                    yield
                finally:
                    if hook is not None:
                        hook.remove()
            finally:
                self.lock.release()
        except Cancelled:
            with self._counts:
                self.cancelled += 1
            raise
        finally:
            with self._counts:
                self.busy -= 1
                idle = self.busy == 0
            if idle:
                release_memory()

    def photos(self) -> list[dict]:
        """Bundled photos with small thumbnails (computed once)."""
        if self._thumbs is None:
            thumbs = []
            for name in BUNDLED_PHOTOS:
                try:
                    img = open_image(bundled_photo(name))
                except CnnlabError:
                    continue
                img.thumbnail((96, 96))
                thumbs.append({"name": name, "thumb": png_data_uri(pil_to_tensor(img))})
            self._thumbs = thumbs
        return self._thumbs

    def warm_up(self) -> None:
        """One prediction on a blank image, so the first real request is as fast as the next ones."""
        h, w = self.model.input_size
        with self.lock:
            self.model.predict(torch.full((1, 3, h, w), 0.5), k=1)

    # -- model info ----------------------------------------------------------------------------------
    def info(self) -> dict:
        d = self.model.describe()
        return {"name": d["name"], "num_classes": d["num_classes"], "input_size": d["input_size"],
                "layers": d["layers"], "params": d["params"], "weights": d["weights"],
                "explain_methods": adapters.explain_methods(), "attack_methods": adapters.attack_methods(),
                "max_steps": MAX_STEPS}

    def classes(self, query: str = "", limit: int = 30) -> list[dict]:
        """Class names matching `query`: exact, then prefix, then word-prefix, then substring matches."""
        q = query.strip().lower().replace("_", " ")
        labels = self.model.labels
        if not q:
            return [{"index": i, "label": lab} for i, lab in enumerate(labels[:limit])]
        scored = []
        for i, lab in enumerate(labels):
            low = lab.lower().replace("_", " ")
            words = low.replace(",", " ").split()
            if low == q or q == str(i):
                rank = 0
            elif q in words or low.endswith(" " + q):
                rank = 1
            elif low.startswith(q):
                rank = 2
            elif any(w.startswith(q) for w in words):
                rank = 3
            elif q in low:
                rank = 4
            else:
                continue
            scored.append((rank, len(low), i, lab))
        return [{"index": i, "label": lab} for _, _, i, lab in sorted(scored)[:limit]]

    # -- computations ----------------------------------------------------------------------------------
    def predict(self, item: InputImage, k: int = 5, job: Job | None = None) -> dict:
        t0 = time.perf_counter()
        with self.using_model(job):
            top = self.model.predict(item.x, k=k)[0]
        return {"image_id": item.id, "source": item.source, "input": png_data_uri(item.x[0]),
                "top": [p.to_dict() for p in top], "ms": _ms(t0)}

    def explain(self, item: InputImage, method: str, target: str | None = None,
                layer: str | None = None, job: Job | None = None) -> dict:
        t0 = time.perf_counter()
        cls = self.model.class_index(target) if target not in (None, "") else None
        with self.using_model(job, watch_passes=True):
            heat, cls = adapters.attribution(self.model, item.x, cls, method, layer)
        shown = overlay(item.x[0], heat, alpha=0.5) if method == "gradcam" else _sparse_overlay(item.x[0], heat)
        return {"method": method, "target": {"index": cls, "label": self.model.labels[cls]},
                "overlay": png_data_uri(shown), "heatmap": png_data_uri(colorize(heat, "inferno")), "ms": _ms(t0)}

    def featmaps(self, item: InputImage, layer: str = "middle", k: int = 16, job: Job | None = None) -> dict:
        t0 = time.perf_counter()
        if not 1 <= k <= 64:
            raise CnnlabError(f"Number of feature maps k={k} must be between 1 and 64.")
        with self.using_model(job):
            name = self.model.resolve_layer_name(layer)
            maps, channels = adapters.feature_maps(self.model, item.x, name, k)
        tiles = normalize01(maps, dims=(-2, -1))[:, None].expand(-1, 3, -1, -1)
        h = maps.shape[-1]
        scale = max(1, 64 // max(1, h))
        if scale > 1:
            tiles = torch.nn.functional.interpolate(tiles, scale_factor=scale, mode="nearest")
        grid = make_grid(tiles, nrow=min(8, len(tiles)), padding=2, pad_value=1.0)
        return {"layer": name, "channels": channels, "size": list(maps.shape[-2:]),
                "grid": png_data_uri(grid), "ms": _ms(t0)}

    def attack(self, item: InputImage, method: str, eps: float, steps: int = 10,
               target: str | None = None, job: Job | None = None) -> dict:
        t0 = time.perf_counter()
        if not 1 <= steps <= MAX_STEPS:
            raise CnnlabError(f"steps={steps} must be between 1 and {MAX_STEPS} in the explorer.")
        with self.using_model(job, watch_passes=True):
            res = adapters.run_attack(self.model, item.x, method, eps=eps, steps=steps, target=target or None)
            adv = res.images[:1].detach().cpu()  # results come back from the model's device
            # also what a user who saves the picture gets: pixels rounded to 8 bits can undo a tiny attack
            top, saved_top = self.model.predict(torch.cat([adv, torch.round(adv * 255) / 255]), k=5)
            saved = saved_top[0]
        delta = (adv - item.x)[0]
        mag = float(delta.abs().max())
        shown = (0.5 + delta / (2 * mag)).clamp(0, 1) if mag > 0 else torch.full_like(delta, 0.5)
        d = res.to_dict()
        return {"method": method, "success": bool(res.success[0]), "steps": int(res.steps[0]),
                "original": d["images"][0]["original"], "final": d["images"][0]["final"],
                "target": d["images"][0].get("target"), "linf_255": round(mag * 255, 3),
                "l2": float(delta.norm()), "magnify": round(0.5 / mag, 1) if mag > 0 else None,
                "adversarial": png_data_uri(adv[0]), "perturbation": png_data_uri(shown),
                "top": [p.to_dict() for p in top], "saved_png": saved.to_dict(), "ms": _ms(t0)}


def _sparse_overlay(image: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """Pixel attributions are sparse: colour each pixel by its heat (clipped at the 99th percentile) and
    let the dimmed image show through where there is none, so the few strong pixels stay visible."""
    h = heat.detach().float().cpu().clamp_min(0)
    top = torch.quantile(h.flatten(), 0.99).clamp_min(1e-12)
    h = (h / top).clamp(0, 1)
    return ((1 - h) * 0.45 * image + h * colorize(h, "inferno")).clamp(0, 1)


class ExpiredImage(CnnlabError):
    """An image id the server no longer holds (the page re-uploads the image)."""


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)
