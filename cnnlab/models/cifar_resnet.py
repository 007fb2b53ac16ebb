"""CIFAR ResNet-v1 with 6n+2 layers (He et al. 2016, section 4.2): ResNet-20/32/44/56/110.

Three stages of n BasicBlocks at 16/32/64 channels; the parameter-free "option A" shortcut
(subsample by 2, zero-pad the new channels) where the shape changes. Module names match the widely
used akamaster/pytorch_resnet_cifar10 checkpoints, whose inputs were normalized with ImageNet's
mean/std: loading such a file by name (e.g. resnet20-12fca82f.th) sets that normalization.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..images import Preprocessing
from .classifier import CIFAR10_MEAN, CIFAR10_STD, Classifier
from .labels import default_labels
from .registry import register_model
from .weights import KNOWN_WEIGHTS, download, extract_state_dict, hub_cache_dir, read_checkpoint

CIFAR_PREPROCESSING = Preprocessing(input_size=(32, 32), resize=None)


class ShortcutA(nn.Module):
    """Option A: take every second pixel and zero-pad the channels (no parameters)."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = nn.ReLU()
        self.use_shortcut = shortcut
        self.shortcut = ShortcutA(cout // 4) if (stride != 1 or cin != cout) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        if self.use_shortcut:
            out = out + self.shortcut(x)
        return self.act2(out)


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs: depth = 6n + 2."""

    def __init__(self, depth: int = 20, num_classes: int = 10, width: int = 16, shortcut: bool = True) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act = nn.ReLU()
        layers, cin = [], width
        for stage in range(3):
            cout = width * 2 ** stage
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (i == 0 and stage > 0) else 1, shortcut))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(self.pool(x).flatten(1))


def _builder(depth: int):
    def build(pretrained: bool = False, num_classes: int | None = None, shortcut: bool = True,
              width: int = 16) -> Classifier:
        num_classes = num_classes or 10
        net = CifarResNet(depth, 10 if pretrained else num_classes, width, shortcut)
        mean, std, weights_name = CIFAR10_MEAN, CIFAR10_STD, None
        if pretrained:
            kw = KNOWN_WEIGHTS[f"cifar_resnet{depth}"]
            path = download(kw.url, f"cifar_resnet{depth}")
            net.load_state_dict(extract_state_dict(read_checkpoint(path), path))
            mean, std, weights_name = kw.mean, kw.std, kw.filename
            if num_classes != 10:
                net.linear = nn.Linear(net.linear.in_features, num_classes)
        kwargs = {} if shortcut and width == 16 else {"shortcut": shortcut, "width": width}
        return Classifier(net, default_labels(num_classes), preprocessing=CIFAR_PREPROCESSING, mean=mean,
                          std=std, feature_layers=["act", "layer1", "layer2", "layer3"], head="linear",
                          spec={"name": f"cifar_resnet{depth}", "kwargs": kwargs}, weights_name=weights_name)
    return build


for _depth in (20, 32, 44, 56, 110):
    register_model(f"cifar_resnet{_depth}", family="cifar", pretrained="download", default_classes=10,
                   cached_weights=(lambda d=_depth: (hub_cache_dir() / KNOWN_WEIGHTS[f"cifar_resnet{d}"].filename).exists()),
                   description=f"ResNet-{_depth} for 32x32 CIFAR (He et al. 2016, option-A shortcuts)"
                   )(_builder(_depth))
