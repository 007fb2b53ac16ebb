"""Small teaching networks for 32x32 images, from softmax regression up to a configurable ResNet.

  softmax_regression   flatten -> linear: multinomial logistic regression
  mlp                  flatten -> [linear -> ReLU|tanh] per hidden width -> linear, He init
  simple_cnn           conv3x3(64)-ReLU-maxpool twice -> flatten -> linear; variants:
    simple_cnn_bn        conv-BN-ReLU
    simple_cnn_strided   stride-2 convolutions instead of max-pooling
    simple_cnn_gap       a third conv-BN-ReLU and global average pooling instead of flatten
  cnn11                64 11x11 filters, 2x2 max-pool, two 128-filter 3x3 convs, global average pool
  course_resnet        a pre-activation ResNet given as a stride list ('1,1,2,1,1,2,1,1,1' or '3-3-3');
                       block = [BN]-ReLU-conv3x3(S)-dropout(0.3)-[BN]-ReLU-conv3x3, 1x1 stride-S
                       shortcut when S>1; shortcut and BatchNorm are options

The plain nets are nn.Sequential of standard layers (conv, pool, linear, relu, BN) so the from-scratch
numpy forward pass of cnnlab.reference can run them layer by layer. Untrained, they see 32x32 images
normalized with CIFAR-10's statistics; none has published weights.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..errors import CnnlabError
from .arguments import int_list
from .classifier import Classifier
from .configs import ModelCfg, build_classifier
from .normalization import CIFAR10_MEAN, CIFAR10_STD
from .registry import register_model

#: 32x32 images normalized with CIFAR-10's statistics, head 'fc', ten classes.
CFG = ModelCfg(num_classes=10, input_size=(32, 32), resize=None, mean=CIFAR10_MEAN, std=CIFAR10_STD, classifier="fc")

#: The recipe of these nets. SGD at lr 0.1 suits BN ResNets but blows up flatten+dense nets (a
#: 4096-input linear layer moves its logits by ~lr*|x|^2 per step): Adam at 1e-3, constant.
ADAM = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant"}
#: The nets on flattened pixels train without augmentation.
ADAM_PLAIN = {**ADAM, "augment": "none"}


#: How _he_init leaves the nets below (what `cnnlab models NAME` and every training run report).
HE_INIT = ("He-normal (kaiming_normal_, fan-in, ReLU gain) convolution and linear weights, zero biases; the head "
           "'fc' keeps PyTorch's default (uniform in +-1/sqrt(fan_in)) so the first logits are moderate; BatchNorm "
           "weight 1, bias 0")


def _classifier(net: nn.Module, name: str, kwargs: dict, feature_layers: list[str], input_size: int = 32,
                cfg: ModelCfg = CFG) -> Classifier:
    if input_size != cfg.input_size[0]:
        cfg = cfg.replace(input_size=(input_size, input_size))
    return build_classifier(net, cfg, name=name, kwargs=kwargs, feature_layers=feature_layers)


def _he_init(net: nn.Module, nonlinearity: str = "relu", head: str = "fc") -> None:
    """He-normal weights for layers followed by ReLU (Glorot with tanh gain for tanh), zero biases;
    the classification head keeps PyTorch's small default init so the first logits are moderate."""
    for name, m in net.named_modules():
        if name == head:
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if nonlinearity == "tanh":
                nn.init.xavier_normal_(m.weight, gain=nn.init.calculate_gain("tanh"))
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# -- softmax regression and MLP ------------------------------------------------------------------
@register_model("softmax_regression", family="course", cfg=CFG, recipe=ADAM_PLAIN,
                description="flatten -> linear: multinomial logistic regression")
