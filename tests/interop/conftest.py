"""Small models in each foreign format, built once per test session: a Keras CNN saved as .keras, .h5
and a SavedModel, a TF1-style graph with a checkpoint, a torchvision network exported to ONNX; and real
photos to compare outputs on. Tests needing TensorFlow or onnx skip with the reason when the extra is
not installed."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import SHARED


def need(module: str) -> object:
    """The optional package, or skip naming the extra that brings it."""
    from cnnlab.interop.extras import EXTRA_OF, prepare_tensorflow
    if module in ("tensorflow", "keras", "tf2onnx"):
        prepare_tensorflow()  # Triton before TensorFlow: the other order crashes the process
    return pytest.importorskip(module, reason=f"needs the '{EXTRA_OF[module]}' extra: pip install 'cnnlab[{EXTRA_OF[module]}]'")


@pytest.fixture(scope="session")
def photos() -> list:
    """Real photos: scikit-image's bundled ones, and ImageNet sample photos from ../shared/data if present."""
    import io

    from PIL import Image

    import cnnlab
    out = [Image.open(cnnlab.bundled_photo(n)).convert("RGB") for n in ("chelsea", "coffee", "astronaut")]
    path = SHARED / "imagenet_samples_256_even.npz"
    if path.exists():
        d = np.load(path)
        for i in (0, 101, 202):
            out.append(Image.open(io.BytesIO(d["jpeg"][d["offsets"][i]:d["offsets"][i + 1]].tobytes())).convert("RGB"))
    return out


@pytest.fixture(scope="session")
def keras_files(tmp_path_factory) -> dict:
    """A Keras CNN with random weights (BatchNorm statistics included), saved as .keras, .h5 and a
    SavedModel; returns the paths and the in-memory model."""
    tf = need("tensorflow")
    keras = need("keras")
    need("tf2onnx")
    tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), name="pixels")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same")(x)  # asymmetric "SAME" padding at stride 2
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)  # NHWC flatten order feeding Dense
    x = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inp, x, name="small_cnn")
    bn = model.layers[2]
    rng = np.random.default_rng(0)
    bn.set_weights([rng.uniform(0.5, 1.5, 8), rng.normal(0, 0.1, 8), rng.normal(0, 0.2, 8), rng.uniform(0.5, 2, 8)])
    d = tmp_path_factory.mktemp("keras")
    model.save(d / "cnn.keras")
    model.save(d / "cnn.h5")
    model.export(str(d / "saved"), verbose=False)
    return {"keras": d / "cnn.keras", "h5": d / "cnn.h5", "savedmodel": d / "saved", "model": model}


@pytest.fixture(scope="session")
def tf1_files(tmp_path_factory) -> dict:
    """A TF1-style graph as the assignment's: images placeholder -> convolutions -> logits -> prob (softmax),
    a training switch, variables saved with tf.compat.v1.train.Saver (graph .meta + checkpoint)."""
    tf = need("tensorflow")
    need("tf2onnx")
    v1 = tf.compat.v1
    d = tmp_path_factory.mktemp("tf1")
    g = tf.Graph()
    with g.as_default():
        images = v1.placeholder(tf.float32, [None, 32, 32, 3], name="images")
        training = v1.placeholder_with_default(False, [], name="is_training")
        init = v1.glorot_uniform_initializer(seed=1)
        w1 = v1.get_variable("conv1/weights", [3, 3, 3, 8], initializer=init)
        b1 = v1.get_variable("conv1/biases", [8], initializer=v1.random_normal_initializer(0, 0.1, seed=2))
        h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(images, w1, 1, "SAME"), b1))
        h = tf.nn.max_pool2d(h, 2, 2, "SAME")
        h = tf.cond(training, lambda: tf.nn.dropout(h, rate=0.3), lambda: h)
        w2 = v1.get_variable("conv2/weights", [3, 3, 8, 16], initializer=init)
        h = tf.nn.relu(tf.nn.conv2d(h, w2, 2, "SAME"))
        h = tf.reduce_mean(h, axis=[1, 2])
        wf = v1.get_variable("fc/weights", [16, 10], initializer=init)
        bf = v1.get_variable("fc/biases", [10], initializer=v1.random_normal_initializer(0, 0.5, seed=3))
        logits = tf.add(tf.matmul(h, wf), bf, name="logits")
        tf.nn.softmax(logits, name="prob")
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            v1.train.Saver().save(sess, str(d / "model.ckpt"))
    params = 3 * 3 * 3 * 8 + 8 + 3 * 3 * 8 * 16 + 16 * 10 + 10
    return {"meta": d / "model.ckpt.meta", "checkpoint": d / "model.ckpt", "params": params}


@pytest.fixture(scope="session")
def torchvision_onnx(tmp_path_factory) -> dict:
    """A torchvision ResNet-18 (random weights, 10 classes) exported to ONNX by torch at 64x64 with a
    dynamic batch: a file as a user would bring it (normalization outside, no metadata)."""
    need("onnx")
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    for m in net.modules():  # non-trivial BatchNorm statistics, as in a trained network
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("onnx") / "resnet18.onnx"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.rand(1, 3, 64, 64),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return {"path": path, "net": net}
