"""Most-activating inputs: the scan keeps exactly the top-k, and the patch is the unit's receptive field."""
from __future__ import annotations

import pytest
import torch

from cnnlab import explain
from cnnlab.data.base import ImageArrays
from cnnlab.errors import CnnlabError


def test_top_k_matches_a_brute_force_scan(resnet20, cifar_test_small, tmp_path):
    x = cifar_test_small[0]
    ta = explain.top_activations(resnet20, x, "layer2", 5, k=6, batch_size=50)
    acts = {}
    h = resnet20.layer("layer2").register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
    with torch.no_grad():
        resnet20.eval()(x)
    h.remove()
    per_image = acts["a"][:, 5].flatten(1).amax(1)
    top = per_image.topk(6)
    assert ta.indices == top.indices.tolist() and ta.scanned == len(x)
    torch.testing.assert_close(torch.tensor(ta.values), top.values)
    torch.testing.assert_close(ta.images, x[top.indices])
    for (y, xx), i in zip(ta.positions, ta.indices):
        assert acts["a"][i, 5, y, xx] == per_image[i]
    assert ta.figure(tmp_path / "top.png").stat().st_size > 5000


def test_patch_is_the_receptive_field(resnet20, cifar_test_small):
    # layer1 of ResNet-20 (conv1 + 3 blocks of two 3x3 convs) sees 15x15 pixels: 1 + 7 * 2 = 15
    x = cifar_test_small[0][:64]
    ta = explain.top_activations(resnet20, x, "layer1", 2, k=4)
    for (t, l, b, r), (y, xx) in zip(ta.boxes, ta.positions):
        assert b - t <= 15 and r - l <= 15
        assert t <= y < b and l <= xx < r
        assert (t == max(0, y - 7)) and (b == min(32, y + 8))  # the whole field is live on real images
    assert all(p.shape[0] == 3 for p in ta.patches())


def test_scans_image_arrays_and_files(lite0, resnet20, cifar_test_small):
    x, y = cifar_test_small
    arrays = ImageArrays((x[:40] * 255).round().to(torch.uint8), y[:40], [str(i) for i in range(10)])
    ta = explain.top_activations(resnet20, arrays, "late", 0, k=3, reduce="mean")
    assert ta.layer == "layer3" and ta.scanned == 40 and len(ta.indices) == 3
    from cnnlab.images import bundled_photos
    paths = [str(p) for p in list(bundled_photos().values())[:3]]
    tb = explain.top_activations(lite0, paths, "early", 1, k=2)
    assert tb.scanned == 3 and tb.images.shape == (2, 3, 224, 224)
    with pytest.raises(CnnlabError, match="Channel 40 is out of range"):
        explain.top_activations(resnet20, x[:8], "layer1", 40)


@pytest.mark.device
def test_the_scan_runs_on_the_models_device(resnet20, cifar_test_small, device):
    import copy
    x = cifar_test_small[0][:64]
    ta = explain.top_activations(resnet20, x, "layer2", 5, k=4, batch_size=20)
    ref = explain.top_activations(copy.deepcopy(resnet20).cpu(), x, "layer2", 5, k=4, batch_size=20)
    assert resnet20.device == device and ta.images.device.type == "cpu"
    assert len(set(ta.indices) & set(ref.indices)) >= 3 and ta.values == pytest.approx(ref.values, rel=1e-2)
