"""Models: real predictions of the bundled EfficientNet-Lite0, the registry, safe weights loading
(a malicious pickle is refused and does not run), corrupt files, wrong architectures, offline
downloads, and the fast inference twin (same numbers as the plain forward)."""
from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.errors import CnnlabError, WeightsError
from cnnlab.models.imagenet import imagenet_labels, imagenet_synsets, synset_index
from tests.conftest import shared

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_chelsea_gets_a_cat_class_in_top3(lite0, chelsea):
    top = lite0.predict(chelsea, k=3)[0]
    assert CAT_CLASSES & {p.index for p in top}
    assert top[0].index in CAT_CLASSES and top[0].label == lite0.labels[top[0].index]
    assert sum(p.prob for p in top) <= 1.0 + 1e-6 and top[0].prob >= top[1].prob >= top[2].prob


def test_zebra_seed_image_is_340(lite0):
    x = cnnlab.load_images(shared("seed_images/glow_imagenet_zebra_340.png"), lite0)
    assert x.shape == (1, 3, 224, 224)
    probs = lite0.probabilities(x)[0]
    assert int(probs.argmax()) == 340 and lite0.labels[340] == "zebra"
    assert float(probs[340]) > 0.5  # "very peaked at index 340"


def test_peppers_seed_001_is_bell_pepper(lite0):
    x = cnnlab.load_images(shared("seed_images/peppers_color.png"), lite0)
    assert lite0.predict(x, k=3)[0][0].label == "bell pepper"


def test_lite0_top1_on_imagenet_samples_in_manifest_range(lite0):
    d = np.load(shared("imagenet_samples_256_even.npz"))
    idx = np.random.default_rng(0).permutation(len(d["label"]))[:100]
    blobs = [d["jpeg"][d["offsets"][i]:d["offsets"][i + 1]].tobytes() for i in idx]
    x = cnnlab.load_images(blobs, lite0)
    pred = lite0.probabilities(x).argmax(1).numpy()
    acc = float((pred == d["label"][idx]).mean())
    # the manifest reports ~87% on all 500 photos; a wrong crop, normalization or padding costs 10+ points
    assert 0.78 <= acc <= 0.97, acc


def test_imagenet_names_and_synsets_shipped():
    labels, synsets = imagenet_labels(), imagenet_synsets()
    assert len(labels) == len(synsets) == 1000
    assert labels[340] == "zebra" and labels[859] == "toaster" and synsets[340] == "n02391049"
    assert synset_index("n02391049") == 340


def test_class_index_by_name_synset_and_number(lite0):
    assert lite0.class_index("zebra") == 340 == lite0.class_index("n02391049") == lite0.class_index("340")
    with pytest.raises(CnnlabError, match="toaster"):
        lite0.class_index("toastr")


def test_registry_unknown_name_suggests():
    with pytest.raises(CnnlabError, match="did you mean.*efficientnet_lite0"):
        cnnlab.create_model("efficientnet_lite")


def test_torchvision_arch_without_weights_and_new_head():
    m = cnnlab.create_model("resnet18", num_classes=7)
    assert m.num_classes == 7 and m.head().out_features == 7
    assert list(m.layers())[:2] == ["relu", "layer1"]
    x = torch.rand(2, 3, 64, 64)
    assert m(x).shape == (2, 7) and m.features(x).shape == (2, 512)


def test_cifar_resnet_from_akamaster_file(resnet20, cifar_lossless):
    x, y = cifar_lossless
    acc = float((resnet20.probabilities(x).argmax(1) == y).float().mean())
    assert acc > 0.97  # the manifest: 100% on these 200 lossless training images


