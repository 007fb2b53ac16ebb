"""Weight averages: airbench94's lookahead pulls the training weights back to their running average."""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.train.ema import Lookahead


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
