"""A whole model from a file, whatever framework wrote it: which format a path holds, the model as a
`Classifier`, and its graph report.

Formats: ONNX (.onnx); Keras (.keras, .h5/.hdf5); a TensorFlow SavedModel directory; a TF1 graph
definition (.meta) with its checkpoint beside it; a frozen TF graph (.pb). Anything else is one
sentence naming the file and what to pass instead.
"""
from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..devices import resolve_device
from ..errors import CnnlabError
from ..graph import GraphReport
from ..models.classifier import Classifier
from .onnx_import import classifier_from_onnx, read_onnx

FORMATS = {
    "onnx": "an ONNX model",
    "keras": "a Keras model (.keras)",
    "h5": "a Keras model (.h5)",
    "savedmodel": "a TensorFlow SavedModel",
    "tf1": "a TF1 graph definition (.meta) with its checkpoint",
    "frozen": "a frozen TensorFlow graph (.pb)",
}
_HDF5_MAGIC, _ZIP_MAGIC = b"\x89HDF\r\n\x1a\n", b"PK\x03\x04"
_WHAT_TO_PASS = ("give an ONNX file (.onnx), a Keras model (.keras, .h5), a TensorFlow SavedModel directory, "
                 "or a TF1 graph (.meta) with its checkpoint")


def model_format(path: str | Path) -> str:
    """The format of a model file or directory (a key of FORMATS), or one sentence saying why it is none."""
    path = Path(path)
    if not path.exists():
        raise CnnlabError(f"Model file '{path}' does not exist; check the path.")
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "savedmodel"
        raise CnnlabError(f"Directory '{path}' is not a TensorFlow SavedModel (it has no saved_model.pb); "
                          f"{_WHAT_TO_PASS}.")
    if path.stat().st_size == 0:
        raise CnnlabError(f"Model file '{path}' is empty (0 bytes); it was not written completely.")
    head = path.open("rb").read(8)
    suffix = path.suffix.lower()
    if path.name == "saved_model.pb":
        return "savedmodel"
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".meta":
        return "tf1"
    if suffix == ".pb":
        return "frozen"
    if head.startswith(_HDF5_MAGIC):
        return "h5"
    if head.startswith(_ZIP_MAGIC):
        names = _zip_names(path)
        if "config.json" in names:
            return "keras"
        if any(n.endswith("data.pkl") for n in names):
            raise CnnlabError(f"'{path}' is a PyTorch checkpoint, not a whole model; pass it as --weights "
                              "with --model NAME.")
    if suffix in (".keras", ".h5", ".hdf5"):
        raise CnnlabError(f"Keras model file '{path}' is truncated or not a Keras file (it does not start like one); "
                          "re-save it with model.save().")
    raise CnnlabError(f"'{path}' is not a model file cnnlab can read: {_WHAT_TO_PASS} (a PyTorch weights file goes "
                      "to --weights).")


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def to_onnx(path: str | Path, channels: str = "auto", checkpoint: str | Path | None = None) -> tuple[Any, str | None, str]:
    """(onnx.ModelProto, detected input range, where it was detected) for any supported model file."""
    path = Path(path)
    fmt = model_format(path)
    if fmt == "onnx":
        return read_onnx(path), None, ""
    from . import tensorflow_import as tfi
    if fmt in ("keras", "h5"):
        conv = tfi.keras_to_onnx(tfi.load_keras(path), str(path), channels)
    elif fmt == "savedmodel":
        conv = tfi.savedmodel_to_onnx(path.parent if path.is_file() else path, channels)
    else:
        conv = tfi.tf1_to_onnx(path, checkpoint)
    return conv.onnx, conv.input_range, conv.detected_from


def load_model_file(path: str | Path, *, labels: Sequence[str] | str | Path | None = None,
                    input_size: int | Sequence[int] | None = None, normalize: str | None = None,
                    input_range: str | None = None, channels: str = "auto", resize: int | None | str = "auto",
                    interpolation: str | None = None, checkpoint: str | Path | None = None,
                    name: str | None = None, device: str | torch.device | None = "auto") -> Classifier:
    """A model file of any supported format as a Classifier (a PyTorch network: gradients flow), on `device`.

    Args:
        labels: class names, or a file of them (one per line, or JSON); default: the file's metadata,
            else ImageNet's for 1000 classes, else 'class i'.
        input_size: (H, W) or a side, for files that leave it free.
        normalize / input_range: the input the model expects, by normalization name ('imagenet', ...) or
            by pixel range ('0-1', '0-255', '-1-1', 'caffe' = BGR minus the ImageNet mean); default:
            the file's metadata, else detected (Keras), else ImageNet's for 1000 classes, else [0, 1].
        channels: 'auto', 'first' (NCHW) or 'last' (NHWC) for the file's image input.
        resize, interpolation: the crop policy (short side before the centre crop; None resizes the whole
            image), default: the file's metadata, else 256/224 of the input size.
        checkpoint: for a TF1 .meta, the checkpoint prefix when it is not beside the graph.
        device: where the converted network runs, as `cnnlab.create_model` takes it.
    """
    device = resolve_device(device)
    path = Path(path)
    fmt = model_format(path)
    model, found, where = to_onnx(path, channels, checkpoint)  # a TF file's image input becomes NCHW here
    return classifier_from_onnx(model, str(path), labels=labels, input_size=input_size, normalize=normalize,
                                input_range=input_range, channels=channels if fmt == "onnx" else "auto",
                                resize=resize, interpolation=interpolation, name=name,
                                detected_range=found, detected_from=where).to(device)


def from_keras(model: Any, *, name: str | None = None, **options: Any) -> Classifier:
    """A Keras model object (e.g. one loaded with custom_objects) as a Classifier; options as
    `load_model_file`'s."""
    from .tensorflow_import import keras_to_onnx
    source = name or getattr(model, "name", "keras model")
    conv = keras_to_onnx(model, source, options.pop("channels", "auto"))
    return classifier_from_onnx(conv.onnx, source, name=name, detected_range=conv.input_range,
                                detected_from=conv.detected_from, **options)


def inspect_model_file(path: str | Path, input_size: Sequence[int] | None = None) -> GraphReport:
    """The graph questions on a model file: on the ONNX graph for ONNX, on the original TensorFlow graph
    for a TF1 graph (.meta or frozen .pb), on the converted ONNX graph for Keras and SavedModels."""
    path = Path(path)
    fmt = model_format(path)
    if fmt in ("tf1", "frozen"):
        from .tensorflow_import import tf1_graph
        from .tf_graph import tf_graph_report
        return tf_graph_report(tf1_graph(path), path.name, input_size)
    from .onnx_graph import onnx_graph_report
    model, _, _ = to_onnx(path)
    return onnx_graph_report(model, path.name, input_size)
