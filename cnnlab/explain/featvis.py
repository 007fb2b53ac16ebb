"""Feature visualization by optimization (Olah et al. 2017, Distill; the ideas of Lucid/Lucent).

Start from noise (or an image) and follow the gradient of an objective. Without regularization the
result is high-frequency noise that excites the unit; regularizers chosen by name make it readable:
  fft          parametrize the image by its Fourier spectrum scaled by 1/frequency (decorrelates space)
  decorrelate  parametrize colour in a decorrelated basis (ImageNet's colour correlation)
  jitter[:D]   random translation by up to D px each step          (default 8 at 224 px, 2 at 32 px)
  scale[:S]    random zoom by a factor in [1-S, 1+S]                (default 0.1)
  rotate[:A]   random rotation by up to A degrees                  (default 10)
  blur[:K]     Gaussian blur of the image every K steps (Yosinski et al. 2015)        (default 4)
  tv[:W]       total-variation (high-frequency) penalty with weight W                  (default 0.05)
Presets: 'none', 'default' (fft, decorrelate, jitter, scale, rotate), 'classic' (blur, tv, jitter).
Small inputs (CIFAR's 32 px) are optimized on a 4x larger canvas and area-downsampled to the model's
size, so transforms move by sub-pixel amounts and the picture is drawn at a readable size.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CnnlabError, unknown
from ..imageops import affine, gaussian_blur
from ..models import Classifier, as_classifier
from ..progress import Progress
from ..results import Result
from .hooks import run_until
from .objectives import LOGITS, Objective

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REGULARIZERS = ("fft", "decorrelate", "jitter", "scale", "rotate", "blur", "tv")
PRESETS = {"none": [], "default": ["fft", "decorrelate", "jitter", "scale", "rotate"],
           "lucent": ["fft", "decorrelate", "jitter", "scale", "rotate"], "classic": ["blur", "tv", "jitter"]}

# ImageNet's colour correlation (square root of its covariance, from an SVD), as used by Lucid: images
# are parametrized in a basis where colour channels are decorrelated, then mapped back to RGB.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


def parse_regularizers(spec: str | Sequence[str] | None, input_px: int) -> dict[str, float]:
    """['fft', 'jitter:4', ...] or a preset name -> {name: parameter} with defaults filled in."""
    if spec is None:
        spec = "default"
    items: list[str] = []
    for s in ([spec] if isinstance(spec, str) else list(spec)):
        for part in str(s).split(","):
            part = part.strip()
            if part:
                items.extend(PRESETS[part] if part in PRESETS else [part])
    small = input_px < 100
    defaults = {"fft": 1.0, "decorrelate": 1.0, "jitter": 2.0 if small else 8.0, "scale": 0.1, "rotate": 10.0,
                "blur": 4.0, "tv": 0.05}
    out: dict[str, float] = {}
    for item in items:
        name, _, val = item.partition(":")
        name = name.strip().lower()
        if name not in REGULARIZERS:
            raise unknown("regularizer", name, [*REGULARIZERS, *PRESETS])
        try:
            out[name] = float(val) if val else defaults[name]
        except ValueError:
            raise CnnlabError(f"Regularizer '{item}' needs a number after ':' (e.g. jitter:4).") from None
        if out[name] < 0:
            raise CnnlabError(f"Regularizer '{item}' needs a non-negative value.")
    return out


class ImageParam(nn.Module):
    """A learnable image [1,3,S,S] in [0,1]: pixels or an 1/f-scaled Fourier spectrum, colours optionally
    decorrelated, squashed by a sigmoid (so it never leaves [0,1])."""

    def __init__(self, size: int, fft: bool, decorrelate: bool, start: torch.Tensor | None = None,
                 sd: float = 0.01, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.size, self.fft, self.decorrelate = size, fft, decorrelate
        if fft:
            fy = torch.fft.fftfreq(size)[:, None]
            fx = torch.fft.rfftfreq(size)[None, :]
            freqs = (fy ** 2 + fx ** 2).sqrt()
            self.register_buffer("scale", 1.0 / freqs.clamp_min(1.0 / size))
            shape = (1, 3, size, size // 2 + 1, 2)
        else:
            shape = (1, 3, size, size)
        self.param = nn.Parameter(torch.randn(shape, generator=generator) * sd)
        if start is not None:
            self.set_image(start)

    def _decorrelated(self) -> torch.Tensor:
        if self.fft:
            spec = torch.view_as_complex(self.param) * self.scale
            t = torch.fft.irfft2(spec, s=(self.size, self.size), norm="ortho") / 4.0
        else:
            t = self.param
        return t

    def forward(self) -> torch.Tensor:
        t = self._decorrelated()
        if self.decorrelate:
            t = (_COLOR.to(t.device) @ t.flatten(2)).view_as(t)
        return torch.sigmoid(t)

    @torch.no_grad()
    def set_image(self, img: torch.Tensor) -> None:
        """Make the parametrization show `img` [1,3,S,S] in [0,1] (start image; blur steps)."""
        t = torch.logit(img.clamp(1e-3, 1 - 1e-3))
        if self.decorrelate:
            t = (torch.linalg.inv(_COLOR).to(t.device) @ t.flatten(2)).view_as(t)
        if self.fft:
            spec = torch.fft.rfft2(t * 4.0, norm="ortho") / self.scale
            self.param.copy_(torch.view_as_real(spec))
        else:
            self.param.copy_(t)


def total_variation(img: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels (a high-frequency penalty)."""
    return (img[..., 1:, :] - img[..., :-1, :]).abs().mean() + (img[..., :, 1:] - img[..., :, :-1]).abs().mean()


