"""Keras (.keras, .h5), TensorFlow SavedModels and TF1 graphs (.meta + checkpoint, frozen .pb) as ONNX,
on the way to a `Classifier`.

The route is TensorFlow -> ONNX (tf2onnx) -> PyTorch (onnx2torch), not a direct Keras-to-PyTorch
converter. Why: tf2onnx reads every one of these formats through TensorFlow's own graph, so it covers
what TensorFlow computes (TF1 graphs of raw ops, Keras layers, SavedModel functions) rather than a
hand-picked layer list, and it carries TensorFlow's semantics that a direct port would have to
re-derive and could get subtly wrong: "SAME" padding that is asymmetric at stride 2, the NHWC
order that Flatten feeds to Dense, BatchNorm's epsilon. `inputs_as_nchw` makes the converted graph take
NCHW images with the transposes optimized away. One ONNX path also means one converter to trust for
ONNX files and TF files alike, and onnxruntime as an independent check in between. Measured on the
test models, the converted PyTorch network equals TensorFlow's own predictions within 1e-6 (float32).
The cost is TensorFlow's import time (several seconds), paid only when a TF file is read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CnnlabError, brief
from .extras import require, tensorflow

OPSET = 17
INPUT_NAME = "images"

#: Keras applications by model name -> the preprocessing their `preprocess_input` applies
#: (checked in order; models whose first layer rescales the input are detected from that layer).
_KERAS_APPLICATIONS = (
    (r"^(resnet\d+v2|inception_v3|inception_resnet_v2|xception|mobilenet_|mobilenetv2_|nasnet)", "-1-1"),
    (r"^(resnet\d+|vgg\d+)$", "caffe"),
)


@dataclass
class Converted:
    """A TensorFlow model as ONNX (NCHW input), with what was detected about the input it expects."""

    onnx: Any
    input_range: str | None = None
    detected_from: str = ""


def _tf2onnx(source: str) -> Any:
    require("tf2onnx", f"Converting the TensorFlow model '{source}'")
    import tf2onnx
    return tf2onnx


def _conversion_failed(source: str, e: Exception) -> CnnlabError:
    return CnnlabError(f"TensorFlow model '{source}' could not be converted to ONNX by tf2onnx "
                       f"({type(e).__name__}: {brief(e)}); save it with standard layers, or export it to ONNX yourself "
                       "and pass the .onnx file.")


# -- Keras ---------------------------------------------------------------------------------------------
def load_keras(path: str | Path) -> Any:
    """A .keras or .h5 file as a Keras model, or one sentence (a custom layer is named)."""
    tensorflow(f"Reading the Keras model '{path}'")
    keras = require("keras", f"Reading the Keras model '{path}'")
    try:
        return keras.saving.load_model(str(path), compile=False)
    except Exception as e:  # noqa: BLE001 - Keras raises TypeError/ValueError/OSError for unreadable files
        text = str(e)
        custom = re.search(r"(?:Could not locate (?:class|function)|Unknown (?:layer|object|class))[:\s]+'?([\w.]+)'?", text)
        if custom:
            name = custom.group(1)
            raise CnnlabError(f"Keras model '{path}' uses the custom layer '{name}', which Keras cannot rebuild from "
                              f"the file alone; load it in Python with keras.saving.load_model(path, custom_objects="
                              f"{{'{name}': ...}}) and pass the model to cnnlab.interop.from_keras.") from None
        raise CnnlabError(f"Keras model '{path}' could not be read ({type(e).__name__}: {brief(e, 120)}); "
                          "re-save it with model.save('model.keras').") from None


def keras_input_range(model: Any) -> tuple[str | None, str]:
    """The pixel range a Keras model expects, when it shows: its first layer rescales raw pixels, or it is
    one of the Keras applications (by name); else (None, '')."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    first = type(layers[0]).__name__ if layers else ""
    if first == "Rescaling":
        return "0-255", "its first layer (Rescaling) takes raw 0-255 pixels"
    if first == "Normalization":
        mean = getattr(layers[0], "mean", None)
        if mean is not None and float(np.max(np.asarray(mean))) > 1.5:
            return "0-255", "its first layer (Normalization) has means of 0-255 pixels"
    for pattern, rng in _KERAS_APPLICATIONS:
        if re.match(pattern, model.name):
            return rng, f"the preprocessing of Keras' {model.name}"
    return None, ""


