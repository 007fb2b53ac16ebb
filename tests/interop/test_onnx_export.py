"""ONNX out: cnnlab's models exported with a dynamic batch, the normalization inside and labels and
preprocessing in the metadata; onnxruntime agrees with PyTorch, and the file imported again predicts
the same."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import cnnlab
from tests.interop.conftest import need


def _roundtrip(model, x, path):
    from cnnlab.interop import export_onnx, load_model_file, run_onnxruntime
    result = export_onnx(model, path)
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(run_onnxruntime(path, x) - expected).max() < 1e-4  # any batch size: the batch is dynamic
    again = load_model_file(path)
    assert again.labels == model.labels and again.preprocessing == model.preprocessing
    assert again.normalization["mean"] == [0.0, 0.0, 0.0]  # normalization is inside the graph
    with torch.no_grad():
        got = again(x).numpy()
    assert np.abs(got - expected).max() < 1e-4
    assert [p[0].index for p in again.predict(x)] == [p[0].index for p in model.predict(x)]
    return result, again


def test_cifar_resnet20_round_trip(resnet20, resnet20_correct, tmp_path):
    need("onnx")
    onnx = need("onnx")
    x = resnet20_correct[0][:5]
    result, again = _roundtrip(resnet20, x, tmp_path / "r20.onnx")
    props = {p.key: p.value for p in onnx.load(result.path).metadata_props}
    assert json.loads(props["cnnlab.labels"])[3] == "cat"
    assert json.loads(props["cnnlab.normalization"])["mean"] == pytest.approx(resnet20.normalization["mean"])
    assert props["Image.NominalPixelRange"] == "Normalized_0_1"
    assert again.name == resnet20.name and again.input_size == (32, 32)
    # gradients flow through the re-imported model as through the original
    a = cnnlab.explain.attribute(resnet20, x[:1], method="gradient").attributions
    b = cnnlab.explain.attribute(again, x[:1], method="gradient").attributions
    assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.slow
def test_efficientnet_lite0_round_trip_on_real_photos(lite0, tmp_path):
    need("onnx")
    x = cnnlab.load_images([cnnlab.bundled_photo(n) for n in ("chelsea", "coffee", "rocket")], lite0)
    _, again = _roundtrip(lite0, x, tmp_path / "lite0.onnx")
    assert again.preprocessing.resize == 256 and again.layers()


def test_a_bare_module_is_exported_through_wrap(tmp_path):
    need("onnx")
    from cnnlab.interop import export_onnx, load_model_file
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 3))
    res = export_onnx(net, tmp_path / "net.onnx")
    assert res.batch_checked == 3 and res.outputs == "logits [N,3]"
    again = load_model_file(res.path)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(again(x), cnnlab.models.as_classifier(net)(x), atol=1e-5)
