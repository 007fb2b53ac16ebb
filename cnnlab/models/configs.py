"""What a model family declares beside its builders (timm's `default_cfgs` idea).

`ModelCfg`: how a network sees images and what it predicts: input size, resize/crop policy,
interpolation, mean/std, the name of its final linear layer and, for published weights, where the
file comes from and whose classes it predicts. A family registers one for the untrained network and
one per published weights file. `DataInit`: a family's data-dependent initialization, which
`cnnlab.train` runs on seeded training images before the first step.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..images import Preprocessing
from .classifier import Classifier
from .labels import class_names, dataset_classes
from .normalization import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class ModelCfg:
    """Input and output configuration of a network, and of its published weights when `url` or
    `bundled` is set.

    Args:
        num_classes: outputs of the head.
        input_size: (height, width) the network takes.
        resize: short side an image is resized to before the centre crop to `input_size`
            (None: the whole image is resized to `input_size`).
        interpolation: 'bilinear', 'bicubic' or 'nearest' for that resize.
        mean, std: per-channel normalization of [0,1] pixels the network (or its weights) expects.
        classifier: module name of the final layer; its input is the penultimate embedding.
        url: where the published weights file is downloaded from (into torch.hub's cache).
        bundled: the Python package that ships the weights file (offline).
        dataset: whose classes the weights predict ('imagenet', 'cifar10', 'cifar100').
        source: who trained the weights, and their licence.
    """

    num_classes: int = 1000
    input_size: tuple[int, int] = (224, 224)
    resize: int | None = 256
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    classifier: str = "fc"
    url: str | None = None
    bundled: str | None = None
    dataset: str | None = None
    source: str = ""

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(tuple(self.input_size), self.resize, self.interpolation)

    @property
    def filename(self) -> str | None:
        """The published file's name (e.g. 'resnet20-12fca82f.th'), by which a local copy is recognized."""
        return self.url.rsplit("/", 1)[-1] if self.url else None

    @property
    def pretrained(self) -> str:
        """Where published weights come from: 'bundled' (offline), 'download' or 'none'."""
        return "bundled" if self.bundled else "download" if self.url else "none"

    @property
    def weights_name(self) -> str | None:
        """How a model built with these weights names them (Classifier.weights_name)."""
        if self.bundled:
            return f"{self.dataset} ({self.bundled})"
        return self.filename

    def class_names(self, num_classes: int | None = None) -> list[str]:
        """The weights' class names for their own head; `class i` for any other (a new head)."""
        n = self.num_classes if num_classes is None else num_classes
        return dataset_classes(self.dataset) if self.dataset and n == self.num_classes else class_names(n)

    def matches_file(self, path: str | Path) -> bool:
        """Whether `path` is a copy of this published file, recognized by its name."""
        return bool(self.filename) and Path(path).name.endswith(self.filename)

    def replace(self, **changes) -> "ModelCfg":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {"num_classes": self.num_classes, **self.preprocessing.to_dict(), "mean": list(self.mean),
                "std": list(self.std), "classifier": self.classifier, "url": self.url, "bundled": self.bundled,
                "dataset": self.dataset, "source": self.source}


@dataclass(frozen=True)
class DataInit:
    """A data-dependent initialization: `fn(model, images)` with `images` seeded training images
    (float [n,3,H,W] in [0,1], n up to `images`), run once before training starts."""

    fn: Callable[[Classifier, torch.Tensor], None]
    images: int
    description: str


def build_classifier(net: nn.Module, cfg: ModelCfg, *, name: str, kwargs: dict, feature_layers: list[str],
                     pretrained: bool = False) -> Classifier:
    """`net` as a Classifier configured by `cfg`: class names of the weights when `pretrained` and the
    head kept its size, else `class i`; the head is `cfg.classifier` when it is a linear layer."""
    head = net.get_submodule(cfg.classifier)
    num_classes = head.out_features if isinstance(head, nn.Linear) else head.out_channels
    labels = cfg.class_names(num_classes) if pretrained else class_names(num_classes)
    return Classifier(net, labels, preprocessing=cfg.preprocessing, mean=cfg.mean, std=cfg.std,
                      feature_layers=feature_layers, head=cfg.classifier if isinstance(head, nn.Linear) else None,
                      spec={"name": name, "kwargs": kwargs}, weights_name=cfg.weights_name if pretrained else None)
