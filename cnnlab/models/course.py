"""The networks of the course exercises, from softmax regression up to ResNets, plus a fast CIFAR net.

  softmax_regression   flatten -> linear (002 §1.4)
  mlp                  flatten -> [linear -> tanh|relu] x len(widths) -> linear, He init (002 §1.7-1.8)
  simple_cnn           conv3x3(64)-relu-maxpool x2 -> flatten -> linear (002 §1.9); variants:
    simple_cnn_bn        conv-BN-relu (§1.11)
    simple_cnn_strided   stride-2 convs instead of max-pooling (§1.12)
    simple_cnn_gap       a third conv-BN-relu and global average pooling (§1.13)
  cnn11                64 11x11 filters, 2x2 max-pool, two 128 3x3 convs, global average pool (001 P3)
  course_resnet        the seed-000 ResNet: a stride list ('1,1,2,1,1,2,1,1,1' or '3-3-3'); block =
                       [BN]-ReLU-conv3x3(S)-dropout(0.3)-[BN]-ReLU-conv3x3, 1x1 stride-S shortcut when S>1
  airbench             a fast CIFAR net after airbench94 (2x2 whitening conv, three conv groups, GELU)

The plain nets are nn.Sequential of standard layers (conv, pool, linear, relu, BN) so the from-scratch
numpy forward pass of cnnlab.reference can run them layer by layer.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import CnnlabError
from ..images import Preprocessing
from .classifier import CIFAR10_MEAN, CIFAR10_STD, Classifier
from .labels import default_labels
from .registry import register_model

CIFAR = Preprocessing(input_size=(32, 32), resize=None)


def _classifier(net: nn.Module, num_classes: int, name: str, kwargs: dict, feature_layers: list[str],
                head: str, input_size: int = 32) -> Classifier:
    pre = CIFAR if input_size == 32 else Preprocessing(input_size=(input_size, input_size), resize=None)
    return Classifier(net, default_labels(num_classes), preprocessing=pre, mean=CIFAR10_MEAN, std=CIFAR10_STD,
                      feature_layers=feature_layers, head=head, spec={"name": name, "kwargs": kwargs})


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


def _no_pretrained(name: str, pretrained: bool) -> None:
    if pretrained:
        raise CnnlabError(f"Model '{name}' has no published weights; train it (`cnnlab train --model {name}`) "
                          "or pass --weights CHECKPOINT.")


def _widths(widths: str | int | list[int] | tuple[int, ...]) -> list[int]:
    if isinstance(widths, int):
        return [widths]
    if isinstance(widths, str):
        try:
            return [int(w) for w in widths.replace("-", ",").split(",") if w.strip()]
        except ValueError:
            raise CnnlabError(f"widths '{widths}' must be integers separated by commas, e.g. 512,256.") from None
    return [int(w) for w in widths]


# -- softmax regression and MLP ------------------------------------------------------------------
@register_model("softmax_regression", family="course", description="flatten -> linear: multinomial logistic regression (002 §1.4)")
def softmax_regression(pretrained: bool = False, num_classes: int | None = None, input_size: int = 32) -> Classifier:
    _no_pretrained("softmax_regression", pretrained)
    num_classes = num_classes or 10
    net = nn.Sequential()
    net.add_module("flatten", nn.Flatten())
    net.add_module("fc", nn.Linear(3 * input_size * input_size, num_classes))
    kwargs = {} if input_size == 32 else {"input_size": input_size}
    return _classifier(net, num_classes, "softmax_regression", kwargs, [], "fc", input_size)


@register_model("mlp", family="course", description="multi-layer perceptron, tanh or ReLU hidden layers, He init (002 §1.7)")
def mlp(pretrained: bool = False, num_classes: int | None = None, widths: str | list[int] = "512",
        activation: str = "relu", input_size: int = 32) -> Classifier:
    _no_pretrained("mlp", pretrained)
    if activation not in ("relu", "tanh"):
        raise CnnlabError(f"mlp activation '{activation}' must be relu or tanh.")
    num_classes, ws = num_classes or 10, _widths(widths)
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
    return _classifier(net, num_classes, "mlp", kwargs, [], "fc", input_size)


# -- simple CNNs (002 §1.9-1.13) ---------------------------------------------------------------------
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
    def build(pretrained: bool = False, num_classes: int | None = None, channels: int = 64,
              input_size: int = 32, **overrides) -> Classifier:
        _no_pretrained(name, pretrained)
        opts = {"bn": bn, "strided": strided, "gap": gap, **overrides}
        num_classes = num_classes or 10
        net, feats = simple_cnn_net(num_classes, opts["bn"], opts["strided"], opts["gap"], channels, input_size)
        kwargs = {k: v for k, v in overrides.items()}
        if channels != 64:
            kwargs["channels"] = channels
        if input_size != 32:
            kwargs["input_size"] = input_size
        return _classifier(net, num_classes, name, kwargs, feats, "fc", input_size)
    return build


for _name, _bn, _strided, _gap, _what in [
        ("simple_cnn", False, False, False, "conv3x3(64)-relu-maxpool x2, flatten, linear (002 §1.9)"),
        ("simple_cnn_bn", True, False, False, "simple_cnn with conv-BN-relu (002 §1.11)"),
        ("simple_cnn_strided", True, True, False, "simple_cnn_bn with stride-2 convs instead of pooling (002 §1.12)"),
        ("simple_cnn_gap", True, True, True, "simple_cnn_strided + third conv-BN-relu + global average pool (002 §1.13)")]:
    register_model(_name, family="course", description=_what)(_simple_builder(_name, _bn, _strided, _gap))


# -- the seed-001 CNN -----------------------------------------------------------------------------
@register_model("cnn11", family="course", description="64 11x11 filters, 2x2 max-pool, two 128 3x3 convs, GAP (seed 001 P3)")
def cnn11(pretrained: bool = False, num_classes: int | None = None, bn: bool = False) -> Classifier:
    _no_pretrained("cnn11", pretrained)
    num_classes = num_classes or 10
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
    return _classifier(net, num_classes, "cnn11", {"bn": True} if bn else {}, ["relu1", "relu2", "relu3"], "fc")


# -- the seed-000 ResNet builder ----------------------------------------------------------------
def parse_strides(strides: str | list[int]) -> list[int]:
    """'1,1,2,1,1,2,1,1,1' -> that list; 'a-b-c' in the seed's notation (a blocks, the last of them with
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