# -- weights files ------------------------------------------------------------------------------------
class _Evil:
    """Unpickling this calls open(marker, 'w'): a file appears if the loader runs code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned.txt"
    state = cnnlab.create_model("cifar_resnet20").net.state_dict()
    evil_zip = tmp_path / "evil.pt"
    torch.save({"state_dict": state, "extra": _Evil(str(marker))}, evil_zip)
    evil_legacy = tmp_path / "evil_legacy.pth"
    with open(evil_legacy, "wb") as fh:
        pickle.dump({"state_dict": {}, "x": _Evil(str(marker))}, fh)
    for path in (evil_zip, evil_legacy):
        with pytest.raises(WeightsError, match="Refusing to load") as info:
            cnnlab.create_model("cifar_resnet20", weights=path)
        assert str(path) in str(info.value)
        assert not marker.exists()
    # the file really is malicious: an unsafe loader would have created the marker
    torch.load(evil_zip, weights_only=False)
    assert marker.exists()


def test_state_dict_variants_load(tmp_path, cifar_lossless):
    src = cnnlab.create_model("cifar_resnet20")
    state = src.net.state_dict()
    x = cifar_lossless[0][:4]
    expected = src(x)
    variants = {
        "plain.pt": state,
        "wrapped.pth": {"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3},
        "ckpt.th": {"state_dict": state, "best_prec1": 91.0},
    }
    for name, obj in variants.items():
        torch.save(obj, tmp_path / name)
        m = cnnlab.create_model("cifar_resnet20", weights=tmp_path / name)
        assert torch.allclose(m(x), expected, atol=1e-6), name
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    assert torch.allclose(cnnlab.create_model("cifar_resnet20", weights=tmp_path / "w.safetensors")(x), expected,
                          atol=1e-6)


def test_corrupt_and_truncated_checkpoints(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(cnnlab.create_model("cifar_resnet20").net.state_dict(), good)
    data = good.read_bytes()
    rng = random.Random(0)
    cases = {"truncated.pt": data[: len(data) // 2], "garbage.pt": rng.randbytes(4096), "empty.pt": b"",
             "bad.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......"}
    # random bytes trip torch's legacy unpickler in many ways (IndexError, KeyError, ...): about 1 in 12
    for i in range(60):
        cases[f"garbage{i}.pt"] = rng.randbytes(rng.choice([16, 64, 512, 4096]))
    for i in range(20):  # a checkpoint with flipped bytes
        blob = bytearray(data)
        for _ in range(8):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        cases[f"mutated{i}.pt"] = bytes(blob)
    phrases = {"truncated.pt": "truncated or corrupt", "empty.pt": "empty", "bad.safetensors": "not valid safetensors"}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        try:
            cnnlab.create_model("cifar_resnet20", weights=tmp_path / name)
        except WeightsError as e:
            msg = str(e)
            assert name in msg and phrases.get(name, "") in msg and "\n" not in msg, msg
        else:  # a flipped byte inside a weight tensor's data still loads: a valid file with other numbers
            assert name.startswith("mutated"), name
    with pytest.raises(WeightsError, match="does not exist"):
        cnnlab.create_model("cifar_resnet20", weights=tmp_path / "nope.pt")


def test_wrong_architecture_names_keys(tmp_path):
    path = tmp_path / "r20.pt"
    torch.save(cnnlab.create_model("cifar_resnet20").net.state_dict(), path)
    with pytest.raises(WeightsError) as info:
        cnnlab.create_model("cifar_resnet32", weights=path)
    msg = str(info.value)
    assert "cifar_resnet32" in msg and "missing keys" in msg and "layer1.3" in msg
    with pytest.raises(WeightsError, match=r"shape mismatch.*linear\.weight"):
        cnnlab.create_model("cifar_resnet20", num_classes=100, weights=path)


def test_offline_download_names_file_cache_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("CNNLAB_OFFLINE", "1")
    with pytest.raises(WeightsError) as info:
        cnnlab.create_model("resnet18", pretrained=True)
    msg = str(info.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "th" / "hub" / "checkpoints") in msg
    assert "copy that file" in msg and "download.pytorch.org" in msg
    # with no flag but an unreachable server, the same advice (no network is used: port 9 on localhost)
    monkeypatch.delenv("CNNLAB_OFFLINE")
    from cnnlab.models.weights import download
    with pytest.raises(WeightsError, match=r"could not download|Could not download") as info:
        download("http://127.0.0.1:9/weights/tiny-0123.pth", "tiny")
    assert "tiny-0123.pth" in str(info.value) and "copy that file" in str(info.value)
    assert not (tmp_path / "th" / "hub" / "checkpoints" / "tiny-0123.pth").exists()


def test_models_listing_reports_offline_weights():
    entries = {e.name: e for e in cnnlab.list_models()}
    assert entries["efficientnet_lite0"].weights_available_offline()
    assert {"alexnet", "vgg16", "googlenet", "resnet50", "mobilenet_v3_small", "cifar_resnet20"} <= set(entries)


# -- the inference twin -------------------------------------------------------------------------------
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
