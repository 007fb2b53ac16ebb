"""Every explain verb on a plain torchvision or timm module, with no Classifier built by the user: the
results equal those on the explicitly wrapped model (`cnnlab.wrap(net)`, what the verbs do themselves)."""
from __future__ import annotations

import pytest
import torch
import torchvision

import cnnlab
from cnnlab import explain

timm = pytest.importorskip("timm")


def _resnet18() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None)


def _timm_resnet10t() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("resnet10t", pretrained=False)


@pytest.fixture(scope="module", params=[_resnet18, _timm_resnet10t], ids=["torchvision", "timm"])
def net(request):
    return request.param()


@pytest.fixture(scope="module")
def images():
    """Two real photos at 64 px: the networks pool adaptively, so any size above a few pixels runs."""
    paths = [cnnlab.bundled_photo("chelsea"), cnnlab.bundled_photo("coffee")]
    return cnnlab.load_images(paths, cnnlab.images.Preprocessing((64, 64), 73))


OPTIONS = {"smoothgrad": {"samples": 2}, "ig": {"steps": 4}, "gradcam": {"layer": "middle"}}


@pytest.mark.parametrize("method", explain.METHODS)
def test_every_attribution_method_on_a_bare_module_equals_the_wrapped_one(net, images, method):
    bare = explain.attribute(net, images, method=method, **OPTIONS.get(method, {}))
    wrapped = explain.attribute(cnnlab.wrap(net), images, method=method, **OPTIONS.get(method, {}))
    assert bare.method == method and len(bare.labels) == 2 and bare.maps.shape[0] == 2
    assert bare.targets == wrapped.targets and bare.labels == wrapped.labels
    torch.testing.assert_close(bare.attributions, wrapped.attributions, rtol=0, atol=0)
    assert bare.attributions.abs().sum() > 0


def test_one_pass_saliency_and_gradcam_on_a_bare_module(net, images):
    sal, cam, acts = explain.saliency_and_gradcam(net, images, capture_layers=["early"])
    model = cnnlab.wrap(net)
    torch.testing.assert_close(sal.attributions, explain.attribute(model, images).attributions)
    torch.testing.assert_close(cam.attributions, explain.attribute(model, images, method="gradcam").attributions)
    assert list(acts) == [next(iter(model.layers()))]


def test_feature_maps_filters_and_boxes_on_a_bare_module(net, images, tmp_path):
    bare = explain.feature_maps(net, images[:1], k=3)
    wrapped = explain.feature_maps(cnnlab.wrap(net), images[:1], k=3)
    assert bare.layers == wrapped.layers and bare.channels == wrapped.channels and len(bare.layers) == 3
    for name in bare.layers:
        torch.testing.assert_close(bare.maps[name], wrapped.maps[name], rtol=0, atol=0)
    f = explain.filters(net)
    torch.testing.assert_close(f.filters, explain.filters(cnnlab.wrap(net)).filters, rtol=0, atol=0)
    assert f.filters.shape[1] == 3 and f.figure(tmp_path / "filters.png").stat().st_size > 2000
    boxes = explain.receptive_boxes(net, images, "early", 0, [(5, 5), (10, 3)])
    assert boxes == explain.receptive_boxes(cnnlab.wrap(net), images, "early", 0, [(5, 5), (10, 3)])


def test_feature_visualization_and_top_activations_on_a_bare_module(net, images):
    obj = explain.parse_objective(net, "middle:3")
    bare = explain.visualize(net, obj, steps=2, regularizers="none", canvas=48)
    wrapped = explain.visualize(cnnlab.wrap(net), obj, steps=2, regularizers="none", canvas=48)
    torch.testing.assert_close(bare.image, wrapped.image, rtol=0, atol=0)
    assert bare.history == wrapped.history
    torch.testing.assert_close(explain.objective_value(net, obj, images), explain.objective_value(
        cnnlab.wrap(net), obj, images), rtol=0, atol=0)
    ta = explain.top_activations(net, images, "middle", 1, k=1)
    tb = explain.top_activations(cnnlab.wrap(net), images, "middle", 1, k=1)
    assert (ta.indices, ta.values, ta.boxes) == (tb.indices, tb.values, tb.boxes) and ta.scanned == 2


def test_timm_stage_containers_become_early_to_late_layers():
    from cnnlab.models.wrap import guess_layers
    torch.manual_seed(0)
    feats, head = guess_layers(timm.create_model("efficientnet_b0", pretrained=False))
    assert feats == ["conv_stem", *[f"blocks.{i}" for i in range(7)], "conv_head"] and head == "classifier"
    feats, _ = guess_layers(timm.create_model("convnext_atto", pretrained=False))
    assert feats == ["stem", "stages.0", "stages.1", "stages.2", "stages.3"]
    # torchvision's stay as they were
    assert guess_layers(torchvision.models.mnasnet0_5(weights=None)) == (["layers"], "classifier.1")


def test_figures_leave_matplotlib_state_alone(net, images, tmp_path):
    import matplotlib
    before = matplotlib.get_backend()
    v = explain.visualize(net, explain.channel("early", 0), steps=1, regularizers="none", canvas=32)
    assert v.figure(tmp_path / "v.png").stat().st_size > 2000
    assert matplotlib.get_backend() == before
