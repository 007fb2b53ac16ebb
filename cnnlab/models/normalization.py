"""Per-channel mean/std of the datasets networks are trained on, defined once, and named ones by name.

A Classifier applies its mean/std inside `forward` to [0,1] pixels; published weights state which
statistics they were trained with in their family's configuration (see configs.py).
"""
from __future__ import annotations

from collections.abc import Sequence

from ..errors import unknown

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

#: Named normalizations users can ask for by name (`--normalize imagenet`).
NORMALIZATIONS = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "tf-127-128": ((127 / 255,) * 3, (128 / 255,) * 3),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}

Normalization = tuple[Sequence[float], Sequence[float]]


def resolve_normalization(normalize: str | Normalization | None) -> Normalization | None:
    """'imagenet', 'cifar10', ... or an explicit (mean, std) -> (mean, std); None stays None."""
    if normalize is None or isinstance(normalize, tuple):
        return normalize
    if normalize not in NORMALIZATIONS:
        raise unknown("normalization", normalize, NORMALIZATIONS)
    return NORMALIZATIONS[normalize]