@register_model("course_resnet", family="course", default_classes=100,
                description="seed-000 ResNet: strides (default 3-3-3 = 1,1,2,1,1,2,1,1,1), dropout 0.3, 1x1 shortcuts; shortcut=False, bn=True")
def course_resnet(pretrained: bool = False, num_classes: int | None = None, strides: str = "1,1,2,1,1,2,1,1,1",
                  bn: bool = False, shortcut: bool = True, dropout: float = 0.3, width: int = 16) -> Classifier:
    _no_pretrained("course_resnet", pretrained)
    num_classes = num_classes or 100
    ss = parse_strides(strides)
    net = CourseResNet(ss, num_classes, width, bn, shortcut, dropout)
    stages, feats = [i for i, s in enumerate(ss) if s > 1], []
    ends = [i - 1 for i in stages if i > 0] + [len(ss) - 1]
    feats = ["conv1"] + [f"blocks.{i}" for i in ends]
    kwargs = {"strides": ",".join(map(str, ss)), "bn": bn, "shortcut": shortcut}
    if dropout != 0.3:
        kwargs["dropout"] = dropout
    if width != 16:
        kwargs["width"] = width
    return _classifier(net, num_classes, "course_resnet", kwargs, feats, "fc")


# -- a fast CIFAR net after airbench94 ------------------------------------------------------------
class Mul(nn.Module):
    """Multiply by a constant (airbench scales its logits down)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def _conv_group(cin: int, cout: int, momentum: float) -> nn.Sequential:
    g = nn.Sequential()
    g.add_module("conv1", nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
    g.add_module("pool", nn.MaxPool2d(2))
    g.add_module("bn1", nn.BatchNorm2d(cout, momentum=momentum, eps=1e-12))
    g.add_module("act1", nn.GELU())
    g.add_module("conv2", nn.Conv2d(cout, cout, 3, 1, 1, bias=False))
    g.add_module("bn2", nn.BatchNorm2d(cout, momentum=momentum, eps=1e-12))
    g.add_module("act2", nn.GELU())
    return g


@register_model("airbench", family="course",
                description="fast CIFAR net after airbench94: 2x2 whitening conv, 3 conv groups, GELU (time-to-accuracy recipe)")
def airbench(pretrained: bool = False, num_classes: int | None = None, widths: str = "64,256,256",
             whiten_width: int = 24) -> Classifier:
    _no_pretrained("airbench", pretrained)
    num_classes, ws = num_classes or 10, _widths(widths)
    if len(ws) != 3:
        raise CnnlabError(f"airbench widths '{widths}' must name three stages, e.g. 64,256,256.")
    net = nn.Sequential()
    net.add_module("whiten", nn.Conv2d(3, whiten_width, 2, padding=0, bias=True))
    net.add_module("act0", nn.GELU())
    cin = whiten_width
    for i, w in enumerate(ws, 1):
        net.add_module(f"block{i}", _conv_group(cin, w, momentum=0.4))
        cin = w
    net.add_module("pool", nn.AdaptiveMaxPool2d(1))
    net.add_module("flatten", nn.Flatten())
    net.add_module("fc", nn.Linear(cin, num_classes, bias=False))
    net.add_module("scale", Mul(1 / 9))
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):  # identity-initialize the first filters (airbench)
            w = m.weight.data
            nn.init.kaiming_normal_(w, nonlinearity="relu")
            k = min(w.shape[0], w.shape[1])
            torch.nn.init.dirac_(w[:k])
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.requires_grad_(False)  # frozen scale, learnable bias
    kwargs = {} if ws == [64, 256, 256] and whiten_width == 24 else {"widths": ",".join(map(str, ws)),
                                                                     "whiten_width": whiten_width}
    return _classifier(net, num_classes, "airbench", kwargs, ["act0", "block1", "block2", "block3"], "fc")


def whiten_init(model: Classifier, images: torch.Tensor, eps: float = 5e-4) -> None:
    """Set the 2x2 'whiten' conv of an airbench net from the eigenvectors of the data's patch covariance.

    `images` are float [N,3,H,W] in [0,1] (a few thousand training images suffice). The filters
    (and their negatives) map patches to decorrelated unit-variance coordinates; they stay frozen.
    """
    conv = model.net.whiten
    c, kh = conv.in_channels, conv.kernel_size[0]
    with torch.no_grad():
        x = model.normalize(images.float())
        patches = x.unfold(2, kh, 1).unfold(3, kh, 1).transpose(1, 3).reshape(-1, c * kh * kh)
        patches = patches - patches.mean(0, keepdim=True)
        cov = patches.T @ patches / len(patches)
        evals, evecs = torch.linalg.eigh(cov)
        evals, evecs = evals.flip(0), evecs.T.flip(0)
        filt = (evecs / torch.sqrt(evals + eps)[:, None]).reshape(-1, c, kh, kh)
        half = conv.out_channels // 2
        w = torch.cat([filt[:half], -filt[:half]])
        conv.weight.copy_(w)
        # the patches were centred: bias removes the mean response
        mean_patch = x.unfold(2, kh, 1).unfold(3, kh, 1).mean((0, 2, 3))
        conv.bias.copy_(-(w * mean_patch[None]).sum((1, 2, 3)))
    conv.weight.requires_grad_(False)

