"""Every registered attack on plain torchvision and timm networks (random weights), handed over as bare
modules: the results equal those on the explicitly wrapped model, image for image."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.attacks import ATTACKS, attack

pytestmark = pytest.mark.usefixtures("one_thread")

#: a small budget per method, so that 15 attacks on a 64x64 image take seconds
QUICK = {"spatial": {"rotations": 3, "translations": 1}, "transfer": {"rounds": 1, "epochs": 1, "min_updates": 2},
         "deepfool": {"candidates": 3}, "deepfool-linf": {"candidates": 3}}


def _networks() -> dict[str, torch.nn.Module]:
    import torchvision
    torch.manual_seed(0)
    nets = {"torchvision resnet18": torchvision.models.resnet18(weights=None)}
    timm = pytest.importorskip("timm")
    nets["timm resnet10t"] = timm.create_model("resnet10t", pretrained=False)
    return nets


@pytest.fixture(scope="module")
def images(cifar_test_small):
    x, _ = cifar_test_small
    return F.interpolate(x[:2], size=(64, 64), mode="bilinear", align_corners=False).clamp(0, 1)


def _same(a: cnnlab.attacks.AttackResult, b: cnnlab.attacks.AttackResult) -> bool:
    return (torch.equal(a.images, b.images) and torch.equal(a.success, b.success) and torch.equal(a.steps, b.steps)
            and torch.equal(a.final_class, b.final_class) and a.passes == b.passes and a.labels == b.labels)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["torchvision resnet18", "timm resnet10t"])
def test_every_attack_runs_on_a_bare_module_as_on_the_wrapped_one(name, images):
    net = _networks()[name]
    wrapped = cnnlab.wrap(net, input_size=64)
    x = images[:1]
    for method, spec in ATTACKS.items():
        kw = dict(QUICK.get(method, {}))
        if spec.kind == "substitute":
            kw["seeds"] = images  # the substitute learns from at least two images
        if spec.takes("steps"):
            kw["steps"] = 8 if spec.kind == "query-black-box" else 2
        if spec.target == "needs":
            kw["target"] = "least-likely"
        bare = attack(net, x, method, **kw)
        assert isinstance(bare.images, torch.Tensor) and bare.images.shape == x.shape, method
        assert _same(bare, attack(wrapped, x, method, **kw)), method
        assert len(bare.labels) == 1000 and bare.labels[0] == wrapped.labels[0]
    assert net.training  # the bare module's mode is restored
