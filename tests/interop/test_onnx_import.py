"""ONNX in: a torchvision network exported to ONNX becomes a Classifier whose outputs equal
onnxruntime's on real photos, on which gradients, attacks and attributions work; its graph questions are
answered on the ONNX graph itself; and every kind of bad file is one sentence naming it."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.errors import CnnlabError
from tests.interop.conftest import need


@pytest.fixture(scope="module")
def imported(torchvision_onnx):
    from cnnlab.interop import load_model_file
    return load_model_file(torchvision_onnx["path"], normalize="imagenet", resize=None)


@pytest.fixture(scope="module")
def batch(imported, photos):
    return cnnlab.load_images(photos, imported)


def test_outputs_equal_onnxruntime_on_real_photos(imported, batch, torchvision_onnx):
    from cnnlab.interop import run_onnxruntime
    with torch.no_grad():
        ours = imported(batch).numpy()
    ref = run_onnxruntime(torchvision_onnx["path"], imported.normalize(batch))
    assert ours.shape == ref.shape == (len(batch), 10)
    assert np.abs(ours - ref).max() < 1e-4
    # the batched inference path (a BatchNorm-folded twin from 16 images on) agrees as well
    many = batch.repeat(3, 1, 1, 1)[:16]
    probs = imported.probabilities(many).numpy()
    ref_probs = torch.softmax(torch.from_numpy(run_onnxruntime(torchvision_onnx["path"], imported.normalize(many))), 1)
    assert np.abs(probs - ref_probs.numpy()).max() < 1e-4


def test_the_classifier_knows_size_layers_head_and_normalization(imported, torchvision_onnx, batch):
    assert imported.input_size == (64, 64) and imported.num_classes == 10
    assert imported.preprocessing.resize is None
    assert imported.normalization["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert imported.head_name.endswith("Gemm")
    layers = list(imported.layers())
    assert len(layers) == 5  # one per resolution: 32, 16, 8, 4, 2 px
    assert imported.features(batch[:2]).shape == (2, 512)
    # the penultimate embedding is torchvision's
    net = torchvision_onnx["net"]
    with torch.no_grad():
        body = torch.nn.Sequential(*list(net.children())[:-1])
        expected = body(imported.normalize(batch[:2])).flatten(1)
    assert torch.allclose(imported.features(batch[:2]), expected, atol=1e-4)


def test_attack_attribution_and_feature_maps_run_with_gradients(imported, batch):
    x = batch[:2]
    adv = cnnlab.attacks.fgsm(imported, x, eps=8 / 255)
    assert (adv.images - x).abs().max() <= 8 / 255 + 1e-6 and (adv.images != x).any()
    att = cnnlab.explain.attribute(imported, x, method="gradient")
    assert att.attributions.shape == x.shape and att.maps.abs().sum() > 0
    cam = cnnlab.explain.attribute(imported, x, method="gradcam")
    assert cam.layer in imported.layers() and torch.isfinite(cam.maps).all()
    maps = cnnlab.explain.feature_maps(imported, x[:1], layers=("early", "late"))
    assert maps is not None


def test_graph_questions_on_the_onnx_graph_match_onnx_and_torch(torchvision_onnx):
    onnx = need("onnx")
    from onnx import numpy_helper

    from cnnlab.interop import inspect_model_file
    proto = onnx.load(str(torchvision_onnx["path"]))
    report = inspect_model_file(torchvision_onnx["path"])
    assert report.nodes == len(proto.graph.node)
    assert report.op_counts == dict(Counter(n.op_type for n in proto.graph.node))
    assert report.placeholders == 1 and report.placeholder_names == ["input"]
    assert report.input_size == [64, 64]
    fan = max(sum(1 for i in n.input if i) for n in proto.graph.node)
    assert report.max_fan_in.inputs == fan == 3  # Conv and Gemm with weight and bias
    tied = [r.node for r in report.max_fan_in.nodes]
    assert len(tied) == sum(1 for n in proto.graph.node if sum(1 for i in n.input if i) == fan)
    assert report.output_node == report.logits_node and report.logits_target == "Gemm"
    assert report.params == sum(numpy_helper.to_array(t).size for t in proto.graph.initializer)
    # BatchNorm folded into the convolutions by the exporter: MACs equal PyTorch's own count
    torch_report = cnnlab.inspect_model(torchvision_onnx["net"], (64, 64))
    assert report.macs == torch_report.macs
    convs = [la for la in report.layers if la.op == "Conv"]
    assert convs[0].shape == [1, 64, 32, 32]


def _tiny_graph(tmp_path, *, op="Relu", inputs=1, in_shape=(None, 3, 8, 8), out_conv_only=False, name="m.onnx"):
    """A tiny ONNX classifier built node by node (conv -> op -> pool -> gemm), varied to break one rule."""
    onnx = need("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=(10, 4)).astype(np.float32), "fc")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node(op, ["c"], ["a"])]
    out_shape = ["N", 4, 8, 8]
    if not out_conv_only:
        nodes += [helper.make_node("GlobalAveragePool", ["a"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
                  helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
        out_shape = ["N", 10]
    else:
        nodes.append(helper.make_node("Identity", ["a"], ["y"]))
    shape = ["N" if d is None else d for d in in_shape]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
    if inputs == 2:
        ins.append(helper.make_tensor_value_info("scale", TensorProto.FLOAT, ["N", 1]))
    graph = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_a_hand_built_onnx_graph_loads(tmp_path):
    from cnnlab.interop import load_model_file, run_onnxruntime
    path = _tiny_graph(tmp_path, in_shape=(None, 3, 8, 8))
    model = load_model_file(path)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert np.abs(model(x).numpy() - run_onnxruntime(path, x)).max() < 1e-5


@pytest.mark.parametrize("case, words", [
    ("unsupported", ["ThresholdedRelu", "onnx2torch"]),
    ("two_inputs", ["2 inputs", "x, scale"]),
    ("not_image", ["2-D", "not a batch of images"]),
    ("not_classes", ["not a class vector"]),
    ("grey", ["1-channel"]),
])
def test_bad_onnx_graphs_are_one_sentence_naming_the_file(tmp_path, case, words):
    from cnnlab.interop import load_model_file
    kwargs = {"unsupported": {"op": "ThresholdedRelu"}, "two_inputs": {"inputs": 2},
              "not_image": {"in_shape": (None, 3)}, "not_classes": {"out_conv_only": True},
              "grey": {"in_shape": (None, 1, 8, 8)}}[case]
    if case == "not_image":  # a graph over feature vectors, not images
        path = _vector_graph(tmp_path)
    else:
        path = _tiny_graph(tmp_path, **kwargs)
    with pytest.raises(CnnlabError) as e:
        load_model_file(path)
    msg = str(e.value)
    assert str(path) in msg and all(w in msg for w in words), msg
    assert "\n" not in msg


def _vector_graph(tmp_path):
    onnx = need("onnx")
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((10, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], [w])
    path = tmp_path / "vector.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_truncated_onnx_file(tmp_path, torchvision_onnx):
    from cnnlab.interop import load_model_file
    data = torchvision_onnx["path"].read_bytes()
    for cut in (len(data) // 2, 1000):
        bad = tmp_path / f"cut{cut}.onnx"
        bad.write_bytes(data[:cut])
        with pytest.raises(CnnlabError, match="truncated") as e:
            load_model_file(bad)
        assert str(bad) in str(e.value)


def test_channels_last_onnx_input_and_bgr_metadata(tmp_path):
    """An NHWC ONNX input (as TensorFlow exports make) is detected; Windows ML's metadata says BGR 0-255."""
    onnx = need("onnx")
    from onnx import helper
    from cnnlab.interop import load_model_file, run_onnxruntime
    path = _tiny_graph(tmp_path, in_shape=(None, 3, 8, 8))
    model = onnx.load(str(path))
    # prepend a transpose NHWC -> NCHW and declare the input NHWC, BGR, 0..255
    model.graph.node.insert(0, helper.make_node("Transpose", ["x_nhwc"], ["x"], perm=[0, 3, 1, 2]))
    del model.graph.input[:]
    model.graph.input.append(helper.make_tensor_value_info("x_nhwc", 1, ["N", 8, 8, 3]))
    helper.set_model_props(model, {"Image.BitmapPixelFormat": "Bgr8", "Image.NominalPixelRange": "NominalRange_0_255"})
    nhwc = tmp_path / "nhwc.onnx"
    onnx.save(model, str(nhwc))
    clf = load_model_file(nhwc)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    ref = run_onnxruntime(nhwc, (x.flip(1) * 255).permute(0, 2, 3, 1))
    with torch.no_grad():
        assert np.abs(clf(x).numpy() - ref).max() < 1e-3 * max(1, np.abs(ref).max())