def keras_to_onnx(model: Any, source: str, channels: str = "auto") -> Converted:
    """A Keras model as ONNX with an NCHW image input."""
    tf = tensorflow(f"Converting the Keras model '{source}'")
    if len(model.inputs) != 1:
        raise CnnlabError(f"Keras model '{source}' has {len(model.inputs)} inputs; cnnlab reads image classifiers "
                          "with one image input.")
    if len(model.outputs) != 1:
        raise CnnlabError(f"Keras model '{source}' has {len(model.outputs)} outputs; cnnlab needs one output of class "
                          "scores [N, classes].")
    shape = tuple(model.inputs[0].shape)
    spec = tf.TensorSpec((None, *shape[1:]), tf.float32, name=INPUT_NAME)
    last = _channels_last(shape, channels)
    try:
        proto, _ = _tf2onnx(source).convert.from_keras(model, input_signature=[spec], opset=OPSET,
                                                        inputs_as_nchw=[INPUT_NAME] if last else None)
    except CnnlabError:
        raise
    except Exception as e:  # noqa: BLE001 - tf2onnx's failures, whatever their type
        raise _conversion_failed(source, e) from None
    return Converted(proto, *keras_input_range(model))


def _channels_last(shape: tuple, channels: str) -> bool:
    """Whether a TensorFlow image input is NHWC (TensorFlow's default) rather than NCHW."""
    if channels in ("first", "last"):
        return channels == "last"
    return not (len(shape) == 4 and shape[1] == 3 and shape[3] != 3)


# -- SavedModel ------------------------------------------------------------------------------------------
def savedmodel_to_onnx(path: str | Path, channels: str = "auto") -> Converted:
    """A SavedModel directory's serving signature as ONNX with an NCHW image input."""
    tf = tensorflow(f"Reading the SavedModel '{path}'")
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:  # noqa: BLE001 - a damaged or foreign directory
        raise CnnlabError(f"SavedModel '{path}' could not be read ({type(e).__name__}: {brief(e, 120)}); "
                          "re-save it with tf.saved_model.save or model.export.") from None
    sigs = dict(loaded.signatures)
    if not sigs:
        raise CnnlabError(f"SavedModel '{path}' has no serving signature; save it with model.export(path) or "
                          "tf.saved_model.save(model, path, signatures=...).")
    fn = sigs.get("serving_default") or next(iter(sigs.values()))
    args, kwargs = fn.structured_input_signature
    specs = [*args, *kwargs.values()]
    if len(specs) != 1:
        raise CnnlabError(f"SavedModel '{path}' has {len(specs)} inputs ({', '.join(kwargs) or len(args)}); cnnlab "
                          "reads image classifiers with one image input.")
    outputs = fn.structured_outputs
    keys = list(outputs) if isinstance(outputs, dict) else [None]
    if len(keys) != 1:
        raise CnnlabError(f"SavedModel '{path}' has {len(keys)} outputs ({', '.join(map(str, keys))}); cnnlab needs "
                          "one output of class scores [N, classes].")
    (spec,), key, out_key = specs, next(iter(kwargs), None), keys[0]
    shape = tuple(spec.shape)
    if len(shape) != 4:
        raise CnnlabError(f"SavedModel '{path}' takes a {len(shape)}-D input of shape {shape}, not a batch of images; "
                          "cnnlab reads image classifiers.")

    def call(x):  # noqa: ANN001, ANN202 - a TensorFlow tensor in and out
        out = fn(**{key: x}) if key is not None else fn(x)
        return out[out_key] if out_key is not None else out

    last = _channels_last(shape, channels)
    try:
        proto, _ = _tf2onnx(str(path)).convert.from_function(
            tf.function(call), input_signature=[tf.TensorSpec((None, *shape[1:]), tf.float32, name=INPUT_NAME)],
            opset=OPSET, inputs_as_nchw=[INPUT_NAME] if last else None)
    except CnnlabError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _conversion_failed(str(path), e) from None
    return Converted(proto)


# -- TF1 graphs ------------------------------------------------------------------------------------------
def checkpoint_prefix(meta: Path, checkpoint: str | Path | None = None) -> str:
    """The checkpoint beside a .meta file: `checkpoint` when given, else NAME (NAME.index) or NAME.ckpt,
    or the directory's latest checkpoint."""
    tf = tensorflow(f"Reading the TF1 checkpoint of '{meta}'")
    stem = meta.with_suffix("")
    candidates = [str(checkpoint)] if checkpoint else [str(stem), str(meta.with_suffix(".ckpt")),
                                                       tf.train.latest_checkpoint(str(meta.parent))]
    for c in candidates:
        if c and (Path(c).is_file() or Path(c + ".index").is_file()):
            return c
    raise CnnlabError(f"No checkpoint for graph '{meta}': expected {stem}.index (+ .data-*) or {stem}.ckpt beside "
                      "it; pass checkpoint=PREFIX.")


def tf1_graph(path: str | Path) -> Any:
    """A TF1 graph definition (.meta MetaGraphDef, or a frozen .pb GraphDef) as a tf.Graph, without weights."""
    graph, _ = _import_graph(Path(path), restore=None)
    return graph


