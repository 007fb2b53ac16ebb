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

from .classifier import Classifier
from .configs import ModelCfg, build_classifier
from .normalization import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from .registry import register_model
from .weights import download, extract_state_dict, read_checkpoint

#: The untrained network: 32x32 inputs normalized with CIFAR-10's statistics, head 'linear'.
CFG = ModelCfg(num_classes=10, input_size=(32, 32), resize=None, mean=CIFAR10_MEAN, std=CIFAR10_STD,
               classifier="linear")
_AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
#: The published CIFAR-10 weights of each depth, trained by akamaster (BSD-2) with inputs normalized
#: by ImageNet's mean/std: a local copy is recognized by its file name (e.g. resnet20-12fca82f.th).
WEIGHTS = {
    depth: CFG.replace(url=_AKAMASTER + filename, mean=IMAGENET_MEAN, std=IMAGENET_STD, dataset="cifar10",
                       source="akamaster/pytorch_resnet_cifar10 (BSD-2-Clause)")
    for depth, filename in [(20, "resnet20-12fca82f.th"), (32, "resnet32-d509ac18.th"), (44, "resnet44-014dd654.th"),
                            (56, "resnet56-4bfd9763.th"), (110, "resnet110-1d1ed7c2.th")]
}


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
        """ResNet-{depth} for 32x32 images.

        Args:
            shortcut: add each block's input to its output (false: a plain network of the same depth).
            width: channels of the first stage (the next two stages have 2x and 4x as many).
        """
        num_classes = num_classes or CFG.num_classes
        net = CifarResNet(depth, 10 if pretrained else num_classes, width, shortcut)
        cfg = CFG
        if pretrained:
            cfg = WEIGHTS[depth]
            path = download(cfg.url, f"cifar_resnet{depth}")
            net.load_state_dict(extract_state_dict(read_checkpoint(path), path))
            if num_classes != cfg.num_classes:
                net.linear = nn.Linear(net.linear.in_features, num_classes)
        kwargs = {} if shortcut and width == 16 else {"shortcut": shortcut, "width": width}
        return build_classifier(net, cfg, name=f"cifar_resnet{depth}", kwargs=kwargs, pretrained=pretrained,
                                feature_layers=["act", "layer1", "layer2", "layer3"])
    build.__doc__ = build.__doc__.format(depth=depth)
    return build


for _depth in (20, 32, 44, 56, 110):
    register_model(f"cifar_resnet{_depth}", family="cifar", cfg=CFG, weights=WEIGHTS[_depth],
                   weight_init="He-normal (kaiming_normal_, fan-in) convolution and linear weights, the head "
                               "included; the head's bias PyTorch's default; BatchNorm weight 1, bias 0",
                   description=f"ResNet-{_depth} for 32x32 CIFAR (He et al. 2016, option-A shortcuts)"
                   )(_builder(_depth))
