"""Agreement with torchattacks (the dev extra) on the same model, images and settings: FGSM, PGD,
DeepFool and Square success rates."""
from __future__ import annotations

import pytest
import torch

from cnnlab import attacks
from cnnlab.models.classifier import Classifier

torchattacks = pytest.importorskip("torchattacks")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def correct128(cifar_test_small, resnet20):
    x, y = cifar_test_small
    ok = resnet20.probabilities(x).argmax(1) == y
    return x[ok][:128], y[ok][:128]


@pytest.fixture(scope="module")
def correct16(resnet20_correct):
    x, y = resnet20_correct
    return x[:16], y[:16]


def _rate(model: Classifier, x_adv: torch.Tensor, y: torch.Tensor) -> float:
    return float((model.probabilities(x_adv).argmax(1) != y).float().mean())


def _fooled(model: Classifier, xa: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(xa).argmax(1) != y


@pytest.mark.parametrize("eps", [0.5 / 255, 1 / 255])
def test_fgsm_success_matches_torchattacks(resnet20, correct128, eps):
    x, y = correct128
    theirs = _rate(resnet20, torchattacks.FGSM(resnet20.eval(), eps=eps)(x, y), y)
    ours = attacks.fgsm(resnet20, x, eps, y=y)
    assert abs(ours.success_rate - theirs) <= 0.02
    assert ours.success_rate == pytest.approx(_rate(resnet20, ours.images, y))


@pytest.mark.slow
@pytest.mark.parametrize("eps", [0.5 / 255])
def test_pgd_success_matches_torchattacks(resnet20, correct128, eps):
    x, y = correct128
    torch.manual_seed(0)
    theirs = _rate(resnet20, torchattacks.PGD(resnet20.eval(), eps=eps, alpha=eps / 4, steps=10,
                                              random_start=True)(x, y), y)
    ours = attacks.pgd(resnet20, x, eps, y=y, steps=10, step_size=eps / 4)
    assert abs(ours.success_rate - theirs) <= 0.02
    assert ours.success_rate == pytest.approx(_rate(resnet20, ours.images, y))


@pytest.mark.slow
def test_deepfool_agrees_with_torchattacks(resnet20, correct16):
    x, y = correct16
    ours = attacks.deepfool(resnet20, x, y=y, steps=50, overshoot=0.02)
    theirs = torchattacks.DeepFool(resnet20, steps=50, overshoot=0.02)(x, y)
    ok_t = _fooled(resnet20, theirs, y)
    assert abs(ours.success_rate - float(ok_t.float().mean())) <= 0.1  # 16 images: one image is 6 points
    # same algorithm, same linearization: the minimal L2 norms agree image by image within a factor ~1.5
    both = ours.success & ok_t
    l2_t = (theirs - x).flatten(1).norm(dim=1)
    ratio = ours.l2[both] / l2_t[both]
    assert 0.67 <= float(ratio.median()) <= 1.5


@pytest.mark.slow
def test_square_agrees_with_torchattacks(resnet20, correct16):
    x, y = correct16
    ours = attacks.square(resnet20, x, 4 / 255, queries=200, y=y, seed=0)
    theirs = torchattacks.Square(resnet20, eps=4 / 255, n_queries=200, seed=0)(x, y)
    rate_t = float(_fooled(resnet20, theirs, y).float().mean())
    assert float((theirs - x).abs().max()) <= 4 / 255 + 1e-6
    assert abs(ours.success_rate - rate_t) <= 0.2  # 16 images: one image is 6 points
