"""Attributions with one call shape: `attribute(model, x, target=None, method=..., **options)`.

Methods: gradient saliency (Simonyan et al. 2014), SmoothGrad (Smilkov et al. 2017), Integrated
Gradients (Sundararajan et al. 2017; interpolation steps batched with a bounded internal batch so
memory does not grow with steps x images), guided backpropagation (Springenberg et al. 2015),
Grad-CAM (Selvaraju et al. 2017) on any named layer, and the deconvnet (Zeiler & Fergus 2014).

Each method is declared once, by the `@attribution_method` decorator on its function: its name,
aliases, figure title, and its options with their defaults (the function's keyword-only
parameters). `attribute()`, the `saliency` command and the explorer all read that registry. Every
method runs in eval mode with frozen parameters, so autograd builds only the graph the method needs
(Grad-CAM builds none before its layer).
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CnnlabError, unknown
from ..models import Classifier, as_classifier
from ..models.classifier import Target
from ..models.fastpath import chunk_size
from ..results import Result, percent, rows_of
from .cam import LayerCam, class_activation_map

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Modules whose backward guided backpropagation and the deconvnet rectify.
RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.RReLU)
#: What a gradient method differentiates: the target's logit, or its cross-entropy loss.
SCORES = ("logit", "loss")


@dataclass(repr=False)
class Attribution(Result):
    """Attributions of N images: signed per-pixel values and a non-negative map per image for display.

    attributions: [N,3,H,W] (gradient, smoothgrad, ig, guided, deconvnet) or [N,1,H,W] (gradcam, upsampled).
    maps: [N,H,W] non-negative (|.| max over channels; IG: |.| summed over channels; Grad-CAM: itself).
    """

    method: str
    images: torch.Tensor
    attributions: torch.Tensor
    maps: torch.Tensor
    targets: list[int]
    labels: list[str]
    scores: list[float]  # the target's logit per image
    probs: list[float] = field(default_factory=list)  # the target's softmax probability per image
    layer: str | None = None
    layer_maps: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        """The method's display title (Grad-CAM's names its layer)."""
        return REGISTRY[self.method].title.format(layer=self.layer)

    def explained(self, i: int) -> str:
        """What image i's map explains, with its value: 'tiger cat: logit 12.31' or, when the gradient is of
        the cross-entropy ('score=loss'), 'tiger cat: loss 0.97' (-log of the class probability)."""
        if self.extras.get("score") == "loss" and i < len(self.probs):
            return f"{self.labels[i]}: loss {-math.log(max(self.probs[i], 1e-45)):.2f}"
        return f"{self.labels[i]}: logit {self.scores[i]:.2f}"

    def to_dict(self) -> dict:
        """A JSON-able summary: method, targets and scores, the shape and the peak of each map."""
        peaks = []
        for m in self.maps:
            i = int(m.flatten().argmax())
            peaks.append([i // m.shape[1], i % m.shape[1]])
        return {"method": self.method, "targets": self.targets, "labels": self.labels, "scores": self.scores,
                "probs": self.probs, "layer": self.layer, "shape": list(self.attributions.shape), "peaks_yx": peaks,
                **{k: v for k, v in self.extras.items()}, "notes": self.notes}

    def summary(self) -> str:
        """One line: the method, each image's explained class with its logit (or loss), and what else to know."""
        line = f"{self.method}: " + ", ".join(self.explained(i) for i in range(len(self.labels)))
        if "completeness_relative_error" in self.extras:
            line += f"; completeness error {max(self.extras['completeness_relative_error']):.1%}"
        return line + (f"; layer {self.layer}" if self.layer else "")

    def summary_rows(self) -> list[tuple[str, object]]:
        rows: list[tuple[str, object]] = [("method", self.title), ("images", len(self.images))]
        rows += rows_of([(f"image {i}", self.explained(i)) for i in range(len(self.labels))], 4)
        if "completeness_relative_error" in self.extras:
            rows.append(("completeness_error", percent(max(self.extras["completeness_relative_error"]), 1)))
        return rows

    def display_maps(self, percentile: float = 99.5) -> torch.Tensor:
        """[N,H,W] maps scaled to [0,1] for viewing: pixel attributions are divided by their `percentile`
        and clipped (a few extreme gradients would otherwise leave the rest black); Grad-CAM by its max."""
        flat = self.maps.flatten(1).float()
        top = flat.amax(1) if self.method == "gradcam" else torch.quantile(flat, percentile / 100, dim=1)
        return (self.maps / top.clamp_min(1e-12).view(-1, 1, 1)).clamp(0, 1)

    def overlays(self, alpha: float = 0.5) -> torch.Tensor:
        """[N,3,H,W] heat maps over their images."""
        from ..figures import overlay, single_threaded
        with single_threaded():
            return torch.stack([overlay(img, m, alpha) for img, m in zip(self.images, self.display_maps())])

    def heatmaps(self) -> torch.Tensor:
        """[N,3,H,W] the maps in colour."""
        from ..figures import colorize
        return torch.stack([colorize(m) for m in self.display_maps()])

    def figure(self, path: str | Path | None = None, alpha: float = 0.5) -> "Figure | Path":
        """One row per image: image (titled with the explained class and its logit or loss), map, overlay;
        saved when `path`."""
        from ..figures import finish, panel_figure
        ov = self.overlays(alpha)
        rows = [[img, m, o] for img, m, o in zip(self.images, self.display_maps(), ov)]
        titles = [[self.explained(i), self.title, "overlay"] for i in range(len(self.labels))]
        return finish(panel_figure(rows, titles, cmap="inferno", cell=2.4), path)


