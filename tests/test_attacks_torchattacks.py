"""Our FGSM and PGD against torchattacks (the dev extra) on the same model, images and settings."""
from __future__ import annotations

import pytest
import torch

from cnnlab import attacks

torchattacks = pytest.importorskip("torchattacks")


@pytest.fixture(scope="module")
def correct(cifar_test_small, resnet20):
    x, y = cifar_test_small
    ok = resnet20.probabilities(x).argmax(1) == y
    return x[ok][:128], y[ok][:128]


def _rate(model, x_adv, y) -> float:
    return float((model.probabilities(x_adv).argmax(1) != y).float().mean())


@pytest.mark.parametrize("eps", [0.5 / 255, 1 / 255])
def test_fgsm_success_matches_torchattacks(resnet20, correct, eps):
    x, y = correct
    theirs = _rate(resnet20, torchattacks.FGSM(resnet20.eval(), eps=eps)(x, y), y)
    ours = attacks.fgsm(resnet20, x, eps, y=y)
    assert abs(ours.success_rate - theirs) <= 0.02
    assert ours.success_rate == pytest.approx(_rate(resnet20, ours.images, y))


@pytest.mark.parametrize("eps", [0.5 / 255])
def test_pgd_success_matches_torchattacks(resnet20, correct, eps):
    x, y = correct
    torch.manual_seed(0)
    theirs = _rate(resnet20, torchattacks.PGD(resnet20.eval(), eps=eps, alpha=eps / 4, steps=10,
                                              random_start=True)(x, y), y)
    ours = attacks.pgd(resnet20, x, eps, y=y, steps=10, step_size=eps / 4)
    assert abs(ours.success_rate - theirs) <= 0.02
    assert ours.success_rate == pytest.approx(_rate(resnet20, ours.images, y))
