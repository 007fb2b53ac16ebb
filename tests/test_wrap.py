"""cnnlab.wrap: any nn.Module as a Classifier, with the housekeeping every verb relies on."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import cnnlab
from cnnlab.devices import resolve_device
from cnnlab.errors import CnnlabError
from cnnlab.models import as_classifier


class TinyNet(nn.Module):
    """A user's own 10-class CIFAR-sized net with a fixed-size linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).flatten(1))


def test_torchvision_resnet_gets_imagenet_defaults_and_its_logits_unchanged():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    model = cnnlab.wrap(net)
    assert model.num_classes == 1000 and model.labels[340] == "zebra"
    assert model.input_size == (224, 224) and model.preprocessing.resize == 256
    assert list(model.layers()) == ["relu", "layer1", "layer2", "layer3", "layer4"] and model.head_name == "fc"
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net((x - mean) / std))
    assert model.features(x).shape == (2, 512)


def test_own_module_gets_its_size_by_probing_and_honest_class_names():
    model = cnnlab.wrap(TinyNet())
    assert model.input_size == (32, 32) and model.preprocessing.resize is None
    assert model.labels == [f"class {i}" for i in range(10)]
    assert model.normalization == {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    assert not model.net.relu.inplace  # hooks (feature maps, Grad-CAM) need out-of-place activations
    named = cnnlab.wrap(TinyNet(), labels=list("abcdefghij"), normalize="cifar10", input_size=32)
    assert named.labels[3] == "d" and named.normalization["mean"][0] == pytest.approx(0.4914)


def test_wrapping_and_a_verb_leave_the_module_in_its_mode():
    net = TinyNet().eval()
    model = cnnlab.wrap(net)
    assert not model.training
    cnnlab.attacks.fgsm(net, torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert not net.training and not as_classifier(net).training


def test_as_classifier_wraps_a_module_once_and_keeps_a_classifier():
    net = TinyNet()
    assert as_classifier(net) is as_classifier(net)
    model = cnnlab.wrap(net)
    assert as_classifier(model) is model


def test_wrap_refuses_what_is_not_an_rgb_classifier():
    with pytest.raises(CnnlabError, match="3 input channels"):
        cnnlab.wrap(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(10)))
    with pytest.raises(CnnlabError, match="labels were given"):
        cnnlab.wrap(TinyNet(), labels=["a", "b"])
    with pytest.raises(CnnlabError, match="nn.Module"):
        cnnlab.wrap("resnet18")


def test_frozen_restores_mode_and_each_parameter_flag():
    model = cnnlab.wrap(TinyNet()).train()
    model.net.conv.bias.requires_grad_(False)
    with model.frozen():
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.training and model.net.conv.weight.requires_grad and not model.net.conv.bias.requires_grad
    with model.frozen(eval_mode=False):
        assert model.training


def test_targets_by_name_index_word_and_per_image():
    model = cnnlab.wrap(TinyNet(), labels=list("abcdefghij"))
    scores = torch.tensor([[0.1, 0.7, 0.2, 0, 0, 0, 0, 0, 0, -1.0], [0.9, 0, 0, 0, 0.1, 0, 0, 0, 0, 0]])
    assert model.targets(None, scores).tolist() == [1, 0]
    assert model.targets("least-likely", scores).tolist() == [9, 1]
    assert model.targets("c", scores).tolist() == [2, 2]
    assert model.targets(["c", 4], scores).tolist() == [2, 4]
    assert model.targets(torch.tensor([7]), scores).tolist() == [7, 7]
    rand = model.targets("random", scores[:1].expand(200, -1).clone(), torch.Generator().manual_seed(0))
    assert not (rand == 1).any() and len(set(rand.tolist())) == 9  # every class but the predicted one
    with pytest.raises(CnnlabError, match="3 targets were given for 2 images"):
        model.targets([1, 2, 3], scores)
    with pytest.raises(CnnlabError, match="out of range"):
        model.targets(10, scores)


def test_check_images_moves_to_the_device_and_names_what_is_wrong():
    model = cnnlab.wrap(TinyNet())
    x = model.check_images(torch.rand(3, 32, 32, dtype=torch.float64))
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32 and x.device == model.device
    for bad, phrase in [(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "divide uint8"),
                        (torch.rand(1, 1, 32, 32), r"\[N,3,H,W\]"), (torch.rand(1, 3, 32, 32) * 2, r"in \[0,1\]"),
                        ([0.5], "float tensor")]:
        with pytest.raises(CnnlabError, match=phrase):
            model.check_images(bad)


def test_device_names_resolve_or_fail_in_one_sentence():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(CnnlabError, match="needs a CUDA GPU.*available: cpu"):
            resolve_device("cuda:3")
    with pytest.raises(CnnlabError, match="unknown"):
        resolve_device("tpu")
