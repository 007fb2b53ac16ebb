"""Bring your own model: a plain torchvision and a plain timm network (random weights, never wrapped by the
user) each go through predict, Grad-CAM, PGD and a linear probe; `timm/NAME` offline fails at once with
the file to fetch."""
from __future__ import annotations

import pytest
import torch
import torchvision

import cnnlab
from cnnlab.errors import CnnlabError

timm = pytest.importorskip("timm")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["torchvision", "timm"])
def net(request):
    torch.manual_seed(0)
    if request.param == "torchvision":
        return torchvision.models.resnet18(weights=None).eval()
    return timm.create_model("resnet10t", pretrained=False).eval()


@pytest.mark.slow
def test_predict_gradcam_pgd_and_probe_on_a_bare_module(net, cifar_lossless):
    from cnnlab import attacks, explain, transfer
    x = torch.nn.functional.interpolate(cifar_lossless[0][:12], size=(64, 64), mode="bilinear", align_corners=False)
    y = (cifar_lossless[1][:12] >= 5).long()  # two classes: vehicles and animals, roughly
    preds = cnnlab.as_classifier(net).predict(x[:2], k=3)
    assert len(preds) == 2 and len(preds[0]) == 3 and preds[0][0].label  # ImageNet names for a 1000-way head
    cam = explain.attribute(net, x[:2], method="gradcam")
    assert cam.maps.shape == (2, 64, 64) and cam.layer
    adv = attacks.pgd(net, x[:2], eps=2 / 255, steps=2)
    assert float(adv.linf.max()) <= 2 / 255 + 1e-6
    feats = transfer.extract_features(net, (x, y), cache_dir=False, progress=False)
    assert feats.features.shape[0] == 12
    probe = transfer.linear_probe(feats, feats, C=1.0)
    assert 0.0 <= probe.top1 <= 1.0 and probe.n_train == 12


def test_timm_offline_fails_at_once_naming_the_file(monkeypatch):
    """No network (an offline setting here): the error names the hub file to fetch, without the hub client's
    retries; the model name and the cache are in the one sentence."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import try_to_load_from_cache
    if isinstance(try_to_load_from_cache("timm/resnet10t.c3_in1k", "model.safetensors"), str):
        pytest.skip("resnet10t's weights are in this machine's Hugging Face cache")
    with pytest.raises(CnnlabError) as e:
        cnnlab.create_model("timm/resnet10t", pretrained=True)
    msg = str(e.value)
    assert "timm/resnet10t" in msg and "resolve/main/model.safetensors" in msg and "HF_HUB_OFFLINE=1" in msg
