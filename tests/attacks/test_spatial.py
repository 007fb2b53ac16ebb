"""The spatial attack (rotations and shifts) on the real pretrained CIFAR-10 ResNet-20."""
from __future__ import annotations

import pytest
import torch

from cnnlab.attacks import spatial_attack, spatial_eval
from cnnlab.attacks.spatial import rotate_translate

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
def test_spatial_attack_is_no_better_than_any_fixed_transform(resnet20, cifar_test_small):
    x, y = cifar_test_small
    x, y = x[:40], y[:40]
    assert torch.allclose(rotate_translate(x[:2], 0, 0, 0), x[:2], atol=1e-5)
    ev = spatial_eval(resnet20, x, y, rotations=7, translations=3)
    assert ev.grid_points == 63 and len(ev.per_transform) == 63
    assert ev.robust_top1 <= min(t["top1"] for t in ev.per_transform) == ev.min_fixed_top1
    identity = [t for t in ev.per_transform if t["degrees"] == 0 and t["dx"] == 0 and t["dy"] == 0]
    assert identity and identity[0]["top1"] == pytest.approx(ev.top1)
    assert ev.robust_top1 < ev.top1 - 0.2  # a non-robust CIFAR model loses much of its accuracy
    r = spatial_attack(resnet20, x[:12], y=y[:12], rotations=7, translations=3)
    with torch.no_grad():
        assert (resnet20(r.images[r.success]).argmax(1) != y[:12][r.success]).all()
    for t in r.params["transforms"]:
        assert abs(t["degrees"]) <= 30 and abs(t["dx"]) <= 3 and abs(t["dy"]) <= 3
