"""Models by name: `create_model(name, pretrained=..., num_classes=..., weights=PATH)`.

Each model family registers builder functions in its own module (like timm's @register_model).
A builder returns a `Classifier`; from then on every cnnlab verb works with it.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CnnlabError, WeightsError, unknown
from .classifier import NORMALIZATIONS, Classifier
from .weights import extract_state_dict, known_weights_for_file, load_state_into, read_checkpoint

#: Modules that register models when imported (imported lazily, on the first lookup).
_MODEL_MODULES = ("efficientnet_lite", "cifar_resnet", "course", "zoo")


@dataclass
class ModelEntry:
    """A registered architecture and where its pretrained weights come from."""

    name: str
    builder: Callable[..., Classifier]
    family: str
    description: str
    pretrained: str = "none"  # "bundled" (offline), "download", or "none"
    default_classes: int = 10
    tags: tuple[str, ...] = field(default_factory=tuple)

    def weights_available_offline(self) -> bool:
        if self.pretrained == "bundled":
            return True
        if self.pretrained == "download":
            probe = getattr(self.builder, "cached_weights", None)
            return bool(probe and probe())
        return False


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register_model(name: str, *, family: str, description: str, pretrained: str = "none",
                   default_classes: int = 10, cached_weights: Callable[[], bool] | None = None):
    """Decorator: register `builder(pretrained: bool, num_classes: int, **kwargs) -> Classifier`."""
    def deco(fn: Callable[..., Classifier]) -> Callable[..., Classifier]:
        if cached_weights is not None:
            fn.cached_weights = cached_weights  # type: ignore[attr-defined]
        _REGISTRY[name] = ModelEntry(name, fn, family, description, pretrained, default_classes)
        return fn
    return deco


def _ensure_loaded(name: str | None = None) -> None:
    """Import the family modules; with `name`, stop as soon as it is registered (a fast cold start:
    `cnnlab predict` with EfficientNet-Lite0 never imports the other families)."""
    global _loaded
    if _loaded or (name is not None and name in _REGISTRY):
        return
    for mod in _MODEL_MODULES:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as e:  # a family module not written yet is simply absent
            if e.name != f"{__package__}.{mod}":
                raise
        if name is not None and name in _REGISTRY:
            return
    _loaded = True


def list_models() -> list[ModelEntry]:
    """Every registered model, by family then name."""
    _ensure_loaded()
    return sorted(_REGISTRY.values(), key=lambda e: (e.family, e.name))


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded(name)
    if name.startswith("timm/"):
        from .zoo import timm_model
        return ModelEntry(name, lambda pretrained=False, num_classes=None: timm_model(name[5:], pretrained, num_classes),
                          "imagenet", "a timm model", "download", 1000)
    if name not in _REGISTRY:
        raise unknown("model", name, _REGISTRY)
    return _REGISTRY[name]


def resolve_normalization(normalize: str | tuple[Sequence[float], Sequence[float]] | None
                          ) -> tuple[Sequence[float], Sequence[float]] | None:
    if normalize is None or isinstance(normalize, tuple):
        return normalize
    if normalize not in NORMALIZATIONS:
        raise unknown("normalization", normalize, NORMALIZATIONS)
    return NORMALIZATIONS[normalize]


def create_model(name: str | None = None, pretrained: bool = False, num_classes: int | None = None,
                 weights: str | Path | None = None, labels: Sequence[str] | None = None,
                 normalize: str | tuple | None = None, **kwargs) -> Classifier:
    """Build a registered model as a `Classifier`.

    Args:
        name: registry name (`cnnlab models` lists them); may be omitted when `weights` is a cnnlab
            checkpoint, which records its architecture.
        pretrained: load the published weights (bundled, or downloaded into torch.hub's cache).
        num_classes: size of the classification head (a new head when it differs from the weights').
        weights: a local state dict / checkpoint / .safetensors file (loaded without unpickling code).
        labels: class names; default: the dataset's names for 10/100/1000 classes.
        normalize: 'imagenet', 'cifar10', ... or (mean, std) to override the input normalization.
    """
    meta, state = None, None
    if weights is not None:
        ckpt = read_checkpoint(weights)
        meta = ckpt.get("cnnlab") if isinstance(ckpt.get("cnnlab"), dict) else None
        state = extract_state_dict(ckpt, weights)
        if meta:
            spec = meta["spec"]
            if name is not None and name != spec["name"]:
                raise WeightsError(f"Checkpoint '{weights}' is a '{spec['name']}' model, not '{name}'; "
                                   "omit --model or pass the matching name.")
            name = spec["name"]
            kwargs = {**spec.get("kwargs", {}), **kwargs}
            kwargs.pop("num_classes", None)  # the spec records it; it is passed on its own below
            num_classes = num_classes or len(meta["labels"])
            labels = labels or meta["labels"]
    if name is None:
        raise CnnlabError("Name a model (--model NAME; `cnnlab models` lists them) or pass a cnnlab checkpoint.")
    entry = get_entry(name)
    if labels is not None and num_classes is None:
        num_classes = len(labels)
    if labels is not None and num_classes != len(labels):
        raise CnnlabError(f"{len(labels)} labels were given for a model with num_classes={num_classes}.")
    model = entry.builder(pretrained=pretrained and weights is None, num_classes=num_classes, **kwargs)
    if labels is not None:
        model.labels = list(labels)
    model.spec = {"name": name, "kwargs": {"num_classes": model.num_classes, **kwargs}}
    if state is not None:
        load_state_into(model.net, state, str(weights), name)
        model.weights_name = str(weights)
        known = known_weights_for_file(weights)
        if meta:
            model.set_normalization(meta["mean"], meta["std"])
        elif known:
            model.set_normalization(known.mean, known.std)
    norm = resolve_normalization(normalize)
    if norm is not None:
        model.set_normalization(*norm)
    return model.eval()


def load_model(path: str | Path, **kwargs) -> Classifier:
    """A cnnlab checkpoint (or `name=` + any weights file) -> Classifier, in eval mode."""
    return create_model(weights=path, **kwargs)
