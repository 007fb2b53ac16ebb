"""The weight average: the fused update computes exactly the per-tensor formula, BN counters are copied."""
from __future__ import annotations

import copy

import torch
from torch import nn

from cnnlab.train import TrainConfig
from cnnlab.train.ema import EMA


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))


def test_the_fused_update_equals_the_per_tensor_formula():
    net = _net(0)
    net(torch.rand(2, 3, 6, 6))  # materialize the lazy layer and move the BN statistics
    ema = EMA(net, decay=0.9)
    expected = copy.deepcopy(ema.model.state_dict())
    for step in range(1, 4):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net(torch.rand(2, 3, 6, 6))
        ema.update(net)
        d = min(0.9, (1 + step) / (10 + step))
        for k, v in net.state_dict().items():
            if v.dtype.is_floating_point:
                expected[k].mul_(d).add_(v, alpha=1 - d)
            else:
                expected[k].copy_(v)
    for k, v in ema.model.state_dict().items():
        assert torch.equal(v, expected[k]), k
    assert int(ema.model[1].num_batches_tracked) == int(net[1].num_batches_tracked) == 4


def test_a_torch_device_in_the_config_is_saved_as_its_name():
    cfg = TrainConfig(model="cifar_resnet20", device=torch.device("cpu"))
    assert cfg.device == "cpu"
    assert TrainConfig(model="cifar_resnet20", device=None).device == "auto"
