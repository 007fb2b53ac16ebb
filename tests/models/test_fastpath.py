"""The fast inference twin (BatchNorm folded, channels_last): the same numbers as the plain forward."""
from __future__ import annotations

import pytest
import torch

import cnnlab
from cnnlab.errors import CnnlabError


def test_fast_inference_twin_matches_plain_forward(lite0):
    photos = [cnnlab.bundled_photo(n) for n in ("chelsea", "coffee", "rocket", "astronaut")] * 4
    x = cnnlab.load_images(photos, lite0)
    with torch.inference_mode():
        plain = torch.softmax(lite0(x), 1)
    fast = lite0.probabilities(x)  # 16 images: runs the folded channels_last twin
    assert "_twin" in lite0.__dict__
    twin = lite0.__dict__["_twin"][1]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in twin.modules())  # BN really folded
    assert torch.allclose(fast, plain, atol=1e-5)


def test_twin_follows_weight_changes_and_hooks(resnet20, cifar_lossless):
    import copy
    model = copy.deepcopy(resnet20)
    x = cifar_lossless[0][:32]
    before = model.probabilities(x)
    with torch.no_grad():
        model.net.linear.bias[3] += 5.0  # in place, as an optimizer step would
        expected = torch.softmax(model(x), 1)
    after = model.probabilities(x)
    assert torch.allclose(after, expected, atol=1e-5) and not torch.allclose(after, before, atol=1e-3)
    seen = []
    handle = model.layer("layer2").register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model.probabilities(x)
    handle.remove()
    assert seen, "a hooked model must run its own modules, not the twin"


def test_probabilities_restores_training_mode(resnet20, cifar_lossless):
    import copy
    model = copy.deepcopy(resnet20).train()
    model.probabilities(cifar_lossless[0][:4])
    assert model.training
    with pytest.raises(CnnlabError, match="takes images as"):
        model.probabilities(torch.rand(2, 32, 32))


def test_model_built_under_inference_mode_still_predicts():
    with torch.inference_mode():  # its tensors have no version counter: no twin, the plain forward
        model = cnnlab.create_model("cifar_resnet20")
    x = torch.rand(20, 3, 32, 32)
    probs = model.probabilities(x)
    assert probs.shape == (20, 10) and torch.allclose(probs.sum(1), torch.ones(20), atol=1e-5)
    assert "_twin" not in model.__dict__


def test_twin_of_torchvision_net_matches():
    model = cnnlab.create_model("mobilenet_v3_small")  # SE blocks, hardswish, BN after most convs
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for m in model.modules():  # non-trivial BN statistics, so folding has something to fold
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    x = torch.rand(16, 3, 96, 96)
    with torch.inference_mode():
        plain = torch.softmax(model.eval()(x), 1)
    assert torch.allclose(model.probabilities(x), plain, atol=1e-5)
    twin = model.__dict__["_twin"][1]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in twin.modules()) == 0
