"""Any image classifier as a `Classifier`: `cnnlab.wrap(module, labels=..., input_size=..., mean=..., std=...)`.

A torchvision, timm or home-made `nn.Module` that maps normalized RGB images to logits becomes a
Classifier in this one place, and from then on every verb works with it. Verbs handed a bare module
call `as_classifier`, which wraps it the same way (once per module), so results on a bare module
equal those on the explicitly wrapped one.

Defaults, each overridable: a timm model's own `pretrained_cfg` (input size, crop, mean/std); for a
1000-way output ImageNet's class names, 224 px input (short side 256, centre crop) and ImageNet's
mean/std; otherwise `class 0`, `class 1`, ..., no normalization (the module sees [0,1] pixels), and
the first of 32, 224, 28, 64, 96, 128, 299 px at which the module runs.
"""
from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import CnnlabError
from ..images import Preprocessing
from .classifier import Classifier
from .labels import class_names
from .normalization import IMAGENET_MEAN, IMAGENET_STD, NORMALIZATIONS, resolve_normalization

#: Input sizes tried, in order, for a module whose input size nobody stated.
_PROBE_SIZES = (32, 224, 28, 64, 96, 128, 299)
_WRAPPED: "weakref.WeakKeyDictionary[nn.Module, Classifier]" = weakref.WeakKeyDictionary()


def guess_layers(net: nn.Module) -> tuple[list[str], str | None]:
    """Feature layers (early to late) and the name of the final Linear of a torchvision/timm-style net.

    The feature layers are the top-level children holding a convolution (not the head): VGG-style
    `features` blocks after each activation, a ResNet's stem activation and stages. In a timm net, a
    container of stages (EfficientNet's `blocks`, ConvNeXt's `stages`; not the stem) is replaced by its
    stages, and the classifier its `pretrained_cfg` names (a 1x1 convolution in some) is never a
    feature layer.
    """
    names = dict(net.named_modules())
    head = [n for n, m in names.items() if isinstance(m, nn.Linear)]
    head_name = head[-1] if head else None
    if isinstance(names.get("features"), nn.Sequential):
        feats = [f"features.{n}" for n, _ in names["features"].named_children()]
        if len(feats) > 12:  # VGG/AlexNet: keep the activations after each conv
            feats = [f"features.{n}" for n, m in names["features"].named_children()
                     if isinstance(m, (nn.ReLU, nn.ReLU6)) or not isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d))]
        return feats, head_name
    timm = type(net).__module__.startswith("timm.")
    heads = {h for h in (head_name, _timm_cfg(net).get("classifier") if timm else None) if isinstance(h, str)}
    feats = []
    for n, m in net.named_children():
        if any(h == n or h.startswith(f"{n}.") for h in heads) or not _has_conv(m):
            continue
        feats.append(n)
    if "relu" in names and "layer1" in names:  # ResNet: the stem's activation, then the stages
        return ["relu"] + [f for f in feats if f.startswith("layer")], head_name
    if "act1" in names and "layer1" in names:  # timm ResNet
        return ["act1"] + [f for f in feats if f.startswith("layer")], head_name
    if timm:
        feats = [s for f in feats for s in ([f] if f.endswith("stem") else _stages(names[f], f))]
    return feats, head_name


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def _stages(module: nn.Module, name: str) -> list[str]:
    """A container of two or more stages holding convolutions -> the stages' names; else [name]."""
    if not isinstance(module, (nn.Sequential, nn.ModuleList)):
        return [name]
    stages = [f"{name}.{n}" for n, m in module.named_children() if _has_conv(m)]
    return stages if len(stages) >= 2 else [name]


def _in_channels(net: nn.Module) -> int:
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return 3


def _num_outputs(net: nn.Module, size: tuple[int, int]) -> int | None:
    """The module's output width at `size`, or None when it does not run there."""
    from .classifier import _logits
    device = next((t.device for t in (*net.parameters(), *net.buffers())), torch.device("cpu"))
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = _logits(net(torch.zeros(1, 3, *size, device=device)))
    except Exception:  # noqa: BLE001 - any failure means: not this size
        return None
    finally:
        net.train(was)
    return int(out.shape[-1]) if out.dim() == 2 else None


def _timm_cfg(net: nn.Module) -> dict:
    cfg = getattr(net, "pretrained_cfg", None) or getattr(net, "default_cfg", None)
    return dict(cfg) if isinstance(cfg, dict) else {}


def _size_pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    size = tuple(int(s) for s in size)
    return size[-2:] if len(size) >= 2 else (size[0], size[0])


