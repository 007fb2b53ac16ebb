"""Feature maps: the most active channels of early/middle/late layers, each stretched to [0,1]."""
from __future__ import annotations

import pytest
import torch

from cnnlab import explain
from cnnlab.errors import CnnlabError


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
