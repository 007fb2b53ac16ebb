"""The adversarial patch on the real pretrained CIFAR-10 ResNet-20: it works on images it never saw."""
from __future__ import annotations

import json

import pytest
import torch

from cnnlab.attacks import adversarial_patch, patch_from_data
from cnnlab.attacks.patch import patch_success
from cnnlab.errors import CnnlabError
from tests.conftest import shared

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
def test_patch_works_on_images_it_never_saw(resnet20, cifar_test_small):
    x, y = cifar_test_small
    target = 0  # airplane
    x = x[y != target]
    train, held = x[:48], x[48:96]
    res = adversarial_patch(resnet20, train, "airplane", x_test=held, area=0.15, steps=60, seed=0)
    assert res.target == 0 and res.patch.shape == (3, 12, 12)
    assert res.patch.min() >= 0 and res.patch.max() <= 1
    noise = torch.rand_like(res.patch)
    baseline = patch_success(resnet20, noise, held, target)
    assert res.heldout_success >= baseline + 0.2
    assert res.heldout_success >= 0.5 * res.train_success  # it generalizes, not memorizes
    d = res.to_dict()
    assert d["heldout_n"] == 48 and 0 <= d["heldout_success"] <= 1


def test_patch_from_data_splits_and_saves(resnet20, cifar_test_small, tmp_path):
    res = patch_from_data(resnet20, shared("cifar10_test.npz"), "airplane", limit=24, seed=0, area=0.15, steps=2)
    # the airplanes of the 24-image subset are dropped; half of the rest optimizes, half tests
    assert res.params["train_n"] + res.heldout_n <= 24 and res.heldout_n - res.params["train_n"] in (0, 1)
    assert res.data == "cifar10_test.npz" and res.model_name == "cifar_resnet20"
    doc = res.save(tmp_path)
    assert json.loads((tmp_path / "patch.json").read_text())["target"]["index"] == 0
    assert (tmp_path / "patch.png").exists() and (tmp_path / "figures" / "patch.png").exists()
    assert doc["json"] == str(tmp_path / "patch.json")
    x, y = cifar_test_small
    with pytest.raises(CnnlabError, match="fewer than 4 images"):
        patch_from_data(resnet20, (x[:3], y[:3]), "airplane", steps=1)
