"""Agreement with torchattacks (installed): DeepFool and Square success rates on the same model and images."""
from __future__ import annotations

import pytest
import torch

from cnnlab.attacks import deepfool, square

torchattacks = pytest.importorskip("torchattacks")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def correct(resnet20_correct):
    x, y = resnet20_correct
    return x[:16], y[:16]


def _fooled(model, xa, y) -> torch.Tensor:  # noqa: ANN001
    with torch.no_grad():
        return model(xa).argmax(1) != y


def test_deepfool_agrees_with_torchattacks(resnet20, correct):
    x, y = correct
    ours = deepfool(resnet20, x, y=y, steps=50, overshoot=0.02)
    theirs = torchattacks.DeepFool(resnet20, steps=50, overshoot=0.02)(x, y)
    ok_t = _fooled(resnet20, theirs, y)
    assert abs(ours.success_rate - float(ok_t.float().mean())) <= 0.1  # 16 images: one image is 6 points
    # same algorithm, same linearization: the minimal L2 norms agree image by image within a factor ~1.5
    both = ours.success & ok_t
    l2_t = (theirs - x).flatten(1).norm(dim=1)
    ratio = ours.l2[both] / l2_t[both]
    assert 0.67 <= float(ratio.median()) <= 1.5


def test_square_agrees_with_torchattacks(resnet20, correct):
    x, y = correct
    ours = square(resnet20, x, 4 / 255, queries=200, y=y, seed=0)
    theirs = torchattacks.Square(resnet20, eps=4 / 255, n_queries=200, seed=0)(x, y)
    rate_t = float(_fooled(resnet20, theirs, y).float().mean())
    assert float((theirs - x).abs().max()) <= 4 / 255 + 1e-6
    assert abs(ours.success_rate - rate_t) <= 0.2  # 16 images: one image is 6 points
