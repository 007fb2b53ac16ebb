"""The CIFAR ResNets: the published akamaster weights, recognized by their file name."""
from __future__ import annotations

import torch

import cnnlab
from cnnlab.models.cifar_resnet import WEIGHTS
from cnnlab.models.labels import CIFAR10
from cnnlab.models.normalization import IMAGENET_MEAN

def test_cifar_resnet_from_akamaster_file(resnet20, cifar_lossless):
    x, y = cifar_lossless
    acc = float((resnet20.probabilities(x).argmax(1) == y).float().mean())
    assert acc > 0.97  # the manifest: 100% on these 200 lossless training images


def test_published_file_brings_its_configuration(resnet20, tmp_path):
    assert resnet20.labels == CIFAR10 and resnet20.input_size == (32, 32)
    assert resnet20.normalization["mean"] == torch.tensor(IMAGENET_MEAN).tolist()
    assert WEIGHTS[20].filename == "resnet20-12fca82f.th" and WEIGHTS[20].dataset == "cifar10"
    assert cnnlab.models.get_entry("cifar_resnet20").weights is WEIGHTS[20]
    # the same tensors under another name are just a state dict: no names, no normalization guessed
    other = tmp_path / "mine.pt"
    torch.save({"state_dict": resnet20.net.state_dict()}, other)
    plain = cnnlab.create_model("cifar_resnet20", weights=other)
    assert plain.labels == [f"class {i}" for i in range(10)] and plain.normalization["mean"][0] != IMAGENET_MEAN[0]
    # a checkpoint carries its names
    named = tmp_path / "named.pt"
    torch.save({"cnnlab": resnet20.checkpoint_meta(), "state_dict": resnet20.net.state_dict()}, named)
    again = cnnlab.create_model(weights=named)
    assert again.labels == CIFAR10 and again.normalization == resnet20.normalization