def softmax_regression(pretrained: bool = False, num_classes: int | None = None, input_size: int = 32) -> Classifier:
    """Multinomial logistic regression on the flattened pixels.

    Args:
        input_size: side of the square images it takes, in pixels.
    """
    num_classes = num_classes or CFG.num_classes
    net = nn.Sequential()
    net.add_module("flatten", nn.Flatten())
    net.add_module("fc", nn.Linear(3 * input_size * input_size, num_classes))
    kwargs = {} if input_size == 32 else {"input_size": input_size}
    return _classifier(net, "softmax_regression", kwargs, [], input_size)


@register_model("mlp", family="course", cfg=CFG, recipe=ADAM_PLAIN,
                weight_init="hidden layers He-normal (kaiming_normal_, fan-in, ReLU gain; with activation=tanh "
                            "Glorot-normal with tanh gain), zero biases; the output layer 'fc' PyTorch's default "
                            "(uniform in +-1/sqrt(fan_in))",
                description="multi-layer perceptron on the flattened pixels, ReLU or tanh hidden layers, He init")
def mlp(pretrained: bool = False, num_classes: int | None = None, widths: str | list[int] = "512",
        activation: Literal["relu", "tanh"] = "relu", input_size: int = 32) -> Classifier:
    """A multi-layer perceptron.

    Args:
        widths: units of each hidden layer, first to last (e.g. 512,256).
        activation: nonlinearity after each hidden layer (He init for relu, Glorot with tanh gain for tanh).
        input_size: side of the square images it takes, in pixels.
    """
    num_classes, ws = num_classes or CFG.num_classes, int_list(widths, "widths")
    net = nn.Sequential()
    net.add_module("flatten", nn.Flatten())
    cin = 3 * input_size * input_size
    for i, w in enumerate(ws):
        net.add_module(f"fc{i + 1}", nn.Linear(cin, w))
        net.add_module(f"act{i + 1}", nn.ReLU() if activation == "relu" else nn.Tanh())
        cin = w
    net.add_module("fc", nn.Linear(cin, num_classes))
    _he_init(net, activation)
    kwargs = {"widths": ",".join(map(str, ws)), "activation": activation}
    if input_size != 32:
        kwargs["input_size"] = input_size
    return _classifier(net, "mlp", kwargs, [], input_size)


# -- simple CNNs ----------------------------------------------------------------------------------
def simple_cnn_net(num_classes: int, bn: bool = False, strided: bool = False, gap: bool = False,
                   channels: int = 64, input_size: int = 32) -> tuple[nn.Sequential, list[str]]:
    """conv-(BN)-relu-pool twice (stride-2 convs with `strided`), then flatten+linear or a third conv+GAP."""
    net, feats, size = nn.Sequential(), [], input_size
    convs = 3 if gap else 2
    cin = 3
    for i in range(1, convs + 1):
        last_gap = gap and i == convs
        stride = 2 if strided and not last_gap else 1
        net.add_module(f"conv{i}", nn.Conv2d(cin, channels, 3, stride, 1, bias=not bn))
        if bn:
            net.add_module(f"bn{i}", nn.BatchNorm2d(channels))
        net.add_module(f"relu{i}", nn.ReLU())
        feats.append(f"relu{i}")
        if not strided and not last_gap:
            net.add_module(f"pool{i}", nn.MaxPool2d(2, 2))
        if not last_gap:
            size //= 2
        cin = channels
    if gap:
        net.add_module("gap", nn.AdaptiveAvgPool2d(1))
        net.add_module("flatten", nn.Flatten())
        net.add_module("fc", nn.Linear(channels, num_classes))
    else:
        net.add_module("flatten", nn.Flatten())
        net.add_module("fc", nn.Linear(channels * size * size, num_classes))
    _he_init(net)
    return net, feats


