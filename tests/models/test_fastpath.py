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


def _input_gradient(model, x, fast):
    """d(sum of cross-entropies w.r.t. each image's top class)/dx inside model.frozen(fast=...)."""
    with model.frozen(fast=fast), torch.enable_grad():
        xx = x.detach().clone().requires_grad_(True)
        logits = model(xx)
        loss = torch.nn.functional.cross_entropy(logits, logits.argmax(1).detach(), reduction="sum")
        return torch.autograd.grad(loss, xx)[0], logits.detach()


@pytest.mark.parametrize("name", ["resnet20", "lite0"])
def test_frozen_fast_gives_the_same_input_gradients(name, request, cifar_lossless):
    """Folding BN changes only the order of float operations: in float64 the twin's input gradients equal
    the real network's to 1e-5 relative (in float32 a pre-activation within rounding of 0 can fall on the
    other side of a ReLU, and that image's gradient then differs there)."""
    import copy
    model = copy.deepcopy(request.getfixturevalue(name)).double()
    model.__dict__.pop("_twin", None)  # a twin the shared fixture built earlier
    if name == "lite0":
        photos = [cnnlab.bundled_photo(n) for n in ("chelsea", "coffee")]
        x = cnnlab.load_images(photos, model).double()
    else:
        x = cifar_lossless[0][:8].double()
    plain, plain_logits = _input_gradient(model, x, fast=False)
    assert "_twin" not in model.__dict__
    model._inference_fn(16)  # build the twin now (a forward builds it for 16 images or more)
    fast, fast_logits = _input_gradient(model, x, fast=True)
    twin = model.__dict__["_twin"][1]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in twin.modules())
    scale = plain.abs().amax()
    assert float((fast - plain).abs().amax() / scale) < 1e-5
    assert torch.allclose(fast_logits, plain_logits, atol=1e-8)
    seen = []  # a hooked module must see the real forward, twin or not
    handle = model.layer("late").register_forward_hook(lambda m, i, o: seen.append(o.shape))
    hooked, _ = _input_gradient(model, x, fast=True)
    handle.remove()
    assert seen and torch.allclose(hooked, plain, atol=1e-12 * float(scale))
    assert not model.__dict__.get("_fast_forward")  # the flag does not outlive the block


def test_twin_built_for_inference_also_takes_gradients(resnet20, cifar_lossless):
    import copy
    model = copy.deepcopy(resnet20)
    x = cifar_lossless[0][:16]
    model.probabilities(x)  # builds the twin under torch.inference_mode
    grad, _ = _input_gradient(model, x, fast=True)
    plain, _ = _input_gradient(model, x, fast=False)
    assert grad.shape == x.shape and float(((grad - plain).flatten(1).norm(dim=1) /
                                            plain.flatten(1).norm(dim=1)).median()) < 1e-4
