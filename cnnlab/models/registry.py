"""Models by name: `create_model(name, pretrained=..., num_classes=..., weights=PATH, **arguments)`.

Each model family registers builder functions in its own module (like timm's @register_model), with
the configuration of the untrained network and of its published weights (configs.py), the training
recipe it trains best with and its data-dependent initialization. A builder returns a `Classifier`;
from then on every cnnlab verb works with it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..devices import resolve_device
from ..errors import CnnlabError, WeightsError, unknown
from .arguments import ModelArgument, builder_arguments, check_arguments
from .classifier import Classifier
from .configs import DataInit, ModelCfg
from .normalization import Normalization, resolve_normalization
from .weights import (checkpoint_meta, extract_state_dict, hub_cache_dir, load_state_into, mismatch, not_fitting,
                      read_checkpoint)



@dataclass
class ModelEntry:
    """A registered architecture: its builder, its configuration, its published weights and its recipe.

    Attributes:
        cfg: input/output configuration of the untrained network (input size, mean/std, head name).
        weights: configuration of its published weights (None: none are published).
        recipe: TrainConfig options `cnnlab.train` uses where the caller leaves them unset.
        init: data-dependent initialization `cnnlab.train` runs before the first step.
    """

    name: str
    builder: Callable[..., Classifier]
    family: str
    description: str
    cfg: ModelCfg = field(default_factory=ModelCfg)
    weights: ModelCfg | None = None
    recipe: dict = field(default_factory=dict)
    init: DataInit | None = None

    @property
    def pretrained(self) -> str:
        """'bundled' (offline), 'download', or 'none'."""
        return self.weights.pretrained if self.weights is not None else "none"

    @property
    def default_classes(self) -> int:
        return self.cfg.num_classes

    def arguments(self) -> list[ModelArgument]:
        """The builder's own arguments (besides pretrained and num_classes), with defaults and meanings."""
        return builder_arguments(self.builder)

    def weights_available_offline(self) -> bool:
        if self.pretrained == "bundled":
            return True
        if self.pretrained == "download":
            return (hub_cache_dir() / self.weights.filename).exists()
        return False

    def to_dict(self) -> dict:
        """JSON-able: name, family, description, weights and their availability, arguments, recipe."""
        return {"name": self.name, "family": self.family, "description": self.description,
                "pretrained": self.pretrained, "offline": self.weights_available_offline(),
                "classes": self.default_classes, "cfg": self.cfg.to_dict(),
                "weights": self.weights.to_dict() if self.weights is not None else None,
                "arguments": [a.to_dict() for a in self.arguments()], "recipe": dict(self.recipe),
                "init": self.init.description if self.init is not None else None}


_REGISTRY: dict[str, ModelEntry] = {}
#: Name prefixes answered by a family on demand, e.g. 'timm/' -> an entry for any timm model.
_PREFIXES: dict[str, Callable[[str], ModelEntry]] = {}


def register_model(name: str, *, family: str, description: str, cfg: ModelCfg, weights: ModelCfg | None = None,
                   recipe: dict | None = None, init: DataInit | None = None
                   ) -> Callable[[Callable[..., Classifier]], Callable[..., Classifier]]:
    """Decorator: register `builder(pretrained: bool, num_classes: int | None, **arguments) -> Classifier`.

    The builder documents its own arguments in its docstring's `Args:` section (see arguments.py)."""
    def deco(fn: Callable[..., Classifier]) -> Callable[..., Classifier]:
        _REGISTRY[name] = ModelEntry(name, fn, family, description, cfg, weights, dict(recipe or {}), init)
        return fn
    return deco


def register_prefix(prefix: str, entry_for: Callable[[str], ModelEntry]) -> None:
    """Let a family answer every name `prefix + NAME` (e.g. 'timm/resnet50') with `entry_for(NAME)`."""
    _PREFIXES[prefix] = entry_for


def list_models() -> list[ModelEntry]:
    """Every registered model, by family then name."""
    return sorted(_REGISTRY.values(), key=lambda e: (e.family, e.name))


def get_entry(name: str) -> ModelEntry:
    """The registered model `name` (or `timm/NAME` for any timm model), or an error suggesting names."""
    for prefix, entry_for in _PREFIXES.items():
        if name.startswith(prefix):
            return entry_for(name[len(prefix):])
    if name not in _REGISTRY:
        raise unknown("model", name, _REGISTRY)
    return _REGISTRY[name]


def model_arguments(name: str) -> list[ModelArgument]:
    """The arguments model `name` takes (activation, bn, shortcut, dropout, width, strides, ...), each
    with its default and meaning; `create_model(name, **arguments)` accepts exactly these."""
    return get_entry(name).arguments()


def _registered(name: str) -> ModelEntry | None:
    return _REGISTRY.get(name)


def recipe(name: str) -> dict:
    """The training options model `name` trains best with ({} for unregistered or wrapped models)."""
    entry = _registered(name)
    return dict(entry.recipe) if entry is not None else {}


def data_init(name: str) -> DataInit | None:
    """The data-dependent initialization of model `name`, if its family has one."""
    entry = _registered(name)
    return entry.init if entry is not None else None


