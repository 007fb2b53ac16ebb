"""Feature visualization by optimization: objectives, parametrizations, regularizers, and that it works."""
from __future__ import annotations

import pytest
import torch

from cnnlab import explain
from cnnlab.errors import CnnlabError
from cnnlab.explain.featvis import ImageParam, gaussian_blur, parse_regularizers


def test_channel_visualization_far_exceeds_real_photos(resnet20, cifar_test_small):
    obj = explain.channel("layer3", 10)
    real = explain.objective_value(resnet20, obj, cifar_test_small[0])
    v = explain.visualize(resnet20, obj, steps=40)
    assert v.image.shape == (3, 128, 128) and v.model_input.shape == (3, 32, 32)  # 4x canvas at 32 px
    assert 0 <= float(v.image.min()) and float(v.image.max()) <= 1
    assert v.final_value > 2 * float(real.max()) and v.final_value > 5 * float(real.mean())
    # the reported value is the objective of the returned image, measured independently
    again = explain.objective_value(resnet20, obj, v.model_input[None])
    assert abs(float(again[0]) - v.final_value) < 1e-3 * max(1.0, abs(v.final_value))


def test_class_logit_and_unregularized_run(resnet20):
    obj = explain.parse_objective(resnet20, "class:cat")
    v = explain.visualize(resnet20, obj, steps=15, regularizers="none")
    assert v.regularizers == {} and v.final_value > v.start_value + 10
    assert len(v.history) == 15


def test_weighted_combination_is_the_weighted_sum(resnet20, cifar_test_small):
    x = cifar_test_small[0][:4]
    combo = explain.parse_objective(resnet20, "layer2:5*2 + layer2:16")
    acts = {}
    h = resnet20.layer("layer2").register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
    with torch.no_grad():
        resnet20.eval()(x)
    h.remove()
    expected = 2 * acts["a"][:, 5].mean((1, 2)) + acts["a"][:, 16].mean((1, 2))
    torch.testing.assert_close(explain.objective_value(resnet20, combo, x), expected)
    same = 2 * explain.channel("layer2", 5) + explain.channel("layer2", 16)
    torch.testing.assert_close(explain.objective_value(resnet20, same, x), expected)
    d = explain.direction("layer2", torch.eye(32)[5])
    torch.testing.assert_close(explain.objective_value(resnet20, d, x), acts["a"][:, 5].mean((1, 2)))
    n = explain.parse_objective(resnet20, "layer2:5@3,4")
    torch.testing.assert_close(explain.objective_value(resnet20, n, x), acts["a"][:, 5, 3, 4])


@pytest.mark.parametrize("fft,decorrelate", [(False, False), (True, False), (True, True), (False, True)])
def test_parametrization_round_trip(fft, decorrelate):
    img = torch.rand(1, 3, 40, 40) * 0.9 + 0.05
    p = ImageParam(40, fft, decorrelate, start=img)
    torch.testing.assert_close(p(), img, rtol=1e-3, atol=1e-3)


def test_start_from_image_and_blur_regularizer(resnet20, cifar_test_small):
    x = cifar_test_small[0][:1]
    obj = explain.channel("layer1", 3)
    v = explain.visualize(resnet20, obj, steps=8, regularizers=["blur:2", "tv:0.1", "jitter"], start=x, canvas=32)
    expected = float(explain.objective_value(resnet20, obj, x)[0])
    assert abs(v.start_value - expected) < 0.05 * max(1.0, abs(expected))  # it started from the image
    assert v.final_value > v.start_value
    blurred = gaussian_blur(torch.rand(1, 3, 16, 16), 1.0)
    assert blurred.shape == (1, 3, 16, 16)


def test_works_at_224_px(lite0):
    obj = explain.parse_objective(lite0, "middle:3")
    v = explain.visualize(lite0, obj, steps=4)
    assert v.image.shape == (3, 224, 224) and v.final_value > v.start_value


def test_compare_regularization_figure(resnet20, tmp_path):
    plain, nice, path = explain.compare_regularization(resnet20, explain.channel("layer2", 1), steps=6,
                                                       path=tmp_path / "cmp.png")
    assert plain.regularizers == {} and "fft" in nice.regularizers and path.stat().st_size > 5000


def test_bad_objectives_and_regularizers(resnet20):
    with pytest.raises(CnnlabError, match="Channel 64 is out of range for layer 'layer3', which has 64 channels"):
        explain.visualize(resnet20, explain.channel("layer3", 64), steps=1)
    with pytest.raises(CnnlabError, match="Unknown class 'unicorn'"):
        explain.parse_objective(resnet20, "class:unicorn")
    with pytest.raises(CnnlabError, match="Unknown layer 'layer8'"):
        explain.parse_objective(resnet20, "layer8:1")
    with pytest.raises(CnnlabError, match="integer channel"):
        explain.parse_objective(resnet20, "layer2:five")
    with pytest.raises(CnnlabError, match="Unknown regularizer 'sharpen'"):
        parse_regularizers(["sharpen"], 224)
    assert parse_regularizers("classic", 32) == {"blur": 4.0, "tv": 0.05, "jitter": 2.0}


@pytest.mark.device
def test_visualization_optimizes_on_the_models_device(resnet20, device):
    v = explain.visualize(resnet20, explain.channel("layer3", 10), steps=12)
    assert resnet20.device == device and v.image.device.type == "cpu" and v.final_value > v.start_value
