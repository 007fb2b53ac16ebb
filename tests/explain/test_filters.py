"""First-layer filters as one titled RGB grid, and a linear model's weights as class templates."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain
from cnnlab.errors import CnnlabError
from cnnlab.images import Preprocessing
from cnnlab.models import Classifier


def _seed_cnn() -> Classifier:
    """A small CNN with 64 11x11 filters, 2x2 max pool, two 3x3 conv layers, average pool."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 64, 11, padding=5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(64, 128, 3, padding=1),
                        nn.ReLU(), nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(128, 10))
    return Classifier(net, [str(i) for i in range(10)], preprocessing=Preprocessing((32, 32), None),
                      feature_layers=["1", "4", "6"], head="9")


def test_first_layer_filters_as_4_by_16_rgb_array(tmp_path):
    model = _seed_cnn()
    f = explain.filters(model)
    assert f.layer == "0" and f.kind == "conv" and f.filters.shape == (64, 3, 11, 11)
    w = model.net[0].weight.detach()
    for i in (0, 17, 63):  # each filter stretched on its own: subtract min, divide by the new max
        expected = (w[i] - w[i].min()) / (w[i] - w[i].min()).max()
        torch.testing.assert_close(f.filters[i], expected)
    img = f.image(min_size=11, ncols=None)
    pad = 1
    assert img.shape == (3, 4 * (11 + pad) + pad, 16 * (11 + pad) + pad)  # 4 rows x 16 columns
    assert f.figure(tmp_path / "f.png").exists()
    with pytest.raises(CnnlabError, match="64 input channels"):
        explain.filters(model, "3")


def test_softmax_regression_templates(resnet20):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    labels = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    model = Classifier(net, labels, preprocessing=Preprocessing((32, 32), None))
    f = explain.filters(model)
    assert f.kind == "templates" and f.filters.shape == (10, 3, 32, 32) and f.titles[3] == "cat"
    w = net[1].weight.detach().view(10, 3, 32, 32)
    torch.testing.assert_close(f.filters[3], (w[3] - w[3].min()) / (w[3].max() - w[3].min()))
    with pytest.raises(CnnlabError, match="16 input channels"):
        explain.filters(resnet20, "layer1.0.conv1")


def test_one_titled_grid_serves_the_command_and_a_training_run(tmp_path):
    import numpy as np
    from PIL import Image

    from cnnlab.runs import first_conv_filters, save_filters
    model = _seed_cnn()
    f = explain.filters(model)
    fig = f.figure()
    assert fig._suptitle.get_text() == "64 filters of layer '0' (11x11, each contrast-stretched)"
    run_png = save_filters(model.net, tmp_path / "run.png")
    cmd_png = f.figure(tmp_path / "cmd.png")
    assert np.array_equal(np.asarray(Image.open(run_png)), np.asarray(Image.open(cmd_png)))
    torch.testing.assert_close(first_conv_filters(model.net), model.net[0].weight.detach())