def attributions_figure(results: Sequence[Attribution], path: str | Path | None = None) -> "Figure | Path":
    """Several methods on the same images side by side: one row per image, the image (titled with what is
    explained) then each method's overlay under the method's title; saved when `path`."""
    from ..figures import finish, panel_figure
    overlays = [r.overlays() for r in results]
    first = results[0]
    rows = [[img] + [ov[i] for ov in overlays] for i, img in enumerate(first.images)]
    titles = [[first.explained(i)] + [r.title for r in results] for i in range(len(first.images))]
    return finish(panel_figure(rows, titles, cell=2.2), path)


# -- the registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class AttributionMethod:
    """One attribution method as `attribute()`, the `saliency` command and the explorer see it.

    fn(model, x, target, **options) explains a checked batch inside `model.frozen()`; its keyword-only
    parameters are the method's options and their defaults. `quick` holds lighter settings for an
    interactive page; `title` names the method in figures ('{layer}' becomes the explained layer).
    """

    name: str
    title: str
    fn: Callable[..., Attribution]
    aliases: tuple[str, ...] = ()
    quick: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> dict[str, Any]:
        """The options this method takes, with their defaults."""
        params = inspect.signature(self.fn).parameters.values()
        return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def pick(self, given: dict[str, Any]) -> dict[str, Any]:
        """Of `given` options (e.g. every attribution option of a command line), those this method takes
        and that are set (not None)."""
        return {k: v for k, v in given.items() if k in self.options and v is not None}


#: Every attribution method by name, in the order they are offered.
REGISTRY: dict[str, AttributionMethod] = {}


def attribution_method(name: str, title: str, aliases: Sequence[str] = (),
                       quick: dict[str, Any] | None = None) -> Callable[[Callable[..., Attribution]],
                                                                        Callable[..., Attribution]]:
    """Register the decorated function as the attribution method `name`."""
    def register(fn: Callable[..., Attribution]) -> Callable[..., Attribution]:
        REGISTRY[name] = AttributionMethod(name, title, fn, tuple(aliases), dict(quick or {}))
        return fn
    return register


def _find(name: str) -> AttributionMethod | None:
    key = name.strip().lower()
    return next((m for m in REGISTRY.values() if key == m.name or key in m.aliases), None)


def method_spec(name: str, what: str = "attribution method") -> AttributionMethod:
    """The method called `name` or one of its aliases (any case), or one error listing the methods."""
    spec = _find(name)
    if spec is None:
        raise unknown(what, name, list(REGISTRY))
    return spec


def method_specs(text: str, what: str = "attribution method") -> list[AttributionMethod]:
    """'gradient,gradcam' (names or aliases, comma-separated) or 'all' -> the methods, each once."""
    if text.strip().lower() == "all":
        return list(REGISTRY.values())
    specs: dict[str, AttributionMethod] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        spec = _find(part)
        if spec is None:
            raise unknown(what, part, [*REGISTRY, "all"])
        specs.setdefault(spec.name, spec)
    if not specs:
        raise CnnlabError(f"No {what} was given; choose from {', '.join(REGISTRY)} or 'all'.")
    return list(specs.values())


