"""Attributions: exact gradients, IG completeness, Grad-CAM localization, agreement with Captum, bad input."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnlab import explain
from cnnlab.errors import CnnlabError


@pytest.fixture(scope="module")
def cifar8(cifar_test_small):
    return cifar_test_small[0][:8]


def _plain_grad(model, x, targets, loss=False):
    """The input gradient computed independently, with plain autograd (no cnnlab code)."""
    model.eval()
    x = x.clone().requires_grad_(True)
    logits = model(x)
    s = F.cross_entropy(logits, targets, reduction="sum") if loss else logits.gather(1, targets[:, None]).sum()
    s.backward()
    model.zero_grad(set_to_none=True)
    return x.grad


def test_gradient_saliency_equals_autograd(resnet20, cifar8):
    a = explain.attribute(resnet20, cifar8, method="gradient")
    with torch.no_grad():
        pred = resnet20(cifar8).argmax(1)
    assert a.targets == pred.tolist()
    g = _plain_grad(resnet20, cifar8, pred)
    torch.testing.assert_close(a.attributions, g, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(a.maps, g.abs().amax(1), rtol=1e-4, atol=1e-6)
    assert all(p.requires_grad for p in resnet20.parameters()), "parameters must be restored"


def test_loss_saliency_and_named_target(resnet20, cifar8):
    a = explain.attribute(resnet20, cifar8, target="cat", method="gradient", score="loss")
    assert a.targets == [3] * 8 and a.labels == ["cat"] * 8
    g = _plain_grad(resnet20, cifar8, torch.full((8,), 3), loss=True)
    torch.testing.assert_close(a.attributions, g, rtol=1e-4, atol=1e-6)
    # what the figure and the summary say is the differentiated quantity: the cross-entropy, not the logit
    with torch.no_grad():
        loss = F.cross_entropy(resnet20(cifar8), torch.full((8,), 3), reduction="none")
    assert a.explained(0) == f"cat: loss {float(loss[0]):.2f}" and a.summary().startswith("gradient: cat: loss ")
    logit = explain.attribute(resnet20, cifar8[:1], target="cat", method="gradient")
    assert logit.explained(0) == f"cat: logit {float(resnet20(cifar8[:1])[0, 3].detach()):.2f}"


def test_gradient_saliency_lite0_and_training_mode_restored(lite0, chelsea):
    lite0.train()
    try:
        a = explain.attribute(lite0, chelsea, method="saliency")
        assert lite0.training
    finally:
        lite0.eval()
    assert lite0.labels[a.targets[0]] in ("tiger cat", "Egyptian cat", "tabby")
    g = _plain_grad(lite0, chelsea, torch.tensor(a.targets))
    torch.testing.assert_close(a.attributions, g, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_ig_completeness_within_one_percent(resnet20, cifar8):
    a = explain.attribute(resnet20, cifar8[:3], method="ig", steps=256)
    with torch.no_grad():
        t = torch.tensor(a.targets)
        f = resnet20(cifar8[:3]).gather(1, t[:, None])[:, 0] - resnet20(torch.zeros_like(cifar8[:3])).gather(1, t[:, None])[:, 0]
    total = a.attributions.flatten(1).sum(1)
    assert ((total - f).abs() / f.abs()).max() < 0.01
    assert max(a.extras["completeness_relative_error"]) < 0.01


def test_ig_chunking_does_not_change_the_result(resnet20, cifar8):
    a = explain.attribute(resnet20, cifar8[:3], method="ig", steps=10, batch_size=7)
    b = explain.attribute(resnet20, cifar8[:3], method="ig", steps=10, batch_size=64)
    torch.testing.assert_close(a.attributions, b.attributions, rtol=1e-4, atol=1e-6)


def test_smoothgrad_zero_noise_is_gradient_and_batching_invariant(resnet20, cifar8):
    g = explain.attribute(resnet20, cifar8[:2], method="gradient")
    s0 = explain.attribute(resnet20, cifar8[:2], method="smoothgrad", samples=3, sigma=0.0)
    torch.testing.assert_close(s0.attributions, g.attributions, rtol=1e-4, atol=1e-6)
    a = explain.attribute(resnet20, cifar8[:2], method="smoothgrad", samples=6, batch_size=6)
    assert not torch.allclose(a.attributions, g.attributions)
    assert a.maps.shape == (2, 32, 32) and (a.maps >= 0).all()


def test_gradcam_finds_the_cat_in_its_quadrant(lite0, chelsea):
    canvas = torch.full((1, 3, 224, 224), 0.5)
    canvas[..., 112:, :112] = F.interpolate(chelsea, size=(112, 112), mode="bilinear", antialias=True)
    a = explain.attribute(lite0, canvas, method="gradcam")
    assert "cat" in a.labels[0]
    assert a.layer == list(lite0.layers())[-1]
    mask = torch.zeros(224, 224, dtype=torch.bool)
    mask[112:, :112] = True
    assert float(explain.mass_fraction(a.maps, mask)) > 0.5  # a quarter of the image holds most of the mass


def test_gradcam_on_named_and_depth_layers(resnet20, cifar8):
    a = explain.attribute(resnet20, cifar8[:2], method="gradcam", layer="middle")
    assert a.layer == resnet20.resolve_layer_name("middle")
    assert a.attributions.shape == (2, 1, 32, 32) and (a.maps >= 0).all()


def test_guided_backprop_differs_from_plain_gradient(resnet20, cifar8):
    g = explain.attribute(resnet20, cifar8[:2], method="gradient")
    gb = explain.attribute(resnet20, cifar8[:2], method="guided")
    assert gb.extras["relu_modules"] > 10
    assert not torch.allclose(g.attributions, gb.attributions)
    # hooks are removed afterwards: the plain gradient is unchanged
    torch.testing.assert_close(explain.attribute(resnet20, cifar8[:2]).attributions, g.attributions)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_agrees_with_captum(resnet20, cifar8):
    captum = pytest.importorskip("captum.attr")
    x = cifar8[:4]
    resnet20.eval()
    ours = explain.attribute(resnet20, x, method="gradient")
    t = torch.tensor(ours.targets)
    theirs = captum.Saliency(resnet20).attribute(x.clone(), target=t, abs=True)
    torch.testing.assert_close(ours.maps, theirs.amax(1), rtol=1e-4, atol=1e-6)

    ig = explain.attribute(resnet20, x, method="ig", steps=32, integration="gausslegendre")
    cig = captum.IntegratedGradients(resnet20).attribute(x.clone(), target=t, n_steps=32, method="gausslegendre",
                                                         internal_batch_size=64)
    torch.testing.assert_close(ig.attributions, cig, rtol=1e-3, atol=1e-5)

    cam = explain.attribute(resnet20, x, method="gradcam", layer="layer3")
    ccam = captum.LayerGradCam(resnet20, resnet20.layer("layer3")).attribute(x.clone(), target=t,
                                                                            relu_attributions=True)
    torch.testing.assert_close(cam.layer_maps, ccam[:, 0], rtol=1e-4, atol=1e-6)
    up = captum.LayerAttribution.interpolate(ccam, (32, 32), interpolate_mode="bilinear")
    torch.testing.assert_close(cam.attributions, up, rtol=1e-4, atol=1e-5)

    gb = explain.attribute(resnet20, x, method="guided")
    cgb = captum.GuidedBackprop(resnet20).attribute(x.clone(), target=t)
    torch.testing.assert_close(gb.attributions, cgb, rtol=1e-4, atol=1e-6)

    dc = explain.attribute(resnet20, x, method="deconvnet")
    cdc = captum.Deconvolution(resnet20).attribute(x.clone(), target=t)
    torch.testing.assert_close(dc.attributions, cdc, rtol=1e-4, atol=1e-6)


def test_reused_module_is_detected_and_last_call_used():
    torchvision = pytest.importorskip("torchvision")
    from cnnlab.images import Preprocessing
    from cnnlab.models import Classifier
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    model = Classifier(net, [str(i) for i in range(10)], preprocessing=Preprocessing((64, 64), None),
                       feature_layers=["relu", "layer1", "layer4.1.relu"], head="fc").eval()
    x = torch.rand(2, 3, 64, 64)
    a = explain.attribute(model, x, method="gradcam", layer="layer4.1.relu")
    assert any("ran 2 times" in n for n in a.notes)  # BasicBlock calls its one ReLU twice
    # the last call is the block's output: Grad-CAM equals Grad-CAM on the block itself
    b = explain.attribute(model, x, method="gradcam", layer="layer4.1")
    torch.testing.assert_close(a.layer_maps, b.layer_maps, rtol=1e-4, atol=1e-6)
    fm = explain.feature_maps(model, x[:1], ["layer4.1.relu"], k=3)
    assert fm.notes and fm.shapes["layer4.1.relu"] == [512, 2, 2]


def test_bad_input_is_one_clear_error(resnet20, cifar8):
    with pytest.raises(CnnlabError, match="Unknown layer 'layer9'.*layer"):
        explain.attribute(resnet20, cifar8[:1], method="gradcam", layer="layer9")
    with pytest.raises(CnnlabError, match="no spatial map"):
        explain.attribute(resnet20, cifar8[:1], method="gradcam", layer="linear")
    with pytest.raises(CnnlabError, match="Unknown class 'kangaroo'"):
        explain.attribute(resnet20, cifar8[:1], target="kangaroo")
    with pytest.raises(CnnlabError, match="out of range"):
        explain.attribute(resnet20, cifar8[:1], target=10)
    with pytest.raises(CnnlabError, match="Unknown attribution method 'lime'"):
        explain.attribute(resnet20, cifar8[:1], method="lime")
    with pytest.raises(CnnlabError, match="does not apply"):
        explain.attribute(resnet20, cifar8[:1], method="gradient", steps=3)
    with pytest.raises(CnnlabError, match="3 targets were given for 1 images"):
        explain.attribute(resnet20, cifar8[:1], target=[1, 2, 3])


def test_figure_and_dict(resnet20, cifar8, tmp_path):
    import json
    a = explain.attribute(resnet20, cifar8[:2], method="gradcam")
    p = a.figure(tmp_path / "cam.png")
    assert p.stat().st_size > 1000
    ov = a.overlays()
    assert ov.shape == (2, 3, 32, 32) and 0 <= float(ov.min()) and float(ov.max()) <= 1
    d = json.loads(json.dumps(a.to_dict()))
    assert d["method"] == "gradcam" and len(d["peaks_yx"]) == 2
    assert d["probs"] == pytest.approx(resnet20(cifar8[:2]).detach().softmax(1).gather(1, torch.tensor(a.targets)[:, None])[:, 0].tolist(), abs=1e-6)
    g = explain.attribute(resnet20, cifar8[:2], method="gradient")
    fig = explain.attributions_figure([a, g])  # methods side by side: image, then one overlay per method
    assert len(fig.axes) == 2 * 3 and [ax.get_title() for ax in fig.axes[:3]] == [a.explained(0), a.title, g.title]


def test_one_pass_saliency_and_gradcam_equal_the_separate_methods(resnet20, cifar8):
    from cnnlab.explain.attribution import saliency_and_gradcam
    sal, cam, acts = saliency_and_gradcam(resnet20, cifar8[:3], capture_layers=["early"])
    torch.testing.assert_close(sal.attributions, explain.attribute(resnet20, cifar8[:3]).attributions)
    torch.testing.assert_close(cam.attributions, explain.attribute(resnet20, cifar8[:3], method="gradcam").attributions)
    assert acts["act"].shape == (3, 16, 32, 32)


def test_each_method_is_declared_once_and_read_by_the_cli_and_the_explorer():
    from click.testing import CliRunner

    from cnnlab.cli import main
    from cnnlab.explain.attribution import method_specs
    from cnnlab.serve.adapters import explain_methods
    assert explain_methods() == list(explain.METHODS) == list(explain.REGISTRY)
    assert explain.method_spec("Grad-CAM").name == "gradcam" and explain.method_spec("saliency").name == "gradient"
    assert explain.REGISTRY["ig"].options["steps"] == 50
    assert explain.REGISTRY["gradcam"].options == {"layer": None, "relu": True}
    assert explain.REGISTRY["smoothgrad"].pick({"samples": 3, "steps": 9, "sigma": None}) == {"samples": 3}
    assert [m.name for m in method_specs("all")] == list(explain.METHODS)
    assert [m.name for m in method_specs("ig, grad,gradient")] == ["ig", "gradient"]
    text = CliRunner().invoke(main, ["saliency", "--help"]).output
    assert all(m in text for m in explain.METHODS) and "Integrated Gradients steps [default: 50]" in text


@pytest.mark.device
@pytest.mark.parametrize("method", ["saliency", "gradcam", "integrated-gradients"])
def test_attributions_run_on_the_models_device_and_come_back_on_the_cpu(resnet20, cifar8, device, method):
    import copy
    got = explain.attribute(resnet20, cifar8, method=method)
    ref = explain.attribute(copy.deepcopy(resnet20).cpu(), cifar8, method=method)
    assert got.maps.device.type == "cpu" and list(got.targets) == list(ref.targets)
    assert torch.allclose(got.maps, ref.maps, atol=1e-3 if device.type == "cpu" else 2e-2)