def random_transform(img: torch.Tensor, reg: dict[str, float], out_size: tuple[int, int],
                     gen: torch.Generator, canvas_scale: float) -> torch.Tensor:
    """Jitter, zoom and rotate the canvas at random (one affine resample), then fit the model's input size."""
    jit = reg.get("jitter", 0.0) * canvas_scale
    if jit or reg.get("scale") or reg.get("rotate"):
        s = 1.0 + (torch.rand(1, generator=gen).item() * 2 - 1) * reg.get("scale", 0.0)
        degrees = (torch.rand(1, generator=gen).item() * 2 - 1) * reg.get("rotate", 0.0)
        shift = (torch.rand(2, generator=gen) * 2 - 1) * jit  # pixels of the canvas
        img = affine(img, degrees, -float(shift[0]), -float(shift[1]), s, padding="reflection")
    if tuple(img.shape[-2:]) != tuple(out_size):
        img = F.interpolate(img, size=out_size, mode="area")
    return img


@dataclass(repr=False)
class Visualization(Result):
    """The optimized image (at canvas size) and how the objective rose."""

    objective: str
    image: torch.Tensor
    model_input: torch.Tensor
    regularizers: dict[str, float]
    steps: int
    history: list[float]
    start_value: float
    final_value: float
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"objective": self.objective, "regularizers": self.regularizers, "steps": self.steps,
                "start_value": self.start_value, "final_value": self.final_value, "seconds": self.seconds,
                "image_size": list(self.image.shape[-2:]), "notes": self.notes}

    def summary_rows(self) -> list[tuple[str, object]]:
        return [("objective", self.objective), ("steps", self.steps), ("start_value", round(self.start_value, 3)),
                ("final_value", round(self.final_value, 3)), ("image_size", "x".join(map(str, self.image.shape[-2:]))),
                ("seconds", round(self.seconds, 1))]

    def save(self, path: str | Path) -> Path:
        """The optimized image as a PNG at canvas size."""
        from ..images import save_image
        return save_image(self.image, path)

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """The image beside the objective's curve over the steps."""
        from ..figures import finish, hwc, new_figure
        fig, axes = new_figure(1, 2, figsize=(7, 3.3))
        a, b = axes[0]
        a.imshow(hwc(self.image))
        a.set_title(self.objective, fontsize=9)
        a.axis("off")
        b.plot(self.history)
        b.set_xlabel("step")
        b.set_ylabel("objective")
        b.set_title(f"{self.start_value:.2f} -> {self.final_value:.2f}", fontsize=9)
        fig.tight_layout()
        return finish(fig, path)


def objective_value(model: Classifier | nn.Module, objective: Objective, x: torch.Tensor) -> torch.Tensor:
    """The objective's per-image value on images x [N,3,H,W] in [0,1] (no gradient)."""
    model = as_classifier(model)
    with model.frozen(), torch.no_grad():
        return _evaluate(model, objective, model.check_images(x))