def attribute(model: Classifier | nn.Module, x: torch.Tensor, target: Target = None, method: str = "gradient",
              **options: Any) -> Attribution:
    """Explain the model's score for `target` (None: the predicted class) on images `x` in [0,1].

    method: gradient | smoothgrad | ig | guided | gradcam | deconvnet (or an alias). Options per method:
      gradient/guided/deconvnet: score='logit' (default) or 'loss' (cross-entropy of the target; the same
        map up to the softmax factor).
      smoothgrad: samples=25, sigma=0.15 (noise std in pixel units), seed=0, batch_size, score.
      ig: steps=50, baseline=None (black) | float | tensor, integration='riemann_middle' (default: ReLU nets
        have piecewise-constant path gradients, where the midpoint rule measured closer to completeness
        than Gauss-Legendre) | 'gausslegendre' (Captum's default) | 'riemann_trapezoid' | 'riemann_left'
        | 'riemann_right'; batch_size (interpolation points per forward; memory stays bounded).
      gradcam: layer=None (the last feature layer) or any layer name / early / middle / late; relu=True.
    A bare nn.Module is wrapped with `cnnlab.wrap`'s defaults first.
    """
    spec = method_spec(method)
    bad = set(options) - set(spec.options)
    if bad:
        raise CnnlabError(f"Option '{sorted(bad)[0]}' does not apply to method '{spec.name}'; "
                          f"it takes: {', '.join(sorted(spec.options)) or 'no options'}.")
    if options.get("score", "logit") not in SCORES:
        raise CnnlabError(f"score '{options['score']}' is not known; use {' or '.join(map(repr, SCORES))}.")
    model = as_classifier(model)
    x = model.check_images(x)
    with model.frozen(), torch.enable_grad():  # works inside a user's no_grad block too
        return spec.fn(model, x, target, **options)


# -- shared pieces ---------------------------------------------------------------------------------
def _score(logits: torch.Tensor, targets: torch.Tensor, score: str = "logit") -> torch.Tensor:
    """Per-image scalar whose input gradient is explained: the target logit, or its loss."""
    if score == "logit":
        return logits.gather(1, targets[:, None])[:, 0]
    if score == "loss":
        return F.cross_entropy(logits, targets, reduction="none")
    raise CnnlabError(f"score '{score}' is not known; use {' or '.join(map(repr, SCORES))}.")


def input_gradients(model: Classifier | nn.Module, x: torch.Tensor, targets: torch.Tensor,
                    score: str = "logit") -> tuple[torch.Tensor, torch.Tensor]:
    """(d score / d x [N,3,H,W], logits [N,C]) for a batch of class indices `targets`; images are
    independent in eval mode (`attribute` runs it inside `model.frozen()`).

    The input goes in channels-last: the convolutions then run their channels-last kernels forward and
    backward, measured 2-2.7x faster for EfficientNet-Lite0 on this CPU (16 images, 224 px), with the
    model itself left untouched."""
    model = as_classifier(model)
    x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(_score(logits, targets, score).sum(), x)
    return grad.contiguous(), logits.detach()


