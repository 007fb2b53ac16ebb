"""Helpers for the attack tests (the shared data fixtures are in tests/conftest.py)."""
from __future__ import annotations

import pytest
import torch


class NoGradient:
    """Fails the test if anything runs the model with autograd on (a forward that could be differentiated);
    counts the forwards. Use as `with NoGradient(model) as guard: ...`."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        self.model = model

    def __enter__(self) -> NoGradient:
        self.handle = self.model.register_forward_pre_hook(self._check)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()

    def _check(self, module: torch.nn.Module, args: tuple) -> None:
        assert not torch.is_grad_enabled(), "the model was run with gradients enabled"
        assert not any(a.requires_grad for a in args if isinstance(a, torch.Tensor)), "input requires grad"
        self.calls += 1


@pytest.fixture(scope="module")
def correct(resnet20_correct):
    """The first 32 test images the pretrained ResNet-20 classifies correctly, with their labels."""
    return resnet20_correct
