"""Square Attack on the real pretrained CIFAR-10 ResNet-20: outputs only, inside the L-inf ball."""
from __future__ import annotations

import pytest
import torch

from cnnlab.attacks import square

from .conftest import NoGradient

pytestmark = pytest.mark.usefixtures("one_thread")


def test_square_succeeds_without_any_gradient(resnet20, correct):
    x, y = correct
    x, y = x[:16], y[:16]
    params = [p.requires_grad for p in resnet20.parameters()]
    with NoGradient(resnet20) as guard:
        r = square(resnet20, x, 8 / 255, queries=200, y=y, seed=0)
    assert [p.requires_grad for p in resnet20.parameters()] == params  # restored
    assert guard.calls > 0
    assert r.success_rate >= 0.6
    assert float(r.linf.max()) <= 8 / 255 + 1e-6
    assert r.images.min() >= 0 and r.images.max() <= 1
    with torch.no_grad():
        assert (resnet20(r.images[r.success]).argmax(1) != y[r.success]).all()
    # queries: each image used at least one and at most the budget; successes report the mean
    assert int(r.steps.min()) >= 1 and int(r.steps.max()) <= 200
    assert r.params["queries_per_success"] == pytest.approx(float(r.steps[r.success].float().mean()))
    assert r.passes == int(r.steps.sum())


@pytest.mark.slow
def test_square_targeted(resnet20, correct):
    x, y = correct
    r = square(resnet20, x[:6], 16 / 255, queries=300, target="least-likely")
    assert r.targeted
    assert (r.final_class[r.success] == r.target[r.success]).all()
    assert r.success_rate >= 0.3
