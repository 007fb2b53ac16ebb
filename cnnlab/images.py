"""Load any image file into float RGB [0,1] tensors once, preprocess per model, save and tile images.

Everything in cnnlab takes images as float tensors in [0, 1], RGB, NCHW; this module is the one
place where files become such tensors (and tensors become PNG files again).
"""
from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CnnlabError, ImageError, brief

if TYPE_CHECKING:
    from .models.classifier import Classifier

ImageSource = Union[str, Path, bytes, Image.Image, np.ndarray, torch.Tensor]

#: File suffixes taken for images when a directory stands for the images inside it.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

#: Images with more pixels than this are refused as likely decompression bombs (about 8k x 8k).
MAX_PIXELS = 64_000_000
#: Images longer than this many times their width (or wider than their height) are refused: no camera or
#: scanner makes them, and resizing a 1 x 60,000 strip's short side to 256 px would make a 15-million-pixel
#: long side (16 GB measured) from a 318-byte file.
MAX_ASPECT = 50

#: scikit-image's bundled real photos used by the tour, the explorer and the tests.
BUNDLED_PHOTOS = {
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "astronaut": "astronaut.png",
    "motorcycle_left": "motorcycle_left.png",
}

#: Preprocessing resizes a whole image when the result holds at most this many times the crop's pixels,
#: else only the part it keeps (see Preprocessing.apply).
_RESIZE_WHOLE_UP_TO = 16

_INTERPOLATION = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


