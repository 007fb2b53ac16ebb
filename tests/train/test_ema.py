"""Weight averages: the EMA's fused update computes exactly the per-tensor formula (BN counters copied);
airbench94's lookahead pulls the training weights back to their running average."""
from __future__ import annotations

import copy

import torch
from torch import nn

from cnnlab.train import TrainConfig
from cnnlab.train.ema import EMA, Lookahead


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


def test_lookahead_pulls_back_every_n_steps_and_ends_on_the_average():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    la = Lookahead(net, every=5)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net[0].weight.add_(1.0)
    la.update(net, 3, 100)  # not a multiple of 5: nothing happens
    assert torch.equal(net[0].weight, start["0.weight"] + 1.0)
    la.update(net, 50, 100)  # decay 0.95^5 * 0.5^3: the average moves most of the way, the weights follow it
    d = 0.95 ** 5 * 0.5 ** 3
    want = start["0.weight"] * d + (start["0.weight"] + 1.0) * (1 - d)
    assert torch.allclose(net[0].weight, want) and torch.allclose(la.average["0.weight"], want)
    assert torch.equal(net[1].num_batches_tracked, start["1.num_batches_tracked"])  # integers are not averaged
    with torch.no_grad():
        net[0].weight.add_(5.0)
    la.update(net, 100, 100)  # the last step: the weights become the average
    assert torch.allclose(net[0].weight, want)
    again = Lookahead(net, every=1)
    again.load_state_dict(la.state_dict())
    assert again.every == 5 and torch.equal(again.average["0.weight"], la.average["0.weight"])