def _simple_builder(name: str, bn: bool, strided: bool, gap: bool):
    variant = {"bn": bn, "strided": strided, "gap": gap}

    def build(pretrained: bool = False, num_classes: int | None = None, bn: bool = bn, strided: bool = strided,
              gap: bool = gap, channels: int = 64, input_size: int = 32) -> Classifier:
        """Two conv-ReLU stages and a linear classifier.

        Args:
            bn: BatchNorm after each convolution (convolutions then have no bias).
            strided: stride-2 convolutions instead of 2x2 max-pooling.
            gap: a third convolution and global average pooling instead of flattening the maps.
            channels: filters of every convolution.
            input_size: side of the square images it takes, in pixels.
        """
        num_classes = num_classes or CFG.num_classes
        net, feats = simple_cnn_net(num_classes, bn, strided, gap, channels, input_size)
        kwargs = {k: v for k, v in (("bn", bn), ("strided", strided), ("gap", gap)) if v != variant[k]}
        if channels != 64:
            kwargs["channels"] = channels
        if input_size != 32:
            kwargs["input_size"] = input_size
        return _classifier(net, name, kwargs, feats, input_size)
    return build


for _name, _bn, _strided, _gap, _what in [
        ("simple_cnn", False, False, False, "conv3x3(64)-ReLU-maxpool twice, flatten, linear"),
        ("simple_cnn_bn", True, False, False, "simple_cnn with conv-BN-ReLU"),
        ("simple_cnn_strided", True, True, False, "simple_cnn_bn with stride-2 convolutions instead of max-pooling"),
        ("simple_cnn_gap", True, True, True, "simple_cnn_strided with a third conv-BN-ReLU and global average pooling")]:
    register_model(_name, family="course", cfg=CFG, recipe=ADAM, description=_what, weight_init=HE_INIT
                   )(_simple_builder(_name, _bn, _strided, _gap))


# -- a CNN with large first-layer filters ------------------------------------------------------------
@register_model("cnn11", family="course", cfg=CFG, recipe=ADAM, weight_init=HE_INIT,
                description="64 11x11 filters, 2x2 max-pool, two 128-filter 3x3 convs, global average pool")
def cnn11(pretrained: bool = False, num_classes: int | None = None, bn: bool = False) -> Classifier:
    """A CNN whose 64 first-layer 11x11 filters are large enough to look at.

    Args:
        bn: BatchNorm after each convolution (convolutions then have no bias).
    """
    num_classes = num_classes or CFG.num_classes
    net = nn.Sequential()
    net.add_module("conv1", nn.Conv2d(3, 64, 11, 1, 5, bias=not bn))
    if bn:
        net.add_module("bn1", nn.BatchNorm2d(64))
    net.add_module("relu1", nn.ReLU())
    net.add_module("pool1", nn.MaxPool2d(2, 2))
    for i, cin in ((2, 64), (3, 128)):
        net.add_module(f"conv{i}", nn.Conv2d(cin, 128, 3, 1, 1, bias=not bn))
        if bn:
            net.add_module(f"bn{i}", nn.BatchNorm2d(128))
        net.add_module(f"relu{i}", nn.ReLU())
    net.add_module("gap", nn.AdaptiveAvgPool2d(1))
    net.add_module("flatten", nn.Flatten())
    net.add_module("fc", nn.Linear(128, num_classes))
    _he_init(net)
    return _classifier(net, "cnn11", {"bn": True} if bn else {}, ["relu1", "relu2", "relu3"])


# -- a ResNet given as a stride list ---------------------------------------------------------------
def parse_strides(strides: str | list[int]) -> list[int]:
    """'1,1,2,1,1,2,1,1,1' -> that list; 'a-b-c' as blocks per stage (a blocks, the last of them with
    stride 2, then b blocks likewise, then c blocks at stride 1): '3-3-3' -> [1,1,2,1,1,2,1,1,1]."""
    if isinstance(strides, (list, tuple)):
        out = [int(s) for s in strides]
    else:
        text = str(strides).strip()
        try:
            if "-" in text:
                counts = [int(c) for c in text.split("-")]
                out = [2 if (i == n - 1 and stage < len(counts) - 1) else 1
                       for stage, n in enumerate(counts) for i in range(n)]
            else:
                out = [int(s) for s in text.split(",") if s.strip()]
        except ValueError:
            out = []
    if not out or any(s not in (1, 2) for s in out):
        raise CnnlabError(f"strides '{strides}' must be a list of 1s and 2s like 1,1,2,1,1,2,1,1,1 "
                          "or blocks per stage like 3-3-3.")
    return out