@dataclass(frozen=True)
class Preprocessing:
    """How a classifier wants its input: resize the short side to `resize` (or the whole image to
    `input_size` when `resize` is None), then centre-crop to `input_size` (height, width)."""

    input_size: tuple[int, int] = (224, 224)
    resize: int | None = 256
    interpolation: str = "bilinear"

    def to_dict(self) -> dict:
        return {"input_size": list(self.input_size), "resize": self.resize,
                "interpolation": self.interpolation}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(tuple(d["input_size"]), d.get("resize"), d.get("interpolation", "bilinear"))

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize step, as torchvision's Resize(int) computes it."""
        if self.resize is None:
            return self.input_size[1], self.input_size[0]
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize, int(self.resize * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)

    def apply(self, img: Image.Image) -> torch.Tensor:
        """A PIL RGB image -> float [3, H, W] tensor in [0, 1] at this input size.

        Where the resized image would be much larger than the crop (a long strip resized by its short
        side), only the cropped part is resampled (Pillow's `box`: the same filter, up to rounding),
        so work and memory stay bounded by the input size, not by the file's shape."""
        th, tw = self.input_size
        if img.size == (tw, th):
            return pil_to_tensor(img)
        nw, nh = self.resized_size(*img.size)
        cw, ch = max(nw, tw), max(nh, th)  # the canvas: padded like torchvision's CenterCrop where too small
        left, top = int(round((cw - tw) / 2.0)), int(round((ch - th) / 2.0))
        if nw * nh <= _RESIZE_WHOLE_UP_TO * tw * th:  # usual photos: resize it all, exactly as before
            if (nw, nh) != img.size:
                img = img.resize((nw, nh), _INTERPOLATION[self.interpolation])
            if (cw, ch) != (nw, nh):
                canvas = Image.new("RGB", (cw, ch))
                canvas.paste(img, ((cw - nw) // 2, (ch - nh) // 2))
                img = canvas
            return pil_to_tensor(img.crop((left, top, left + tw, top + th)) if img.size != (tw, th) else img)
        left, top = left - (cw - nw) // 2, top - (ch - nh) // 2  # the crop in resized-image coordinates
        x0, y0, x1, y1 = max(0, left), max(0, top), min(nw, left + tw), min(nh, top + th)
        sx, sy = img.size[0] / nw, img.size[1] / nh
        part = img.resize((x1 - x0, y1 - y0), _INTERPOLATION[self.interpolation],
                          box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy))
        if part.size != (tw, th):
            canvas = Image.new("RGB", (tw, th))
            canvas.paste(part, (x0 - left, y0 - top))
            part = canvas
        return pil_to_tensor(part)

    def apply_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """A float [N,3,H,W] batch in [0,1] -> this input size (antialiased resize + centre crop)."""
        th, tw = self.input_size
        if tuple(x.shape[-2:]) == (th, tw):
            return x
        h, w = x.shape[-2:]
        nw, nh = self.resized_size(w, h)
        x = torch.nn.functional.interpolate(x, size=(nh, nw), mode=self.interpolation,
                                            antialias=self.interpolation != "nearest",
                                            align_corners=False if self.interpolation != "nearest" else None)
        top, left = max(0, int(round((nh - th) / 2.0))), max(0, int(round((nw - tw) / 2.0)))
        return x[..., top:top + th, left:left + tw].clamp(0, 1)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> float [3, H, W] in [0, 1]."""
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def _name(src: object) -> str:
    return str(src) if isinstance(src, (str, Path)) else "<image bytes>"


def open_image(src: str | Path | bytes, draft_size: int | None = None,
               max_pixels: int = MAX_PIXELS, max_aspect: float = MAX_ASPECT) -> Image.Image:
    """Open an image file (or its bytes) as an RGB PIL image, upright per EXIF.

    Handles grayscale, palette, RGBA (alpha dropped), CMYK, 16-bit and GIF (first frame).
    Any unreadable input raises ImageError with one sentence naming the file: whatever the decoder
    raises on a damaged file (OSError, but also TypeError, IndexError, struct.error, ...) is that
    file's error, never the caller's. `draft_size` lets JPEG decode at a reduced scale whose short
    side stays >= draft_size. Sizes are checked from the header, before any pixel is decoded.
    """
    name = _name(src)
    if isinstance(src, (str, Path)):
        path = Path(src)
        if not path.exists():
            raise ImageError(f"Image file '{name}' does not exist; check the path.")
        if path.is_dir():
            raise ImageError(f"'{name}' is a directory, not an image file; pass the image files inside it.")
        if path.stat().st_size == 0:
            raise ImageError(f"Image file '{name}' is empty (0 bytes); replace it with a real image.")
        fp: object = str(path)
    else:
        if len(src) == 0:
            raise ImageError("The uploaded image is empty (0 bytes); send a real image file.")
        fp = io.BytesIO(src)
    try:
        img = Image.open(fp)
        w, h = img.size
        if w * h > max_pixels:
            raise ImageError(f"Image '{name}' is {w}x{h} = {w * h:,} pixels, more than the limit of "
                             f"{max_pixels:,} (a decompression bomb?); resize it first.")
        if min(w, h) < 1 or max(w, h) > max_aspect * min(w, h):
            raise ImageError(f"Image '{name}' is {w}x{h} pixels: one side is more than {max_aspect:g} times the other "
                             "(a strip, not a photo); crop it to the part to classify.")
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        if draft_size and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        img.load()
        img = ImageOps.exif_transpose(img)
        return _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"'{name}' is not an image file that can be read (JPEG, PNG, WebP, BMP, GIF, TIFF); "
                         "check that it is an image.") from None
    except Image.DecompressionBombError:
        raise ImageError(f"Image '{name}' is too large to decode safely (a decompression bomb?); "
                         "resize it first.") from None
    except MemoryError:
        raise ImageError(f"Image '{name}' needs more memory to decode than this computer has; resize it "
                         "first.") from None
    except Exception as e:  # noqa: BLE001 - whatever a damaged file makes the decoder raise is that file's error
        raise ImageError(f"Image '{name}' is truncated or corrupt ({brief(e, 100)}); re-export or "
                         "re-download it.") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode != "RGB":
        img = img.convert("RGB")  # RGBA/LA: alpha dropped; L, 1, P, CMYK, YCbCr: converted
    return img


def load_image(src: ImageSource) -> torch.Tensor:
    """One image at its own size -> float [3, H, W] in [0, 1]."""
    if isinstance(src, torch.Tensor):
        return _check_tensor(src if src.dim() == 3 else src.squeeze(0))
    if isinstance(src, np.ndarray):
        return _array_to_tensor(src)
    if isinstance(src, Image.Image):
        return pil_to_tensor(_to_rgb(src))
    return pil_to_tensor(open_image(src))


def _array_to_tensor(arr: np.ndarray) -> torch.Tensor:
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3:
        raise ImageError(f"An image array must be H x W x C, got shape {arr.shape}.")
    if arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = np.ascontiguousarray(arr)
    t = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).permute(2, 0, 1)
    return t.float() / 255.0 if arr.dtype == np.uint8 else _check_tensor(t.float())


def _check_tensor(t: torch.Tensor) -> torch.Tensor:
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ImageError(f"An image tensor must be [3, H, W] (or [1, H, W]), got {tuple(t.shape)}.")
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    t = t.float()
    if t.min() < 0 or t.max() > 1:
        raise ImageError("Image tensors must hold values in [0, 1]; divide uint8 pixels by 255.")
    return t


def preprocessing_of(model: "Classifier | Preprocessing | None") -> Preprocessing | None:
    if model is None or isinstance(model, Preprocessing):
        return model
    return model.preprocessing


def load_images(sources: ImageSource | Sequence[ImageSource],
                model: "Classifier | Preprocessing | None" = None) -> torch.Tensor:
    """Images (paths, bytes, PIL images, arrays or tensors) -> float [N,3,H,W] in [0,1],
    resized and cropped the way `model` wants (all must share one size when no model is given)."""
    if isinstance(sources, (str, Path, bytes, Image.Image, np.ndarray)) or (
            isinstance(sources, torch.Tensor) and sources.dim() == 3):
        sources = [sources]
    if isinstance(sources, torch.Tensor):  # an NCHW batch already
        pre = preprocessing_of(model)
        return pre.apply_tensor(sources.float()) if pre else sources.float()
    pre = preprocessing_of(model)
    out = [_load_one(s, pre) for s in sources]
    if not out:
        raise ImageError("No images were given.")
    shapes = {tuple(t.shape) for t in out}
    if len(shapes) > 1:
        raise ImageError(f"Images have different sizes {sorted(shapes)}; pass a model (or Preprocessing) "
                         "so they are resized to one input size.")
    return torch.stack(out)


def _load_one(src: ImageSource, pre: Preprocessing | None) -> torch.Tensor:
    if pre is None:
        return load_image(src)
    if isinstance(src, (str, Path, bytes)):
        return pre.apply(open_image(src, draft_size=pre.resize or max(pre.input_size)))
    if isinstance(src, Image.Image):
        return pre.apply(_to_rgb(src))
    return pre.apply_tensor(load_image(src)[None])[0]


def load_many(paths: Iterable[str | Path], model: "Classifier | Preprocessing | None" = None
              ) -> tuple[list[str], torch.Tensor | None, list[tuple[str, str]]]:
    """Load many files, skipping bad ones: (good paths, [N,3,H,W] or None, [(bad path, reason)])."""
    good, tensors, bad = [], [], []
    pre = preprocessing_of(model)
    for p in paths:
        try:
            tensors.append(_load_one(p, pre))
            good.append(str(p))
        except ImageError as e:
            bad.append((str(p), str(e)))
    if tensors and len({tuple(t.shape) for t in tensors}) > 1:
        raise ImageError("Images have different sizes; pass a model so they are resized to its input size.")
    return good, (torch.stack(tensors) if tensors else None), bad


def expand_image_paths(items: Iterable[str | Path], recursive: bool = False) -> list[str]:
    """Image arguments -> file paths: a directory stands for the image files inside it (sorted; with
    `recursive`, in its subdirectories too), anything else is kept as given (a bad file fails later,
    with its own reason, when it is loaded)."""
    out: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = p.rglob("*") if recursive else p.iterdir()
            out.extend(str(f) for f in sorted(found) if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        else:
            out.append(str(item))
    return out


def load_batches(paths: Sequence[str | Path], model: "Classifier | Preprocessing | None" = None,
                 batch_size: int = 32) -> Iterator[tuple[list[str], torch.Tensor | None, list[tuple[str, str]]]]:
    """`load_many` over `batch_size` files at a time, so that memory holds one batch of images however
    many files there are."""
    if batch_size < 1:
        raise CnnlabError(f"The batch size must be at least 1, not {batch_size}.")
    for start in range(0, len(paths), batch_size):
        yield load_many(paths[start:start + batch_size], model)


def bundled_photo(name: str) -> Path:
    """Path of one of scikit-image's bundled photos (chelsea, coffee, rocket, astronaut, motorcycle_left)."""
    import importlib.util

    from .errors import unknown
    if name not in BUNDLED_PHOTOS:
        raise unknown("bundled photo", name, BUNDLED_PHOTOS)
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ImageError("scikit-image is not installed; `pip install scikit-image` provides the bundled photos.")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / BUNDLED_PHOTOS[name]
    if not path.exists():
        raise ImageError(f"scikit-image's photo '{path}' is missing; reinstall scikit-image.")
    return path


def bundled_photos() -> dict[str, Path]:
    """All bundled photos by name."""
    return {n: bundled_photo(n) for n in BUNDLED_PHOTOS}


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """float [3,H,W] (or [1,H,W]/[H,W]) in [0,1] -> uint8 H x W x 3 (or H x W) array."""
    t = img.detach().float().cpu().clamp(0, 1)
    if t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    arr = (t * 255.0 + 0.5).to(torch.uint8).numpy()
    return arr if arr.ndim == 2 else arr.transpose(1, 2, 0)


def unique_stems(names: Sequence[str | Path]) -> list[str]:
    """One file-name stem per input, unique among them: 'a/x.png', 'b/x.png', 'x.jpg' -> x, x-2, x-3 (so
    outputs named after their inputs never overwrite each other)."""
    used: set[str] = set()
    out = []
    for i, name in enumerate(names):
        base = Path(str(name)).stem or f"image{i}"
        stem, n = base, 1
        while stem.lower() in used:  # case-insensitive file systems count X and x as one name
            n += 1
            stem = f"{base}-{n}"
        used.add(stem.lower())
        out.append(stem)
    return out


def save_image(img: torch.Tensor, path: str | Path) -> Path:
    """Save a float [3,H,W]/[1,H,W]/[H,W] tensor in [0,1] (or an [N,3,H,W] batch as a grid) as PNG."""
    if img.dim() == 4:
        img = make_grid(img)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(img)).save(path)
    return path


def make_grid(images: torch.Tensor | Sequence[torch.Tensor], nrow: int | None = None,
              padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile [N,C,H,W] images into one [C, H', W'] image, `nrow` per row (default: near-square)."""
    if not isinstance(images, torch.Tensor):
        images = torch.stack(list(images))
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value,
                      dtype=images.dtype)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, y:y + h, x:x + w] = images[i]
    return grid


def normalize01(x: torch.Tensor, dims: tuple[int, ...] | None = None, eps: float = 1e-12) -> torch.Tensor:
    """Contrast-stretch to [0,1]: subtract the minimum, divide by the new maximum (per `dims` slice)."""
    if dims is None:
        lo, hi = x.min(), x.max()
    else:
        lo = x.amin(dim=dims, keepdim=True)
        hi = x.amax(dim=dims, keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(eps)
