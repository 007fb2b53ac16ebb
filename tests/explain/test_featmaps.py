"""Feature maps (seed 001 1.2), first-layer filters (001 3.1) and softmax-regression templates (002)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain
from cnnlab.errors import CnnlabError
from cnnlab.images import Preprocessing
from cnnlab.models import Classifier


def test_feature_maps_early_middle_late(lite0, chelsea, tmp_path):
    fm = explain.feature_maps(lite0, chelsea, ["early", "middle", "late"], k=5)
    names = list(lite0.layers())
    assert fm.layers == [names[0], names[len(names) // 2], names[-1]]
    # an independent capture of the same layers
    acts = {}
    hooks = [lite0.layer(n).register_forward_hook(lambda m, i, o, n=n: acts.__setitem__(n, o)) for n in fm.layers]
    with torch.no_grad():
        lite0(chelsea)
    for h in hooks:
        h.remove()
    for n in fm.layers:
        a = acts[n][0]
        means = a.mean((1, 2))
        assert fm.channels[n] == means.topk(5).indices.tolist()  # the five most active, strongest first
        m = fm.maps[n]
        assert m.shape == (5, *a.shape[1:])
        assert torch.allclose(m.amin((1, 2)), torch.zeros(5)) and torch.allclose(m.amax((1, 2)), torch.ones(5))
        c = fm.channels[n][0]
        expected = (a[c] - a[c].min()) / (a[c].max() - a[c].min())
        torch.testing.assert_close(m[0], expected)
    assert fm.figure(tmp_path / "fm.png").stat().st_size > 5000
    grid = fm.image_grid(64)
    assert grid.shape[0] == 3 and grid.shape[1] > 3 * 64


def test_feature_maps_given_channels_and_errors(resnet20, cifar_test_small):
    x = cifar_test_small[0][:1]
    fm = explain.feature_maps(resnet20, x, ["layer1", "layer3"], channels=[0, 7])
    assert fm.channels == {"layer1": [0, 7], "layer3": [0, 7]}
    with pytest.raises(CnnlabError, match="Channel 99 is out of range for layer 'layer1', which has 16 channels"):
        explain.feature_maps(resnet20, x, ["layer1"], channels=[99])
    with pytest.raises(CnnlabError, match="Unknown layer 'layer7'"):
        explain.feature_maps(resnet20, x, ["layer7"])
    with pytest.raises(CnnlabError, match="not a \\[C,H,W\\] feature map"):
        explain.feature_maps(resnet20, x, ["linear"])
    with pytest.raises(CnnlabError, match="one image"):
        explain.feature_maps(resnet20, cifar_test_small[0][:2])


def _seed_cnn() -> Classifier:
    """The seed exercise's small CNN: 64 11x11 filters, 2x2 max pool, two 3x3 conv layers, average pool."""
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
