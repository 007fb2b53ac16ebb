"""The airbench family: its network, its whitening initialization on real patches, and its recipe as
`cnnlab.train` sees it (the same values as before families owned their recipes)."""
from __future__ import annotations

import pytest
import torch

import cnnlab
from cnnlab.models import data_init, get_entry, recipe
from cnnlab.models.airbench import HYP, whiten_init
from cnnlab.train import TrainConfig

#: The recipe's values, written out: changing one changes every airbench result, so it is a decision. Muon for the
#: filters (Nesterov SGD for the rest), the whitening bias frozen after 3 epochs, batches of 1024 of which a proxy
#: picks the hardest half, alternating flips, airbench94_muon's linear schedule, 12 epochs, 6-view TTA; no lookahead.
RECIPE_VALUES = {"optimizer": "muon", "muon_lr": 0.24, "muon_momentum": 0.6, "nesterov": True, "lr": 2.0,
                 "momentum": 0.85, "weight_decay": 5e-4, "bias_lr_mult": 4.0, "label_smoothing": 0.2, "ema": 0.99,
                 "freeze_after": {"whiten.bias": 3}, "batch_size": 1024, "hard_fraction": 0.5,
                 "proxy_args": {"widths": "32,64,64"}, "proxy_every": 4, "augment": "crop2,altflip",
                 "schedule": "linear", "lr_end": 0.0, "epochs": 12, "tta": "flip-translate", "channels_last": True}


def test_whitening_init_decorrelates_real_patches(cifar_test_small):
    x = cifar_test_small[0]
    m = cnnlab.create_model("airbench")
    whiten_init(m, x)
    with torch.no_grad():
        out = m.net.whiten(m.normalize(x))  # [N, 24, 31, 31]
    half = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    cov = torch.cov(half.T)
    var = torch.diag(cov)  # unit variance along the strong directions; eps damps the weakest ones
    assert torch.allclose(var[:6], torch.ones(6), atol=0.05) and bool((var <= 1.01).all())
    off = cov - torch.diag(torch.diag(cov))
    assert off.abs().max() < 0.15
    assert not m.net.whiten.weight.requires_grad


def test_recipe_and_initialization_come_from_the_family():
    assert recipe("airbench") == RECIPE_VALUES == get_entry("airbench").recipe
    cfg = TrainConfig.from_dict({"model": "airbench", **recipe("airbench")})
    assert cfg.data_init and cfg.tta == "flip-translate" and cfg.schedule == "linear" and cfg.optimizer == "muon"
    init = data_init("airbench")
    assert init is not None and init.fn is whiten_init and init.images == 5000
    assert data_init("cifar_resnet20") is None and recipe("cifar_resnet20") == {}
    assert recipe("SomeWrappedNet") == {} and data_init("timm/resnet18") is None


def test_network_tricks_as_the_hyperparameters_say():
    m = cnnlab.create_model("airbench")
    net = m.net
    assert net.whiten.kernel_size == (2, 2) and net.whiten.out_channels == HYP["net"]["whiten_width"]
    bns = [mod for mod in net.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert bns and all(not b.weight.requires_grad and b.bias.requires_grad for b in bns)  # frozen BN scale
    assert all(b.momentum == 0.4 and b.eps == 1e-12 for b in bns)
    conv = net.block2.conv1  # identity init: the first in-channels filters pass their channel through (+ noise)
    w = conv.weight.detach()
    k = min(w.shape[:2])
    assert torch.all(w[torch.arange(k), torch.arange(k), 1, 1] > 0.5)
    assert net.scale.scale == HYP["net"]["scaling_factor"] and m.head_name == "fc"
    assert [int(net.get_submodule(f"block{i}").conv2.out_channels) for i in (1, 2, 3)] == list(HYP["net"]["widths"])


def test_training_runs_the_family_initialization(cifar_test_small):
    from cnnlab.data import ImageArrays
    from cnnlab.train import prepare
    x, y = cifar_test_small
    data = ImageArrays((x * 255).round().to(torch.uint8), y, [f"c{i}" for i in range(10)], "cifar-256")
    cfg = TrainConfig.from_dict({"model": "airbench", "model_kwargs": {"widths": "16,32,32"}, "val_split": 0.25,
                                 **recipe("airbench")})
    model, train_set, _ = prepare(cfg, data=data)
    untouched = cnnlab.create_model("airbench", widths="16,32,32")
    assert not torch.equal(model.net.whiten.weight, untouched.net.whiten.weight)
    assert not model.net.whiten.weight.requires_grad and model.labels == data.classes
    again, _, _ = prepare(cfg, data=data)  # seeded: the same images, the same filters
    assert torch.equal(again.net.whiten.weight, model.net.whiten.weight)
    skipped, _, _ = prepare(cfg.replace(data_init=False), data=data)
    assert skipped.net.whiten.weight.requires_grad
    # configs written when the option was called `whiten` still load
    assert TrainConfig.from_dict({"whiten": False}).data_init is False


def test_named_options_become_valid_train_config_values():
    from cnnlab.errors import CnnlabError
    from cnnlab.models.airbench import OPTIONS, option_values
    every = option_values(OPTIONS)
    assert every["optimizer"] == "muon" and every["batch_size"] == 1024 and every["lookahead"] == 5
    assert TrainConfig.from_dict({"model": "airbench", **recipe("airbench"), **every}).optimizer == "muon"
    assert option_values(["batch_1024"]) == {"batch_size": 1024} and option_values([]) == {}
    # a later option replaces what an earlier one set: airbench94_muon's schedule over airbench94's
    assert option_values(["record_schedule", "linear_schedule"]) == {"schedule": "linear", "lr_end": 0.0}
    # a caller's option replaces the recipe's: airbench94's triangle over the recipe's linear schedule
    cfg = TrainConfig.from_dict({"model": "airbench", **recipe("airbench"), **option_values(["record_schedule"])})
    assert (cfg.schedule, cfg.lr_end) == ("triangle", 0.07)
    with pytest.raises(CnnlabError, match="unknown option 'mixup'.*choose from muon, lookahead"):
        option_values(["muon", "mixup"])
