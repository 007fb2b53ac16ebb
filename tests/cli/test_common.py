"""The model options every command shares: --model-file (a whole model from a file) and its companions
reach every command, old-style ones included; bad files exit 1 with one sentence."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import cnnlab
from cnnlab.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    pytest.importorskip("onnx2torch", reason="needs the 'onnx' extra: pip install 'cnnlab[onnx]'")
    from cnnlab.interop import export_onnx
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 3))
    model = cnnlab.wrap(net, labels=["cat", "dog", "toaster"], input_size=32)
    path = tmp_path_factory.mktemp("cli") / "tiny.onnx"
    export_onnx(model, path)
    return path


def test_model_file_on_predict_and_an_old_style_command(onnx_file, tmp_path):
    chelsea = str(cnnlab.bundled_photo("chelsea"))
    r = run("predict", chelsea, "--model-file", str(onnx_file), "--json")
    assert r.exit_code == 0, r.output
    assert {t["label"] for t in json.loads(r.stdout)[0]["top"]} == {"cat", "dog", "toaster"}
    labels = tmp_path / "names.txt"
    labels.write_text("a\nb\nc\n")
    r = run("saliency", chelsea, "--model-file", str(onnx_file), "--labels", str(labels), "--out", str(tmp_path / "s"))
    assert r.exit_code == 0, r.output


def test_inspect_a_model_file(onnx_file):
    r = run("inspect", str(onnx_file), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["placeholder_names"] == ["images"] and out["op_counts"]["Conv"] == 1


@pytest.mark.parametrize("args, words", [
    (["--model-file", "{bad}"], ["{bad}", "is not a model file"]),
    (["--model-file", "{onnx}", "--model", "cifar_resnet20"], ["drop --model"]),
    (["--input-range", "0-255"], ["describes a --model-file"]),
    (["--weights", "{onnx}", "--model", "cifar_resnet20"], ["is an ONNX model", "--model-file"]),
])
def test_bad_model_choices_exit_1_with_one_sentence(onnx_file, tmp_path, args, words):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a model")
    args = [a.format(bad=bad, onnx=onnx_file) for a in args]
    r = run("predict", str(cnnlab.bundled_photo("chelsea")), *args)
    assert r.exit_code == 1
    msg = r.stderr.strip()
    assert msg.startswith("error: ") and "\n" not in msg, msg
    assert all(w.format(bad=bad) in msg for w in words), msg


@pytest.mark.parametrize("command", [
    ["predict", "{photo}"], ["attack", "{photo}", "--out", "{out}"], ["saliency", "{photo}", "--out", "{out}"],
    ["attack-eval", "--data", "{out}"], ["transfer", "--data", "{out}"], ["tour", "--out", "{out}"],
])
def test_every_network_command_refuses_a_device_this_machine_lacks_before_starting(command, tmp_path, monkeypatch):
    monkeypatch.delenv("CNNLAB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    out = tmp_path / "out"
    args = [a.format(photo=cnnlab.bundled_photo("chelsea"), out=out) for a in command]
    r = run(*args, "--device", "cuda")
    assert r.exit_code == 1, r.output
    assert r.output.startswith("error: --device cuda needs a CUDA GPU") and r.output.endswith("available: cpu.\n")
    assert not out.exists()


def test_the_model_options_place_the_model(tmp_path, monkeypatch):
    chelsea = str(cnnlab.bundled_photo("chelsea"))
    monkeypatch.setenv("CNNLAB_DEVICE", "cpu")
    r = run("predict", chelsea, "--device", "auto", "--json")  # auto on this session's device: the CPU here
    assert r.exit_code == 0, r.output
    from cnnlab.cli.common import ModelChoice
    assert ModelChoice("cifar_resnet20", device="cpu").load(pretrained=False).device == torch.device("cpu")
