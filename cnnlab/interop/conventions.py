"""What a model from another framework expects of its input, and what it calls its classes.

cnnlab feeds every model float RGB images in [0, 1], NCHW, and normalizes inside the Classifier.
A model trained elsewhere may expect another pixel range ([0, 255], [-1, 1], Caffe's BGR with the
ImageNet mean subtracted), channels last (NHWC), and its own class names. Each is an option; where
the option is not given it is read from the file's metadata (cnnlab's own ONNX export writes it, and
the ONNX image metadata of Windows ML is understood), or detected from the model (a Keras model that
rescales its input itself, the Keras applications' documented preprocessing), and otherwise left to
`cnnlab.wrap`'s defaults (ImageNet normalization for a 1000-way output, [0, 1] otherwise).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import CnnlabError, unknown
from ..images import Preprocessing
from ..models.normalization import NORMALIZATIONS

_CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)  # ImageNet mean of Caffe's ResNets and VGG, on 0..255 pixels

#: input range -> (mean, std) applied to [0, 1] pixels, and whether the model reads BGR
INPUT_RANGES: dict[str, tuple[tuple[float, ...], tuple[float, ...], bool]] = {
    "0-1": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False),
    "0-255": ((0.0, 0.0, 0.0), (1 / 255,) * 3, False),
    "-1-1": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), False),
    "caffe": (tuple(m / 255 for m in _CAFFE_MEAN_RGB), (1 / 255,) * 3, True),
}
CHANNEL_LAYOUTS = ("auto", "first", "last")

#: metadata_props keys that cnnlab's ONNX export writes (and its import reads)
META_LABELS, META_PREPROCESSING, META_RANGE = "cnnlab.labels", "cnnlab.preprocessing", "cnnlab.input_range"
META_MODEL, META_NORMALIZATION = "cnnlab.model", "cnnlab.normalization"
#: the ONNX image metadata of Windows ML: pixel format and nominal range of an image input
WINML_FORMAT, WINML_RANGE = "Image.BitmapPixelFormat", "Image.NominalPixelRange"
_WINML_RANGES = {"Normalized_0_1": "0-1", "NominalRange_0_255": "0-255", "Normalized_1_1": "-1-1"}


@dataclass(frozen=True)
class InputConvention:
    """How to turn cnnlab's [0, 1] RGB pixels into what the model reads: (x - mean) / std, then the
    colour order flipped to BGR if `bgr`. `source` says where it came from (for messages)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    bgr: bool = False
    source: str = "option"


def range_name(text: str) -> str:
    """'[0,1]', '0..255', '-1,1', 'caffe' -> a key of INPUT_RANGES, or one error sentence."""
    key = str(text).strip().lower().strip("[]()").replace(" ", "").replace("..", "-").replace(",", "-")
    key = {"0-1.0": "0-1", "-1.0-1.0": "-1-1", "bgr": "caffe"}.get(key, key)
    if key not in INPUT_RANGES:
        raise unknown("input range", str(text), INPUT_RANGES)
    return key


def input_convention(input_range: str | None = None, normalize: str | None = None,
                     found: str | None = None, source: str = "") -> InputConvention | None:
    """The convention from the options (`normalize` by name, or `input_range`), else the one `found`
    in metadata or detected (`source` says where); None leaves it to `cnnlab.wrap`'s defaults."""
    if normalize is not None and input_range is not None:
        raise CnnlabError("Give either --normalize or --input-range, not both: each sets the input normalization.")
    if normalize is not None:
        if normalize not in NORMALIZATIONS:
            raise unknown("normalization", normalize, NORMALIZATIONS)
        mean, std = NORMALIZATIONS[normalize]
        return InputConvention(tuple(mean), tuple(std), False, "option")
    if input_range is not None:
        mean, std, bgr = INPUT_RANGES[range_name(input_range)]
        return InputConvention(mean, std, bgr, "option")
    if found is not None:
        mean, std, bgr = INPUT_RANGES[range_name(found)]
        return InputConvention(mean, std, bgr, source or "detected")
    return None


@dataclass(frozen=True)
class FileMetadata:
    """What a model file says about itself (each None when it says nothing)."""

    labels: list[str] | None = None
    preprocessing: Preprocessing | None = None
    input_range: str | None = None
    bgr: bool | None = None
    name: str | None = None


def read_metadata(props: Mapping[str, str]) -> FileMetadata:
    """cnnlab's and Windows ML's keys in an ONNX file's metadata_props; unreadable entries are ignored
    (metadata is a hint: the options still decide)."""
    labels = _json(props.get(META_LABELS)) or _json(props.get("labels"))
    pre = _json(props.get(META_PREPROCESSING))
    rng = props.get(META_RANGE) or _WINML_RANGES.get(props.get(WINML_RANGE, ""))
    fmt = props.get(WINML_FORMAT, "").lower()
    return FileMetadata(
        labels=[str(s) for s in labels] if isinstance(labels, list) and labels else None,
        preprocessing=Preprocessing.from_dict(pre) if isinstance(pre, dict) and "input_size" in pre else None,
        input_range=rng if rng in INPUT_RANGES else None,
        bgr=True if fmt.startswith("bgr") else (False if fmt.startswith("rgb") else None),
        name=props.get(META_MODEL) or None)


def _json(text: str | None) -> object:
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def write_metadata(model_name: str, labels: Sequence[str], preprocessing: Preprocessing,
                   mean: Sequence[float], std: Sequence[float]) -> dict[str, str]:
    """The metadata_props cnnlab's ONNX export writes: its own keys, and Windows ML's image keys for the
    input (RGB, [0, 1]: the normalization is inside the graph)."""
    return {META_MODEL: model_name, META_LABELS: json.dumps(list(labels)),
            META_PREPROCESSING: json.dumps(preprocessing.to_dict()), META_RANGE: "0-1",
            META_NORMALIZATION: json.dumps({"mean": list(mean), "std": list(std), "applied": "inside the graph"}),
            WINML_FORMAT: "Rgb8", "Image.ColorSpaceGamma": "SRGB", WINML_RANGE: "Normalized_0_1"}
