"""airbench: a fast CIFAR-10 network and the recipe that trains it, after Keller Jordan's airbench94.

Read top to bottom: the hyperparameters with one comment per trick, the network's components and
definition, the whitening initialization from the data, and the registration that hands the recipe
to `cnnlab train --model airbench`. The training loop itself is cnnlab's (`cnnlab.train`): each
option of the recipe is a `TrainConfig` field, so any of them can be changed or switched off from
the command line to measure what it is worth.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..errors import CnnlabError
from .arguments import int_list
from .classifier import Classifier
from .configs import DataInit, ModelCfg, build_classifier
from .normalization import CIFAR10_MEAN, CIFAR10_STD
from .registry import register_model

#############################################
#              Hyperparameters              #
#############################################

HYP = {
    "opt": {
        "epochs": 12,                 # the length the options the recipe uses (OPTIONS_ON) were measured at
        "batch_size": 512,
        "optimizer": "sgd",
        "nesterov": True,             # Nesterov SGD: the gradient is taken one momentum step ahead
        "momentum": 0.85,
        "lr": 2.0,                    # peak learning rate of the triangular schedule
        "schedule": "triangle",       # triangular schedule: linear from 0.2x up to 1x over the first 23% of
                                      #   the steps, then linear down to 0 at the last step
        "weight_decay": 5e-4,         # on convolution and linear weights only, never on BN or biases
        "bias_lr_mult": 4.0,          # bias lr multiplier: BN biases (the only learnt BN parameters) and the
                                      #   whitening conv's bias learn at 4x the lr
        "label_smoothing": 0.2,       # label smoothing 0.2: target 0.82 for the class, 0.02 for each other
        "ema": 0.99,                  # EMA of the weights (decay per step), evaluated and saved instead
        "channels_last": True,        # channels_last memory: faster convolutions on CPU
    },
    "aug": {
        "augment": "crop2,flip",      # crop2/flip: translate by up to 2 px (reflect padding), mirror half
    },
    "tta": {
        "tta": "flip-translate",      # 6-view TTA: the image and its mirror, each also shifted 1 px up-left and
                                      #   down-right; the unshifted pair weighs half of the average
    },
    "net": {
        "widths": (64, 256, 256),     # output channels of the three conv groups
        "whiten_width": 24,           # whitening conv: 2x2 filters set from the eigenvectors of the training
        "whiten_kernel_size": 2,      #   images' 2x2 patch covariance (12 directions and their negatives),
        "whiten_eps": 5e-4,           #   scaled to unit variance (eps damps the weakest), then frozen;
        "whiten_images": 5000,        #   5000 seeded training images estimate the covariance
        "identity_init": True,        # identity init: each 3x3 conv starts as a dirac (passes its input
                                      #   channels through) on top of He-normal noise
        "frozen_bn_scale": True,      # frozen BN scale: BatchNorm weights stay 1, only their biases learn
        "batchnorm_momentum": 0.4,    # running statistics follow fast (PyTorch's convention; airbench94 writes 0.6)
        "batchnorm_eps": 1e-12,
        "scaling_factor": 1 / 9,      # logits scaled down by 9 (a fixed softmax temperature)
    },
}

#: The record holders' further ideas (airbench94, airbench94_muon, airbench96_faster), each a named option: the
#: TrainConfig values that switch it on. `OPTIONS_ON` names those the recipe uses, on top of HYP: together they
#: reached 90.5% CIFAR-10 in 0.70x airbench94's time on a 2-core CPU, ending at 90.76% (airbench94: 90.39-91.02%).
#: Taking out Muon or the hard-example selection made it slower; lookahead did not help at 12 epochs, so it is off
#: (benchmarks/bench_train_recipe_ablation.py, benchmarks/results/training.md). A caller's own values win over any
#: of them (e.g. `--optimizer sgd`).
OPTIONS = {
    # Muon for the convolution filters: the momentum of each filter bank [out, in*3*3] is orthogonalized by 3
    # Newton-Schulz iterations (torch.optim.Muon) and the bank kept at norm sqrt(out), so every step turns
    # all its directions by about muon_lr; BN biases and the head stay on Nesterov SGD
    "muon": {"optimizer": "muon", "muon_lr": 0.24, "muon_momentum": 0.6},
    # lookahead: every 5 steps the weights are pulled back to their running average (decay 0.95^5 x
    # progress^3: free early, averaged late) and training ends on the average
    "lookahead": {"lookahead": 5},
    # the whitening conv's bias learns for the first 3 epochs only (its lr fading to 0), then is frozen:
    # with its weights frozen too, nothing before the first conv group needs a gradient
    "whiten_bias_freeze": {"freeze_after": {"whiten.bias": 3}},
    # twice the batch: half the optimizer steps per epoch, the lr kept (it is per batch mean)
    "batch_1024": {"batch_size": 1024},
    # airbench94's schedule: the triangle ends at 0.07 of the peak instead of 0
    "record_schedule": {"schedule": "triangle", "lr_end": 0.07},
    # airbench94_muon's schedule: from the peak straight down to 0, no warm-up (given after record_schedule,
    # it replaces it: later options win)
    "linear_schedule": {"schedule": "linear", "lr_end": 0.0},
    # alternating flip: each image mirrored in every other epoch (a seeded coin picks which), not at random
    "altflip": {"augment": "crop2,altflip"},
    # airbench96's data filtering: batches of 1024, of which the model trains on the 512 that a small proxy
    # airbench (widths 32,64,64; a seventh of the work) finds hardest; the proxy learns from every 4th batch
    "hard_half": {"batch_size": 1024, "hard_fraction": 0.5, "proxy_args": {"widths": "32,64,64"}, "proxy_every": 4},
    # 6-view flip-translate TTA in evaluation (already part of the recipe, above)
    "tta": {"tta": "flip-translate"},
}
OPTIONS_ON = ("muon", "whiten_bias_freeze", "batch_1024", "altflip", "hard_half", "linear_schedule", "tta")


def option_values(names: Iterable[str]) -> dict:
    """The TrainConfig values that switch on the named OPTIONS, merged in order (where two set the same value,
    the later wins); an unknown name is an error."""
    values: dict = {}
    for name in names:
        if name not in OPTIONS:
            raise CnnlabError(f"unknown option '{name}' of the airbench recipe; choose from {', '.join(OPTIONS)}.")
        values.update(OPTIONS[name])
    return values


#: What `cnnlab train --model airbench` uses for every option the caller leaves unset.
RECIPE = {**HYP["opt"], **HYP["aug"], **HYP["tta"], **option_values(OPTIONS_ON)}

#: 32x32 images normalized with CIFAR-10's statistics; the head 'fc' (before the logit scaling).
CFG = ModelCfg(num_classes=10, input_size=(32, 32), resize=None, mean=CIFAR10_MEAN, std=CIFAR10_STD, classifier="fc")

#############################################
#            Network Components             #
#############################################


class Mul(nn.Module):
    """Multiply by a constant (the logit scaling)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def conv_group(cin: int, cout: int) -> nn.Sequential:
    """conv3x3 -> 2x2 max-pool -> BN -> GELU -> conv3x3 -> BN -> GELU (pooling before BN: 4x less to normalize)."""
    h = HYP["net"]
    g = nn.Sequential()
    g.add_module("conv1", nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
    g.add_module("pool", nn.MaxPool2d(2))
    g.add_module("bn1", nn.BatchNorm2d(cout, momentum=h["batchnorm_momentum"], eps=h["batchnorm_eps"]))
    g.add_module("act1", nn.GELU())
    g.add_module("conv2", nn.Conv2d(cout, cout, 3, 1, 1, bias=False))
    g.add_module("bn2", nn.BatchNorm2d(cout, momentum=h["batchnorm_momentum"], eps=h["batchnorm_eps"]))
    g.add_module("act2", nn.GELU())
    return g

#############################################
#            Network Definition             #
#############################################


def airbench_net(num_classes: int, widths: list[int], whiten_width: int) -> nn.Sequential:
    """whiten (2x2 conv) -> GELU -> three conv groups -> global max-pool -> linear -> x scaling_factor."""
    net_hyp = HYP["net"]
    net = nn.Sequential()
    net.add_module("whiten", nn.Conv2d(3, whiten_width, net_hyp["whiten_kernel_size"], padding=0, bias=True))
    net.add_module("act0", nn.GELU())
    cin = whiten_width
    for i, w in enumerate(widths, 1):
        net.add_module(f"block{i}", conv_group(cin, w))
        cin = w
    net.add_module("pool", nn.AdaptiveMaxPool2d(1))
    net.add_module("flatten", nn.Flatten())
    net.add_module("fc", nn.Linear(cin, num_classes, bias=False))
    net.add_module("scale", Mul(net_hyp["scaling_factor"]))
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
            w = m.weight.data
            nn.init.kaiming_normal_(w, nonlinearity="relu")
            if net_hyp["identity_init"]:
                torch.nn.init.dirac_(w[:min(w.shape[0], w.shape[1])])
        elif isinstance(m, nn.BatchNorm2d) and net_hyp["frozen_bn_scale"]:
            m.weight.requires_grad_(False)
    return net

#############################################
#       Whitening Conv Initialization       #
#############################################


def whiten_init(model: Classifier, images: torch.Tensor, eps: float = HYP["net"]["whiten_eps"]) -> None:
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

#############################################
#               Registration                #
#############################################


WHITENING = DataInit(whiten_init, HYP["net"]["whiten_images"],
                     f"whitening conv from the eigenvectors of 2x2 patches of {HYP['net']['whiten_images']} "
                     "training images, frozen")


@register_model("airbench", family="airbench", cfg=CFG, recipe=RECIPE, init=WHITENING,
                weight_init="3x3 convolutions He-normal plus a dirac (identity) on their first channels; the 2x2 "
                            "whitening conv and the linear head PyTorch's defaults (the whitening conv is then set "
                            "from the data); BatchNorm weight 1 (frozen), bias 0",
                description="fast CIFAR net after airbench94: 2x2 whitening conv, 3 conv groups, GELU "
                            "(time-to-accuracy recipe)")
def airbench(pretrained: bool = False, num_classes: int | None = None,
             widths: str | list[int] = ",".join(map(str, HYP["net"]["widths"])),
             whiten_width: int = HYP["net"]["whiten_width"]) -> Classifier:
    """The airbench network.

    Args:
        widths: output channels of the three conv groups (e.g. 64,256,256).
        whiten_width: filters of the 2x2 whitening conv (half are the negatives of the other half).
    """
    num_classes, ws = num_classes or CFG.num_classes, int_list(widths, "widths")
    if len(ws) != 3:
        raise CnnlabError(f"airbench widths '{widths}' must name three stages, e.g. 64,256,256.")
    net = airbench_net(num_classes, ws, whiten_width)
    default = (ws == list(HYP["net"]["widths"]) and whiten_width == HYP["net"]["whiten_width"])
    kwargs = {} if default else {"widths": ",".join(map(str, ws)), "whiten_width": whiten_width}
    return build_classifier(net, CFG, name="airbench", kwargs=kwargs, feature_layers=["act0", "block1", "block2", "block3"])