def _import_graph(path: Path, restore: str | None) -> tuple[Any, Any]:
    tf = tensorflow(f"Reading the TensorFlow graph '{path}'")
    v1 = tf.compat.v1
    graph = tf.Graph()
    sess = None
    try:
        with graph.as_default():
            if path.suffix == ".meta":
                saver = v1.train.import_meta_graph(str(path), clear_devices=True)
                if restore is not None:
                    sess = v1.Session(graph=graph)
                    if saver is not None:
                        saver.restore(sess, restore)
            else:
                gd = v1.GraphDef()
                gd.ParseFromString(path.read_bytes())
                tf.graph_util.import_graph_def(gd, name="")
                sess = v1.Session(graph=graph) if restore is not None else None
    except Exception as e:  # noqa: BLE001 - DecodeError, NotFoundError, InvalidArgumentError, ...
        what = "checkpoint" if restore is not None and "estor" in f"{type(e).__name__}{e}" else "graph"
        raise CnnlabError(f"TensorFlow {what} '{restore if what == 'checkpoint' else path}' could not be read "
                          f"({type(e).__name__}: {brief(e, 120)}); check that graph and checkpoint belong together "
                          "and are complete.") from None
    return graph, sess


@dataclass
class Endpoints:
    """The image input, the logits and the softmax of a TF graph (op names)."""

    image: str
    logits: str
    softmax: str | None
    flags: list[str]  # boolean placeholders (training switches): fixed to False when converting


def endpoints(graph: Any, source: str) -> Endpoints:
    """Find the one image placeholder and the logits (the input of the last softmax, or the last 2-D
    float op that nothing reads) of a TF graph, or one sentence saying why there is none."""
    import tensorflow as tf
    ops = graph.get_operations()
    holders = [op for op in ops if op.type == "Placeholder"]
    flags = [op.name for op in ops if op.type in ("Placeholder", "PlaceholderWithDefault")
             and op.outputs[0].dtype == tf.bool]
    inputs = [op for op in holders if op.name not in flags]
    if len(inputs) != 1:
        names = ", ".join(op.name for op in inputs) or "none"
        raise CnnlabError(f"TensorFlow graph '{source}' has {len(inputs)} input placeholders ({names}); cnnlab reads "
                          "image classifiers with one image input.")
    (image,) = inputs
    shape = image.outputs[0].shape
    if shape.rank != 4 or not image.outputs[0].dtype.is_floating:
        raise CnnlabError(f"TensorFlow graph '{source}' takes a {shape.rank}-D {image.outputs[0].dtype.name} input "
                          f"'{image.name}', not a batch of images [N,H,W,3]; cnnlab reads image classifiers.")
    softmax = [op for op in ops if op.type == "Softmax"]
    if softmax:
        logits = softmax[-1].inputs[0].op
    else:
        sinks = [op for op in ops if op.outputs and not op.outputs[0].consumers() and op.outputs[0].dtype.is_floating
                 and op.outputs[0].shape.rank == 2 and not op.name.startswith(("save/", "init"))]
        if not sinks:
            raise CnnlabError(f"TensorFlow graph '{source}' has no softmax and no output of class scores [N, classes]; "
                              "cnnlab reads image classifiers.")
        logits = sinks[-1]
    out = logits.outputs[0].shape
    if out.rank != 2 or out[-1] in (0, 1):
        raise CnnlabError(f"TensorFlow graph '{source}' outputs shape {out}, not a class vector [N, classes]; "
                          "cnnlab reads image classifiers.")
    return Endpoints(image.name, logits.name, softmax[-1].name if softmax else None, flags)


def tf1_to_onnx(path: str | Path, checkpoint: str | Path | None = None) -> Converted:
    """A TF1 graph with its checkpoint (or a frozen .pb) as ONNX from the image input to the logits."""
    tf = tensorflow(f"Reading the TensorFlow graph '{path}'")
    path = Path(path)
    prefix = checkpoint_prefix(path, checkpoint) if path.suffix == ".meta" else ""
    graph, sess = _import_graph(path, restore=prefix)
    ends = endpoints(graph, str(path))
    with graph.as_default():
        try:
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), [ends.logits])
        except Exception as e:  # noqa: BLE001 - uninitialized variables, missing kernels
            raise CnnlabError(f"TensorFlow graph '{path}' could not be frozen with checkpoint '{prefix}' "
                              f"({type(e).__name__}: {brief(e, 120)}); check that they belong together.") from None
        finally:
            sess.close()
    for node in frozen.node:  # training switches become constants: the converted model is in inference mode
        if node.name in ends.flags:
            node.op = "Const"
            del node.input[:]
            for key in ("shape", "dtype"):
                node.attr.pop(key, None)
            node.attr["dtype"].type = tf.bool.as_datatype_enum
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(False))
    image = ends.image + ":0"
    last = _channels_last(tuple(graph.get_operation_by_name(ends.image).outputs[0].shape), "auto")
    try:
        proto, _ = _tf2onnx(str(path)).convert.from_graph_def(
            frozen, input_names=[image], output_names=[ends.logits + ":0"], opset=OPSET,
            inputs_as_nchw=[image] if last else None)
    except CnnlabError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _conversion_failed(str(path), e) from None
    return Converted(proto)
