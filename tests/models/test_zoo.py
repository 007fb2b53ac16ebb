"""The torchvision family: its configuration table states exactly what torchvision's weights say."""
from __future__ import annotations

import pytest
import torch

import cnnlab
from cnnlab.models.zoo import TORCHVISION_MODELS


@pytest.mark.parametrize("name", sorted(TORCHVISION_MODELS))
def test_table_matches_torchvision_weights(name):
    import torchvision.models as tvm
    published = tvm.get_model_weights(name).DEFAULT
    t = published.transforms()
    w = cnnlab.models.get_entry(name).weights
    assert w.url == published.url and w.dataset == "imagenet"
    assert w.input_size == (t.crop_size[0], t.crop_size[0]) and w.resize == t.resize_size[0]
    assert w.interpolation == t.interpolation.value
    assert w.mean == tuple(t.mean) and w.std == tuple(t.std)
    assert len(published.meta["categories"]) == w.num_classes == 1000


def test_squeezenet_has_no_linear_head_but_takes_new_classes():
    m = cnnlab.create_model("squeezenet1_1", num_classes=5)
    assert m.head_name is None and m.num_classes == 5 and m.labels[4] == "class 4"
    assert m(torch.rand(1, 3, 64, 64)).shape == (1, 5)