def _evaluate(model: Classifier, objective: Objective, x: torch.Tensor) -> torch.Tensor:
    names = {n: model.resolve_layer_name(n) for n in objective.layers if n != LOGITS}
    needs_logits = LOGITS in objective.layers
    got = run_until(model, x, list(names.values()), logits=needs_logits)
    acts = {n: got.get(r) for n, r in names.items()}
    if needs_logits:
        acts[LOGITS] = got.logits
    objective.check(acts)
    return objective(acts)


def visualize(model: Classifier | nn.Module, objective: Objective, *, steps: int = 256, lr: float = 0.05,
              regularizers: str | Sequence[str] | None = "default", start: torch.Tensor | None = None,
              canvas: int | None = None, seed: int = 0,
              callback: Callable[[int, float], None] | None = None, progress: bool = True) -> Visualization:
    """Optimize an image to maximize `objective` (see cnnlab.explain.objectives) with Adam.

    start: None (noise) or an image [1,3,H,W] in [0,1] (resized to the canvas). canvas: side of the
    optimized image (default: the model's input side, or 4x it below 100 px). Returns the image at
    canvas size, its model-size version, and the objective per step. A bare nn.Module is wrapped with
    `cnnlab.wrap`'s defaults first. `progress` shows the steps (with the objective's value).
    """
    model = as_classifier(model)
    if steps < 1:
        raise CnnlabError(f"steps must be at least 1; got {steps}.")
    h, w = model.input_size
    side = max(h, w)
    reg = parse_regularizers(regularizers, side)
    size = canvas or (side * 4 if side < 100 else side)
    dev = model.device
    gen = torch.Generator().manual_seed(seed)
    if start is not None:
        start = model.check_images(start, "The start image")[:1]
        start = F.interpolate(start, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    param = ImageParam(size, "fft" in reg, "decorrelate" in reg, start, generator=gen).to(dev)
    opt = torch.optim.Adam(param.parameters(), lr=lr)
    history: list[float] = []
    t0 = time.perf_counter()
    with model.frozen(fast=True), torch.enable_grad(), Progress(steps, f"optimizing {objective.name}", "step",
                                                       enabled=progress) as bar:
        with torch.no_grad():
            start_value = float(_evaluate(model, objective, _fit(param(), (h, w)))[0])
        for step in range(steps):
            img = param()
            x = random_transform(img, reg, (h, w), gen, size / side)
            value = _evaluate(model, objective, x)[0]
            loss = -value
            if "tv" in reg:
                loss = loss + reg["tv"] * total_variation(img)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if "blur" in reg and reg["blur"] >= 1 and (step + 1) % int(reg["blur"]) == 0:
                param.set_image(gaussian_blur(param().detach(), 0.5 * size / side))
            history.append(value.item())
            bar.update(1, objective=round(history[-1], 3))
            if callback:
                callback(step, history[-1])
        with torch.no_grad():
            final = param()
            model_input = _fit(final, (h, w))
            final_value = float(_evaluate(model, objective, model_input)[0])
    return Visualization(objective.name, final[0].detach().cpu(), model_input[0].detach().cpu(), reg, steps,
                         history, start_value, final_value, time.perf_counter() - t0)


def _fit(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return img if tuple(img.shape[-2:]) == tuple(size) else F.interpolate(img, size=size, mode="area")


def compare_regularization(model: Classifier | nn.Module, objective: Objective, steps: int = 256,
                           regularizers: str | Sequence[str] = "default", path: str | Path | None = None,
                           **kw: Any) -> tuple[Visualization, Visualization, Path | None]:
    """The same unit optimized without and with regularization, side by side (and saved when `path`)."""
    plain = visualize(model, objective, steps=steps, regularizers="none", **kw)
    nice = visualize(model, objective, steps=steps, regularizers=regularizers, **kw)
    out = None
    if path is not None:
        from ..figures import panel_figure, save_figure
        fig = panel_figure([[plain.image, nice.image]],
                           [[f"no regularization ({plain.final_value:.1f})",
                             f"{'+'.join(nice.regularizers)} ({nice.final_value:.1f})"]], cell=3.2)
        fig.suptitle(objective.name, fontsize=9)
        out = save_figure(fig, path)
    return plain, nice, out
