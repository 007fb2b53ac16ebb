"""The registry: names, listing, building torchvision nets with new heads, published files recognized."""
from __future__ import annotations

import pytest
import torch

import cnnlab
from cnnlab.errors import CnnlabError


def test_registry_unknown_name_suggests():
    with pytest.raises(CnnlabError, match="did you mean.*efficientnet_lite0"):
        cnnlab.create_model("efficientnet_lite")


def test_torchvision_arch_without_weights_and_new_head():
    m = cnnlab.create_model("resnet18", num_classes=7)
    assert m.num_classes == 7 and m.head().out_features == 7
    assert list(m.layers())[:2] == ["relu", "layer1"]
    x = torch.rand(2, 3, 64, 64)
    assert m(x).shape == (2, 7) and m.features(x).shape == (2, 512)


def test_models_listing_reports_offline_weights():
    entries = {e.name: e for e in cnnlab.list_models()}
    assert entries["efficientnet_lite0"].weights_available_offline()
    assert {"alexnet", "vgg16", "googlenet", "resnet50", "mobilenet_v3_small", "cifar_resnet20"} <= set(entries)


def test_no_published_weights_is_one_sentence():
    with pytest.raises(CnnlabError, match="no published weights.*cnnlab train --model mlp"):
        cnnlab.create_model("mlp", pretrained=True)


def test_entries_describe_weights_arguments_and_recipe():
    entry = cnnlab.models.get_entry("course_resnet").to_dict()
    assert entry["classes"] == 100 and entry["pretrained"] == "none" and entry["weights"] is None
    assert entry["cfg"]["input_size"] == [32, 32] and entry["cfg"]["classifier"] == "fc"
    assert [a["name"] for a in entry["arguments"]][:2] == ["strides", "bn"] and entry["recipe"]["optimizer"] == "adam"
    lite = cnnlab.models.get_entry("efficientnet_lite0").to_dict()
    assert lite["pretrained"] == "bundled" and lite["weights"]["dataset"] == "imagenet" and lite["init"] is None


def test_published_torchvision_file_recognized_by_name(tmp_path):
    """A local copy of torchvision's MobileNetV2 file brings the weights' preprocessing (resize 232)."""
    torch.manual_seed(0)
    src = cnnlab.create_model("mobilenet_v2")
    assert src.preprocessing.resize == 256  # untrained: the plain ImageNet policy
    path = tmp_path / "mobilenet_v2-7ebf99e0.pth"
    torch.save(src.net.state_dict(), path)
    m = cnnlab.create_model("mobilenet_v2", weights=path)
    assert m.preprocessing.resize == 232 and m.labels[340] == "zebra" and m.weights_name == str(path)


def test_replace_head_gives_a_fresh_linear_and_unnamed_classes():
    m = cnnlab.create_model("cifar_resnet20")
    old = m.head()
    m.replace_head(3)
    assert m.head() is not old and m.head().out_features == 3 and m.labels == ["class 0", "class 1", "class 2"]
    assert m.spec["kwargs"]["num_classes"] == 3 and m(torch.rand(2, 3, 32, 32)).shape == (2, 3)


def test_every_family_states_its_weight_initialization():
    """A run records how its weights were initialized, so every registered model says it in words."""
    from cnnlab.models import weight_init
    from cnnlab.models.registry import PYTORCH_INIT
    for entry in cnnlab.list_models():
        assert entry.to_dict()["weight_init"], entry.name
    assert "He-normal" in weight_init("course_resnet") and "He-normal" in weight_init("simple_cnn_bn")
    assert "Glorot" in weight_init("mlp") and weight_init("softmax_regression") == PYTORCH_INIT
    assert "dirac" in weight_init("airbench") and "torchvision" in weight_init("resnet18")