def wrap(module: nn.Module, *, labels: Sequence[str] | None = None, input_size: int | Sequence[int] | None = None,
         mean: Sequence[float] | None = None, std: Sequence[float] | None = None, normalize: str | None = None,
         resize: int | None | str = "auto", interpolation: str | None = None,
         feature_layers: Sequence[str] | None = None, head: str | None = None,
         name: str | None = None) -> Classifier:
    """`module` (logits from normalized RGB images) as a Classifier; a Classifier is returned as it is,
    with any of the given overrides applied.

    Args:
        labels: class names in index order (default: ImageNet's for 1000 outputs, else 'class i').
        input_size: the (height, width) or side the module takes (default: timm's cfg, 224 for 1000
            outputs, else the first size it runs at).
        mean, std / normalize: per-channel normalization applied to [0,1] images before the module, or a
            named one ('imagenet', 'cifar10', 'inception', 'tf-127-128', 'none').
        resize: short side before the centre crop (None: resize the whole image to the input size;
            'auto': 256/224 of the input size for inputs of 64 px and more, else None).
        feature_layers, head: module names of the feature layers (early to late) and of the final Linear
            (default: guessed from the module's structure).
    """
    if normalize is not None:
        mean, std = resolve_normalization(normalize)
    if isinstance(module, Classifier):
        if labels is not None:
            if len(labels) != module.num_classes:
                raise CnnlabError(f"{len(labels)} labels were given for model '{module.name}' with "
                                  f"{module.num_classes} classes.")
            module.labels = list(labels)
        if mean is not None or std is not None:
            module.set_normalization(mean if mean is not None else module.normalization["mean"],
                                     std if std is not None else module.normalization["std"])
        return module
    if not isinstance(module, nn.Module):
        raise CnnlabError(f"cnnlab.wrap takes a torch nn.Module; got {type(module).__name__}.")
    if _in_channels(module) != 3:
        raise CnnlabError(f"Model {type(module).__name__} takes {_in_channels(module)}-channel images; cnnlab works "
                          "with RGB classifiers (3 input channels).")
    cfg = _timm_cfg(module)
    feats, head_guess = guess_layers(module)
    if head is None:
        head = cfg["classifier"] if isinstance(cfg.get("classifier"), str) and cfg["classifier"] in dict(
            module.named_modules()) else head_guess
    num_classes = None
    if head is not None and isinstance(module.get_submodule(head), nn.Linear):
        num_classes = module.get_submodule(head).out_features
    if input_size is not None:
        size = _size_pair(input_size)
    elif cfg.get("input_size"):
        size = _size_pair(cfg["input_size"])
    elif num_classes == 1000:
        size = (224, 224)
    else:
        size = next((s for s in ((p, p) for p in _PROBE_SIZES) if _num_outputs(module, s)), None)
        if size is None:
            raise CnnlabError(f"Model {type(module).__name__} did not run on 3-channel images of any size in "
                              f"{_PROBE_SIZES}; pass input_size=(H, W).")
    if num_classes is None:
        num_classes = _num_outputs(module, size)
        if num_classes is None:
            raise CnnlabError(f"Model {type(module).__name__} does not return class scores [N, C] for "
                              f"{size[0]}x{size[1]} images; wrap a classifier, or pass input_size=(H, W).")
    if labels is not None and len(labels) != num_classes:
        raise CnnlabError(f"{len(labels)} labels were given for a model with {num_classes} outputs.")
    if mean is None and std is None:
        if cfg.get("mean"):
            mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
        elif num_classes == 1000:
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        else:
            mean, std = NORMALIZATIONS["none"]
    elif mean is None or std is None:
        raise CnnlabError("Give both mean and std (or normalize='imagenet', ...).")
    if resize == "auto":
        crop = float(cfg.get("crop_pct", 0.875))
        resize = int(round(size[0] / crop)) if min(size) >= 64 else None
    pre = Preprocessing(size, resize, interpolation or cfg.get("interpolation") or "bilinear")
    model_name = name or (cfg.get("architecture") and f"timm/{cfg['architecture']}") or type(module).__name__
    model = Classifier(module, list(labels) if labels is not None else class_names(num_classes), preprocessing=pre,
                       mean=mean, std=std, feature_layers=feature_layers if feature_layers is not None else feats,
                       head=head, spec={"name": model_name, "kwargs": {}, "wrapped": True})
    return model.train(module.training)  # the user's module keeps the mode it was in


def as_classifier(model: nn.Module) -> Classifier:
    """What every verb calls on its model argument: a Classifier as it is, a bare module wrapped with
    `wrap`'s defaults (once per module: later calls return the same Classifier)."""
    if isinstance(model, Classifier):
        return model
    cached = _WRAPPED.get(model)
    if cached is None:
        cached = wrap(model)
        _WRAPPED[model] = cached
    return cached