def _targets_and_logits(model: Classifier, x: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = _batched_logits(model, x)
    return model.targets(target, logits), logits


def _batched_logits(model: Classifier, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def default_batch_size(x: torch.Tensor) -> int:
    """Images per forward/backward for methods that multiply the batch (IG steps, SmoothGrad samples):
    cache-sized chunks (2 at 224 px, 48 at 32 px on CPU; see models/fastpath.py `chunk_size`), which are
    faster per image than large batches and give the same gradients."""
    return chunk_size(x)


def _result(method: str, model: Classifier, x: torch.Tensor, attr: torch.Tensor, maps: torch.Tensor,
            targets: torch.Tensor, logits: torch.Tensor, **kw: Any) -> Attribution:
    t, logits = targets.tolist(), logits.detach().float()
    return Attribution(method, x.detach().cpu(), attr.detach().cpu(), maps.detach().cpu(), t,
                       [model.label(i) for i in t], logits.gather(1, targets[:, None])[:, 0].tolist(),
                       logits.softmax(1).gather(1, targets[:, None])[:, 0].tolist(), **kw)


def _cam_result(model: Classifier, x: torch.Tensor, cam: LayerCam) -> Attribution:
    return _result("gradcam", model, x, cam.upsampled, cam.upsampled[:, 0], cam.targets, cam.logits,
                   layer=cam.layer, layer_maps=cam.maps, notes=cam.notes, extras={"layer_shape": cam.layer_shape})


# -- methods ------------------------------------------------------------------------------------------
@attribution_method("gradient", "gradient saliency", aliases=("saliency", "vanilla", "grad"))
def _gradient(model: Classifier, x: torch.Tensor, target: Target, *, score: str = "logit") -> Attribution:
    targets, logits = _targets_and_logits(model, x, target)
    grad, _ = input_gradients(model, x, targets, score)
    return _result("gradient", model, x, grad, grad.abs().amax(1), targets, logits, extras={"score": score})


@attribution_method("smoothgrad", "SmoothGrad", quick={"samples": 12})
def _smoothgrad(model: Classifier, x: torch.Tensor, target: Target, *, samples: int = 25, sigma: float = 0.15,
                seed: int = 0, batch_size: int | None = None, score: str = "logit") -> Attribution:
    if samples < 1 or not (math.isfinite(sigma) and sigma >= 0):
        raise CnnlabError(f"SmoothGrad needs samples >= 1 and a finite sigma >= 0; got samples={samples}, "
                          f"sigma={sigma}.")
    targets, logits = _targets_and_logits(model, x, target)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    total = torch.zeros_like(x)
    bs = batch_size or default_batch_size(x)
    pairs = torch.arange(len(x) * samples, device=x.device)
    for chunk in pairs.split(bs):
        img = chunk // samples
        noisy = x[img] + sigma * torch.randn(x[img].shape, generator=gen, device=x.device)
        g, _ = input_gradients(model, noisy, targets[img], score)
        total.index_add_(0, img, g)
    mean = total / samples
    return _result("smoothgrad", model, x, mean, mean.abs().amax(1), targets, logits,
                   extras={"samples": samples, "sigma": sigma, "score": score})


INTEGRATION_RULES = ("gausslegendre", "riemann_trapezoid", "riemann_middle", "riemann_left", "riemann_right")


def ig_alphas(steps: int, integration: str = "gausslegendre") -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolation points in [0,1] and quadrature weights summing to 1 for `steps` points."""
    if steps < 1:
        raise CnnlabError(f"Integrated Gradients needs steps >= 1; got {steps}.")
    if integration == "gausslegendre":
        import numpy as np
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return torch.tensor(0.5 * (nodes + 1)), torch.tensor(0.5 * weights)
    if integration == "riemann_trapezoid":
        if steps < 2:
            raise CnnlabError("The trapezoid rule needs steps >= 2.")
        a = torch.linspace(0, 1, steps, dtype=torch.float64)
        w = torch.full((steps,), 1.0 / (steps - 1), dtype=torch.float64)
        w[0] = w[-1] = 0.5 / (steps - 1)
        return a, w
    if integration in ("riemann_middle", "riemann_left", "riemann_right"):
        off = {"riemann_middle": 0.5, "riemann_left": 0.0, "riemann_right": 1.0}[integration]
        a = (torch.arange(steps, dtype=torch.float64) + off) / steps
        return a, torch.full((steps,), 1.0 / steps, dtype=torch.float64)
    raise unknown("integration rule", integration, INTEGRATION_RULES)


def _baseline(x: torch.Tensor, baseline: float | torch.Tensor | None) -> torch.Tensor:
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, (int, float)):
        return torch.full_like(x, float(baseline))
    b = baseline.detach().float().to(x.device)
    try:
        return b.expand_as(x) if b.dim() < 4 or b.shape[0] == 1 else b.reshape(x.shape)
    except RuntimeError:
        raise CnnlabError(f"The IG baseline has shape {tuple(b.shape)}, which does not match the images "
                          f"{tuple(x.shape)}.") from None


@attribution_method("ig", "integrated gradients", aliases=("integrated_gradients", "integrated-gradients"),
                    quick={"steps": 24})
def _ig(model: Classifier, x: torch.Tensor, target: Target, *, steps: int = 50,
        baseline: float | torch.Tensor | None = None, integration: str = "riemann_middle",
        batch_size: int | None = None) -> Attribution:
    alphas, weights = ig_alphas(steps, integration)
    alphas, weights = alphas.to(x.dtype).to(x.device), weights.to(x.dtype).to(x.device)
    targets, logits = _targets_and_logits(model, x, target)
    base = _baseline(x, baseline)
    diff = x - base
    total = torch.zeros_like(x)
    bs = batch_size or default_batch_size(x)
    # (image, step) pairs in chunks of `bs`: memory is that of one `bs` batch, whatever steps x images
    for chunk in torch.arange(len(x) * steps, device=x.device).split(bs):
        img, k = chunk // steps, chunk % steps
        points = base[img] + alphas[k].view(-1, 1, 1, 1) * diff[img]
        g, _ = input_gradients(model, points, targets[img])
        total.index_add_(0, img, g * weights[k].view(-1, 1, 1, 1))
    attr = total * diff
    with torch.no_grad():
        f_base = _batched_logits(model, base).gather(1, targets[:, None])[:, 0]
    f_x = logits.gather(1, targets[:, None])[:, 0]
    delta = attr.flatten(1).sum(1) - (f_x - f_base)
    rel = (delta.abs() / (f_x - f_base).abs().clamp_min(1e-12))
    notes = [f"completeness error {float(rel.max()):.1%} (attributions vs f(x) - f(baseline)); "
             "use more steps for a closer sum"] if float(rel.max()) > 0.05 else []
    return _result("ig", model, x, attr, attr.abs().sum(1), targets, logits, notes=notes,
                   extras={"steps": steps, "integration": integration, "completeness_delta": delta.tolist(),
                           "completeness_relative_error": rel.tolist()})


class _PositiveGrad(torch.autograd.Function):
    """Identity forward; backward passes only positive gradients (the 'guided' part of guided backprop)."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        return t.view_as(t)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        return g.clamp_min(0)


class _DeconvReLU(torch.autograd.Function):
    """Returns the activation's output; backward rectifies the gradient and ignores the forward mask."""

    @staticmethod
    def forward(ctx: Any, inp: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return out.detach().clone()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        return g.clamp_min(0), None


def _relu_rule(model: Classifier, x: torch.Tensor, target: Target, score: str, method: str, what: str,
               hook: Callable[[nn.Module, tuple, torch.Tensor], torch.Tensor]) -> Attribution:
    """Input gradients with every ReLU-like module's backward replaced by `hook` (a forward hook, so
    modules reused within one forward are rewritten at every call): guided backprop and deconvnet."""
    relus = [m for m in model.net.modules() if isinstance(m, RELU_LIKE)]
    if not relus:
        raise CnnlabError(f"{what} needs ReLU-like activation modules; model '{model.name}' has none "
                          "(use --method gradient or smoothgrad).")
    targets, logits = _targets_and_logits(model, x, target)
    hooks = [m.register_forward_hook(hook) for m in relus]
    try:
        grad, _ = input_gradients(model, x, targets, score)
    finally:
        for h in hooks:
            h.remove()
    return _result(method, model, x, grad, grad.abs().amax(1), targets, logits,
                   extras={"score": score, "relu_modules": len(relus)})


@attribution_method("guided", "guided backprop", aliases=("guided_backprop", "guided-backprop"))
def _guided(model: Classifier, x: torch.Tensor, target: Target, *, score: str = "logit") -> Attribution:
    return _relu_rule(model, x, target, score, "guided", "Guided backprop",
                      lambda mod, inp, out: _PositiveGrad.apply(out))


@attribution_method("gradcam", "Grad-CAM ({layer})", aliases=("grad-cam", "grad_cam"))
def _gradcam(model: Classifier, x: torch.Tensor, target: Target, *, layer: str | None = None,
             relu: bool = True) -> Attribution:
    return _cam_result(model, x, class_activation_map(model, x, target, layer, relu=relu))


@attribution_method("deconvnet", "deconvnet", aliases=("deconv",))
def _deconvnet(model: Classifier, x: torch.Tensor, target: Target, *, score: str = "logit") -> Attribution:
    return _relu_rule(model, x, target, score, "deconvnet", "The deconvnet",
                      lambda mod, inp, out: _DeconvReLU.apply(inp[0], out))


#: The method names, in the order they are offered.
METHODS = tuple(REGISTRY)


def saliency_and_gradcam(model: Classifier | nn.Module, x: torch.Tensor, target: Target = None,
                         layer: str | None = None, capture_layers: Sequence[str] = ()
                         ) -> tuple[Attribution, Attribution, dict[str, torch.Tensor]]:
    """Gradient saliency and Grad-CAM from ONE forward and ONE backward pass (the tour's fast path),
    plus the outputs of `capture_layers` from that same forward. Equal to the two separate methods."""
    model = as_classifier(model)
    x = model.check_images(x)
    extra = [model.resolve_layer_name(n) for n in capture_layers]
    with model.frozen(), torch.enable_grad():
        cam = class_activation_map(model, x, target, layer, input_gradient=True, capture_layers=extra)
    gx = cam.input_gradient
    sal = _result("gradient", model, x, gx, gx.abs().amax(1), cam.targets, cam.logits, extras={"score": "logit"})
    return sal, _cam_result(model, x, cam), cam.captured


def mass_fraction(maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of each non-negative map's total inside a boolean mask [H,W] (or [N,H,W])."""
    maps = maps.clamp_min(0)
    return (maps * mask).flatten(1).sum(1) / maps.flatten(1).sum(1).clamp_min(1e-12)


__all__ = ["METHODS", "REGISTRY", "SCORES", "Attribution", "AttributionMethod", "attribute",
           "attribution_method", "default_batch_size", "ig_alphas", "input_gradients", "mass_fraction",
           "method_spec", "method_specs", "saliency_and_gradcam"]
