"""Keras and TensorFlow in: a Keras CNN saved as .keras, .h5 and a SavedModel, and a TF1 graph with its
checkpoint, become Classifiers whose outputs equal TensorFlow's own on real photos, with gradients; the
graph questions are answered on the original TF1 graph; bad files are one sentence naming them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.errors import CnnlabError
from tests.interop.conftest import need


@pytest.fixture(scope="module")
def keras_models(keras_files):
    from cnnlab.interop import load_model_file
    return {fmt: load_model_file(keras_files[fmt]) for fmt in ("keras", "h5", "savedmodel")}


@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
def test_keras_formats_equal_keras_predict_on_real_photos(keras_models, keras_files, photos, fmt):
    model = keras_models[fmt]
    assert model.input_size == (32, 32) and model.num_classes == 10
    x = cnnlab.load_images(photos, model)
    ref = keras_files["model"].predict(x.permute(0, 2, 3, 1).numpy(), verbose=0)  # NHWC, [0,1]: no rescaling
    probs = model.probabilities(x).numpy()
    assert np.abs(probs - ref).max() < 1e-4
    with torch.no_grad():  # the Classifier returns logits: the final softmax was taken off
        assert np.abs(torch.softmax(model(x), 1).numpy() - ref).max() < 1e-4


def test_keras_model_attack_and_attribution(keras_models, photos):
    model = keras_models["keras"]
    x = cnnlab.load_images(photos[:2], model)
    adv = cnnlab.attacks.pgd(model, x, eps=4 / 255, steps=3)
    assert (adv.images - x).abs().max() <= 4 / 255 + 1e-6
    att = cnnlab.explain.attribute(model, x, method="gradient")
    assert att.attributions.shape == x.shape and att.maps.sum() > 0
    assert len(model.layers()) >= 2 and model.features(x).shape[0] == 2


def test_keras_graph_report_is_on_the_converted_graph(keras_files):
    from cnnlab.interop import inspect_model_file
    from cnnlab.interop.model_file import to_onnx
    proto, _, _ = to_onnx(keras_files["keras"])
    report = inspect_model_file(keras_files["keras"])
    assert report.nodes == len(proto.graph.node) and report.placeholders == 1
    assert report.op_counts["Softmax"] == 1 and report.output_node.endswith("Softmax")
    assert report.logits_target in ("MatMul", "Add", "Gemm")
    assert report.input_size == [32, 32]


def test_keras_input_range_is_detected_from_a_rescaling_layer(tmp_path):
    keras = need("keras")
    from cnnlab.interop import load_model_file
    keras.utils.set_random_seed(1)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3)(x)
    km = keras.Model(inp, out)
    km.save(tmp_path / "raw.keras")
    model = load_model_file(tmp_path / "raw.keras")
    assert model.normalization["std"] == pytest.approx([1 / 255] * 3)
    x01 = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = km.predict(x01.permute(0, 2, 3, 1).numpy() * 255, verbose=0)
    with torch.no_grad():
        assert np.abs(model(x01).numpy() - ref).max() < 1e-4


def test_tf1_graph_with_checkpoint_equals_tensorflow(tf1_files, photos):
    tf = need("tensorflow")
    from cnnlab.interop import load_model_file
    model = load_model_file(tf1_files["meta"])
    x = cnnlab.load_images(photos, model)
    v1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default(), v1.Session(graph=g) as sess:
        v1.train.import_meta_graph(str(tf1_files["meta"])).restore(sess, str(tf1_files["checkpoint"]))
        logits, prob = sess.run(["logits:0", "prob:0"], {"images:0": x.permute(0, 2, 3, 1).numpy()})
    with torch.no_grad():
        assert np.abs(model(x).numpy() - logits).max() < 1e-4
    assert np.abs(model.probabilities(x).numpy() - prob).max() < 1e-4
    adv = cnnlab.attacks.fgsm(model, x[:2], eps=2 / 255)
    assert (adv.images - x[:2]).abs().max() <= 2 / 255 + 1e-6
    att = cnnlab.explain.attribute(model, x[:2], method="gradient")
    assert att.maps.sum() > 0


def test_tf1_graph_questions_on_the_original_graph(tf1_files):
    tf = need("tensorflow")
    from cnnlab.interop import inspect_model_file
    report = inspect_model_file(tf1_files["meta"])
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.train.import_meta_graph(str(tf1_files["meta"]))
    ops = g.get_operations()
    assert report.nodes == len(ops)
    assert report.placeholders == sum(op.type == "Placeholder" for op in ops) == 1
    assert report.placeholder_names == ["images"]
    most = max(len(op.inputs) for op in ops)
    assert report.max_fan_in.inputs == most
    tied = {r.node for r in report.max_fan_in.nodes}
    assert tied == {op.name for op in ops if len(op.inputs) == most}
    assert report.output_node == "prob" and report.logits_node == "logits"
    assert report.params == report.trainable_params == tf1_files["params"]
    assert report.input_size == [32, 32]
    shapes = {la.name: la.shape for la in report.layers}
    assert shapes["Conv2D"] == [1, 32, 32, 8] and shapes["logits"] == [1, 10]
    conv2 = next(la for la in report.layers if la.name == "Conv2D_1")
    assert conv2.macs == 8 * 8 * 16 * 3 * 3 * 8


def test_keras_custom_layer_is_named(tmp_path):
    keras = need("keras")
    from cnnlab.interop import load_model_file

    class Doubler(keras.layers.Layer):  # not registered: Keras cannot rebuild it from the file
        def call(self, x):  # noqa: ANN001, ANN201
            return 2 * x

    inp = keras.Input((8, 8, 3))
    out = keras.layers.Dense(3)(keras.layers.Flatten()(Doubler()(inp)))
    keras.Model(inp, out).save(tmp_path / "custom.keras")
    with pytest.raises(CnnlabError, match="custom layer 'Doubler'") as e:
        load_model_file(tmp_path / "custom.keras")
    assert str(tmp_path / "custom.keras") in str(e.value) and "custom_objects" in str(e.value)


def test_keras_two_inputs_and_non_class_output(tmp_path):
    keras = need("keras")
    from cnnlab.interop import load_model_file
    a, b = keras.Input((8, 8, 3)), keras.Input((4,))
    out = keras.layers.Dense(3)(keras.layers.Concatenate()([keras.layers.Flatten()(a), b]))
    keras.Model([a, b], out).save(tmp_path / "two.keras")
    with pytest.raises(CnnlabError, match="2 inputs") as e:
        load_model_file(tmp_path / "two.keras")
    assert "two.keras" in str(e.value)
    inp = keras.Input((8, 8, 3))
    keras.Model(inp, keras.layers.Conv2D(2, 3, padding="same")(inp)).save(tmp_path / "seg.keras")
    with pytest.raises(CnnlabError, match="not a class vector") as e:
        load_model_file(tmp_path / "seg.keras")
    assert "seg.keras" in str(e.value)


def test_keras_application_preprocessing_is_detected_by_name(tmp_path):
    """A model named as Keras' VGG16 expects Caffe's input (BGR, 0-255, ImageNet mean subtracted): the
    imported model equals Keras on images preprocessed by Keras' own preprocess_input."""
    keras = need("keras")
    from keras.applications import imagenet_utils

    from cnnlab.interop import load_model_file
    keras.utils.set_random_seed(2)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    km = keras.Model(inp, keras.layers.Dense(5)(x), name="vgg16")
    km.save(tmp_path / "vgg.keras")
    model = load_model_file(tmp_path / "vgg.keras")
    x01 = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    pixels = x01.permute(0, 2, 3, 1).numpy() * 255
    ref = km.predict(imagenet_utils.preprocess_input(pixels.copy(), mode="caffe"), verbose=0)
    with torch.no_grad():
        assert np.abs(model(x01).numpy() - ref).max() < 1e-3
