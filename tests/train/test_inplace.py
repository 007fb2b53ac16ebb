"""In-place activations during training: only where nothing else reads the overwritten tensor."""
from __future__ import annotations

import torch
from torch import nn

import cnnlab
from cnnlab.train.inplace import inplace_activations, safe_inplace_activations


class PreActBlock(nn.Module):
    """ReLU on the block input, which the shortcut also reads: overwriting it would change the result."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.out_act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_act(self.bn(self.conv(self.act(x))) + x)


def test_resnet_relus_become_inplace_and_are_restored():
    model = cnnlab.create_model("cifar_resnet20")
    relus = [m for m in model.net.modules() if isinstance(m, nn.ReLU)]
    # every ReLU of ResNet-20 follows a BatchNorm or the residual addition
    assert len(safe_inplace_activations(model.net)) == len(relus) == 19
    with inplace_activations(model.net) as n:
        assert n == 19 and all(m.inplace for m in relus)
    assert not any(m.inplace for m in relus)


def test_relu_on_a_shared_input_stays_out_of_place():
    block = PreActBlock()
    safe = safe_inplace_activations(block)
    assert block.out_act in safe and block.act not in safe


def test_same_gradients_with_and_without_inplace():
    torch.manual_seed(0)
    model = cnnlab.create_model("cifar_resnet20").train()
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))

    def grads() -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        return [p.grad.clone() for p in model.parameters()]
    plain = grads()
    with inplace_activations(model.net):
        fast = grads()
    for a, b in zip(plain, fast):
        torch.testing.assert_close(a, b)


def test_hooked_model_is_left_alone():
    model = cnnlab.create_model("cifar_resnet20")
    handle = model.net.layer1.register_forward_hook(lambda *a: None)
    with inplace_activations(model.net) as n:
        assert n == 0
    handle.remove()
