"""Safe weights loading: a malicious pickle is refused and does not run, state-dict variants load, corrupt
files and wrong architectures are one sentence, offline downloads say where to put the file."""
from __future__ import annotations

import pickle
import random

import pytest
import torch

import cnnlab
from cnnlab.errors import WeightsError


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


def test_other_frameworks_models_are_sent_to_model_file(tmp_path):
    """An ONNX or Keras file passed as weights is named for what it is (not 'pickled Python objects');
    bytes that are no pickle at all are 'not a PyTorch checkpoint', with torch's reason whole."""
    from cnnlab.models.weights import read_checkpoint
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")
    (tmp_path / "keras_weights").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    for name, what in (("m.onnx", "an ONNX model"), ("keras_weights", "a Keras (HDF5) model")):
        with pytest.raises(WeightsError, match="--model-file") as e:
            read_checkpoint(tmp_path / name)
        assert what in str(e.value) and "pickled" not in str(e.value)
    (tmp_path / "blob.bin").write_bytes(b"\x08\x07\x12\x07pytorch\x1a\x05" + bytes(100))
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint") as e:
        read_checkpoint(tmp_path / "blob.bin")
    assert "pickled" not in str(e.value) and "Weights only load failed" not in str(e.value)


def test_a_small_file_naming_a_huge_network_is_refused_before_allocating_it(tmp_path):
    """A pickle-free checkpoint whose metadata says `mlp widths=16000,16000` beside small weights made
    cnnlab build (and initialize) the 1.7 GB network before comparing shapes."""
    from tests.conftest import child_peak_rss_mb
    small = cnnlab.create_model("mlp", widths="16", num_classes=10)
    meta = small.checkpoint_meta()
    meta["spec"]["kwargs"]["widths"] = "16000,16000"
    path = tmp_path / "crafted.pt"
    torch.save({"cnnlab": meta, "state_dict": small.net.state_dict()}, path)
    assert path.stat().st_size < 2_500_000
    code = ("import cnnlab\n"
            "try:\n"
            f"    cnnlab.create_model(weights={str(path)!r})\n"
            "except cnnlab.CnnlabError as e:\n"
            "    print('REFUSED', e)\n")
    status, out, peak_mb = child_peak_rss_mb(code)
    assert status == 0 and "REFUSED Weights" in out and "do not fit architecture 'mlp'" in out, out
    assert "(16, 3072) vs (16000, 3072)" in out
    assert peak_mb < 1000, f"peak memory {peak_mb:.0f} MB: the network was allocated"


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(spec={"name": "mlp", "kwargs": {"widths": {"nested": 1}}}), "spec.kwargs is not model"),
    (lambda m: m.update(spec="mlp"), "spec.name is not a model name"),
    (lambda m: m["spec"]["kwargs"].update({7: 1}), "spec.kwargs is not model"),
    (lambda m: m.update(labels=[1, 2, 3]), "labels is not a list of class names"),
    (lambda m: m.update(labels=["cat", "dog"]), "2 labels for num_classes=10"),
    (lambda m: m.update(mean=[0.5, float("nan"), 0.5]), "mean is not 1 or 3 finite numbers"),
    (lambda m: m.update(std=[0.5, 0.5]), "std is not 1 or 3 finite numbers"),
    (lambda m: m.update(std=[0.5, 0.0, 0.5]), "std has a value that is not positive"),
])
def test_checkpoint_metadata_is_checked_against_its_schema(tmp_path, change, message):
    """TypeError and KeyError tracebacks before: the metadata was used unchecked."""
    model = cnnlab.create_model("mlp", widths="16", num_classes=10)
    meta = model.checkpoint_meta()
    change(meta)
    path = tmp_path / "meta.pt"
    torch.save({"cnnlab": meta, "state_dict": model.net.state_dict()}, path)
    with pytest.raises(WeightsError, match=message) as e:
        cnnlab.create_model(weights=path)
    assert "\n" not in str(e.value)
    torch.save({"cnnlab": ["not", "a", "dict"], "state_dict": model.net.state_dict()}, path)
    with pytest.raises(WeightsError, match="unusable cnnlab metadata"):
        cnnlab.create_model(weights=path)


def test_a_tensor_claiming_more_data_than_it_stores_is_refused(tmp_path):
    model = cnnlab.create_model("mlp", widths="16", num_classes=10)
    state = model.net.state_dict()
    state["fc1.weight"] = torch.zeros(1).expand(16, 3072)  # 4 bytes stored for 196 KB of weights
    path = tmp_path / "expanded.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="fc1.weight.* less stored data than its shape needs"):
        cnnlab.create_model("mlp", widths="16", num_classes=10, weights=path)