def create_model(name: str | None = None, pretrained: bool = False, num_classes: int | None = None,
                 weights: str | Path | None = None, labels: Sequence[str] | None = None,
                 normalize: str | Normalization | None = None, device: str | torch.device | None = "auto",
                 **kwargs) -> Classifier:
    """Build a registered model as a `Classifier`, on `device`.

    Args:
        name: registry name (`cnnlab models` lists them); may be omitted when `weights` is a cnnlab
            checkpoint, which records its architecture.
        pretrained: load the published weights (bundled, or downloaded into torch.hub's cache).
        num_classes: size of the classification head (a new head when it differs from the weights').
        weights: a local state dict / checkpoint / .safetensors file (loaded without unpickling code).
            A cnnlab checkpoint brings its class names and normalization, and so does a copy of a
            published file recognized by its name (e.g. resnet20-12fca82f.th).
        labels: class names (default: those of the weights, else 'class 0', 'class 1', ...).
        normalize: 'imagenet', 'cifar10', ... or (mean, std) to override the input normalization.
        device: 'auto' (CUDA, else MPS, else the CPU; $CNNLAB_DEVICE overrides), 'cpu', 'cuda', 'cuda:N' or
            'mps' (see cnnlab.devices.resolve_device); weights load on the CPU first, from any device.
        **kwargs: the model's own arguments (`model_arguments(name)` lists them).
    """
    device = resolve_device(device)  # a device this machine lacks: one sentence, before any work
    meta, state = None, None
    if weights is not None:
        ckpt = read_checkpoint(weights)
        meta = checkpoint_meta(ckpt, weights)
        state = extract_state_dict(ckpt, weights)
        if meta:
            spec = meta["spec"]
            if name is not None and name != spec["name"]:
                raise WeightsError(f"Checkpoint '{weights}' is a '{spec['name']}' model, not '{name}'; "
                                   "omit --model or pass the matching name.")
            name = spec["name"]
            kwargs = {**spec.get("kwargs", {}), **kwargs}
            num_classes = num_classes or kwargs.get("num_classes")
            kwargs.pop("num_classes", None)  # the spec records it; it is passed on its own below
            num_classes = num_classes or len(meta["labels"])
            labels = labels or meta["labels"]
    if name is None:
        raise CnnlabError("Name a model (--model NAME; `cnnlab models` lists them) or pass a cnnlab checkpoint.")
    entry = get_entry(name)
    kwargs = check_arguments(name, entry.arguments(), kwargs)
    if pretrained and weights is None and entry.pretrained == "none" and entry.family != "timm":
        raise CnnlabError(f"Model '{name}' has no published weights; train it (`cnnlab train --model {name}`) "
                          "or pass --weights CHECKPOINT.")
    if labels is not None and num_classes is None:
        num_classes = len(labels)
    if labels is not None and num_classes != len(labels):
        raise CnnlabError(f"{len(labels)} labels were given for a model with num_classes={num_classes}.")
    if state is not None:  # before any memory is spent on the network: do the weights fit it at all?
        _check_fit_before_building(entry, state, str(weights), num_classes, kwargs)
    model = entry.builder(pretrained=pretrained and weights is None, num_classes=num_classes, **kwargs)
    model.spec = {"name": name, "kwargs": {"num_classes": model.num_classes, **kwargs}}
    if state is not None:
        load_state_into(model.net, state, str(weights), name)
        model.weights_name = str(weights)
        published = entry.weights if entry.weights is not None and entry.weights.matches_file(weights) else None
        if meta:
            if meta.get("mean") is not None and meta.get("std") is not None:
                channels = model.mean.shape[1]
                if {len(meta["mean"]), len(meta["std"])} - {1, channels}:
                    raise WeightsError(f"Checkpoint '{weights}' normalizes {len(meta['mean'])} channels, but the "
                                       f"model takes {channels}; re-save it with cnnlab.")
                model.set_normalization(meta["mean"], meta["std"])
        elif published is not None:
            model.set_normalization(published.mean, published.std)
            model.preprocessing = published.preprocessing
            model.labels = published.class_names(model.num_classes)
    if labels is not None:
        model.labels = list(labels)
    norm = resolve_normalization(normalize)
    if norm is not None:
        model.set_normalization(*norm)
    return model.to(device).eval()


def _check_fit_before_building(entry: ModelEntry, state: dict, source: str, num_classes: int | None,
                               kwargs: dict) -> None:
    """Compare the weights' shapes with the architecture built on PyTorch's meta device (shapes only, no
    memory), so a small file that names a huge network (say an MLP 16000 units wide) is refused before
    that network is allocated. A builder that cannot run on the meta device is checked after building."""
    import torch
    try:
        with torch.device("meta"):
            skeleton = entry.builder(pretrained=False, num_classes=num_classes, **kwargs)
        shapes = {k: v.shape for k, v in skeleton.net.state_dict().items()}
    except CnnlabError:
        raise
    except Exception:  # noqa: BLE001 - this builder needs real tensors; load_state_into checks after building
        return
    why = mismatch(shapes, state)
    if why:
        raise not_fitting(source, entry.name, why)


def load_model(path: str | Path, **kwargs) -> Classifier:
    """A cnnlab checkpoint (or `name=` + any weights file) -> Classifier, in eval mode."""
    return create_model(weights=path, **kwargs)
