"""Fooling images on the real pretrained CIFAR-10 ResNet-20: >= 99% confidence, by gradient or by evolution."""
from __future__ import annotations

import json

import pytest
import torch

from cnnlab.attacks import fooling_evolve, fooling_gradient, fooling_images
from cnnlab.errors import CnnlabError

from .conftest import NoGradient

pytestmark = pytest.mark.usefixtures("one_thread")


def test_fooling_images_by_gradient_reach_99_percent(resnet20):
    res = fooling_gradient(resnet20, ["cat", 9], seed=0)
    assert res.targets == [3, 9]
    with torch.no_grad():
        p = torch.softmax(resnet20(res.images), 1)
    assert (p[torch.arange(2), torch.tensor([3, 9])] >= 0.99).all()
    assert res.success == [True, True]


@pytest.mark.slow
def test_fooling_images_by_evolution_use_outputs_only(resnet20):
    with NoGradient(resnet20) as guard:
        res = fooling_evolve(resnet20, ["bird", "ship"], generations=150, seed=0)
    with torch.no_grad():
        p = torch.softmax(resnet20(res.images), 1)
    assert (p[torch.arange(2), torch.tensor([2, 8])] >= 0.99).all()
    assert guard.calls * 32 >= sum(res.calls) - 64  # each query a real batch of 32
    assert res.images.std() > 0.05  # not a flat image


def test_fooling_images_for_all_classes_save_their_files(resnet20, tmp_path):
    res = fooling_images(resnet20, ["all"], "gradient", steps=1, seed=0)
    assert res.targets == list(range(10)) and res.calls_unit == "gradient steps"
    doc = res.save(tmp_path)
    assert json.loads((tmp_path / "fool.json").read_text())["model"] == "cifar_resnet20"
    assert (tmp_path / "fool_3_cat.png").exists() and (tmp_path / "figures" / "fooling.png").exists()
    assert [row["png"] for row in doc["images"]][0].endswith("fool_0_airplane.png")
    with pytest.raises(CnnlabError, match="choose one of: gradient, evolve"):
        fooling_images(resnet20, "cat", "annealing")