class CourseBlock(nn.Module):
    """[BN]-ReLU-conv3x3(S)-dropout-[BN]-ReLU-conv3x3, plus x (S=1) or a 1x1 stride-S conv of x (S>1)."""

    def __init__(self, cin: int, stride: int, bn: bool, shortcut: bool, dropout: float) -> None:
        super().__init__()
        cout = cin * stride
        self.bn1 = nn.BatchNorm2d(cin) if bn else nn.Identity()
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=not bn)
        self.dropout = nn.Dropout(dropout)
        self.bn2 = nn.BatchNorm2d(cout) if bn else nn.Identity()
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.use_shortcut = shortcut
        self.shortcut = nn.Conv2d(cin, cout, 1, stride) if (shortcut and stride > 1) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu2(self.bn2(self.dropout(self.conv1(self.relu1(self.bn1(x)))))))
        return out + self.shortcut(x) if self.use_shortcut else out


class CourseResNet(nn.Module):
    """conv3x3(16) -> blocks by stride list -> [BN-ReLU when bn] -> global average pool -> linear."""

    def __init__(self, strides: list[int], num_classes: int, width: int = 16, bn: bool = False,
                 shortcut: bool = True, dropout: float = 0.3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1)
        blocks, c = [], width
        for s in strides:
            blocks.append(CourseBlock(c, s, bn, shortcut, dropout))
            c *= s
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c) if bn else nn.Identity()
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


#: Step decay: lr x 0.1 every 10 epochs, from Adam's 1e-3.
RESNET_RECIPE = {**ADAM, "schedule": "step", "step_every": 10}
#: A hundred classes by default (CIFAR-100-sized heads).
RESNET_CFG = CFG.replace(num_classes=100)


@register_model("course_resnet", family="course", cfg=RESNET_CFG, recipe=RESNET_RECIPE, weight_init=HE_INIT,
                description="pre-activation ResNet from a stride list (default 3-3-3 = 1,1,2,1,1,2,1,1,1), "
                            "dropout 0.3, 1x1 shortcuts; options shortcut, bn, dropout, width")
def course_resnet(pretrained: bool = False, num_classes: int | None = None, strides: str | list[int] = "1,1,2,1,1,2,1,1,1",
                  bn: bool = False, shortcut: bool = True, dropout: float = 0.3, width: int = 16) -> Classifier:
    """A pre-activation ResNet: conv3x3(width), one residual block per stride, global average pool, linear.

    Args:
        strides: one stride per block (1 keeps the size; 2 halves it and doubles the channels), or
            blocks per stage like 3-3-3 (each stage but the last ends with a stride-2 block).
        bn: BatchNorm before every ReLU (each block's first convolution then has no bias).
        shortcut: add each block's input (a 1x1 stride-2 convolution of it when the size halves).
        dropout: dropout probability after each block's first convolution.
        width: channels of the first convolution and the first blocks.
    """
    num_classes = num_classes or RESNET_CFG.num_classes
    ss = parse_strides(strides)
    net = CourseResNet(ss, num_classes, width, bn, shortcut, dropout)
    stages = [i for i, s in enumerate(ss) if s > 1]
    ends = [i - 1 for i in stages if i > 0] + [len(ss) - 1]
    feats = ["conv1"] + [f"blocks.{i}" for i in ends]
    kwargs = {"strides": ",".join(map(str, ss)), "bn": bn, "shortcut": shortcut}
    if dropout != 0.3:
        kwargs["dropout"] = dropout
    if width != 16:
        kwargs["width"] = width
    return _classifier(net, "course_resnet", kwargs, feats, cfg=RESNET_CFG)