def test_transfer_features_of_the_imported_model(imported):
    """Transfer learning's fast feature path (BatchNorm folded, cut at the head) works on a converted graph
    and agrees with Classifier.features."""
    from cnnlab.transfer.features import extract_features
    paths = [cnnlab.bundled_photo(n) for n in ("chelsea", "coffee")]
    feats = extract_features(imported, paths, l2=False, cache_dir=False, workers=0, fast=True)
    x = cnnlab.load_images(paths, imported)
    with torch.no_grad():
        expected = imported.features(x)
    got = torch.as_tensor(np.asarray(feats.features))
    assert got.shape == (2, 512) and torch.allclose(got, expected, atol=1e-3)


def test_a_freshly_initialized_network_with_shared_weights_loads(tmp_path):
    """torch's exporter shares equal tensors (the zero biases BatchNorm folding leaves in a fresh network)
    through Identity nodes; the import turns them back into weights the converter accepts."""
    need("onnx")
    import warnings

    import torchvision

    from cnnlab.interop import load_model_file, run_onnxruntime
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=4).eval()
    path = tmp_path / "fresh.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.rand(1, 3, 32, 32),), str(path), dynamo=False, opset_version=17)
    onnx = need("onnx")
    assert any(n.op_type == "Identity" for n in onnx.load(str(path)).graph.node)  # the case under test
    model = load_model_file(path, normalize="none")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert np.abs(model(x[:1]).numpy() - run_onnxruntime(path, x[:1])).max() < 1e-4  # exported at batch 1
