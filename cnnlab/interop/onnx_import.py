"""An ONNX image classifier as a `Classifier`: converted to a PyTorch graph so that gradients flow.

The converter is onnx2torch. It turns every ONNX node into a named module of a torch.fx
GraphModule, so the converted network keeps the ONNX graph's node names (`cnnlab inspect
model.onnx` and `--layer` speak the same names), cnnlab's fx tools (the BatchNorm-folding inference
twin, the feature cut for transfer) run on it, and hooks for feature maps and Grad-CAM attach to
any node. It covers the operators of CNN classifiers from opset 9 on and is the most used
ONNX-to-PyTorch converter on PyPI. The alternatives were weighed: onnx2pytorch runs the graph in
an interpreter loop inside one module (no per-node modules to hook, nothing for fx to trace), and
onnx-tf targets TensorFlow. Measured outputs equal onnxruntime's within 2e-5 on real photos
(tests/interop).

Before converting, the graph is checked to be what cnnlab can use (one image input, one output of
class scores), a final Softmax is removed so the Classifier returns logits (attacks and
attributions need them), and unsupported operators are named all at once.
"""
from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CnnlabError, brief
from ..images import Preprocessing
from ..models.classifier import Classifier
from ..models.wrap import wrap
from ..models.labels import read_labels
from .conventions import CHANNEL_LAYOUTS, input_convention, read_metadata
from .extras import require

# onnx2torch's Slice indexes with a list; torch warns about it on every call of a converted model
warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing",
                        category=UserWarning)

#: the opset a model is converted to when one of its operators is supported only at older versions
_FALLBACK_OPSET = 17
_FLOAT, _FLOAT16, _DOUBLE = 1, 10, 11
_HEAD_TYPES = ("Linear", "OnnxGemm", "OnnxMatMul")


def read_onnx(path: str | Path) -> Any:
    """An ONNX file as a checked `onnx.ModelProto`, or one sentence saying what is wrong with it."""
    onnx = require("onnx", f"Reading the ONNX file '{path}'")
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"ONNX file '{path}' does not exist; check the path.")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends: not a whole ONNX file
        raise CnnlabError(f"ONNX file '{path}' is truncated or not an ONNX model ({brief(e, 100)}); "
                          "re-export or re-download it.") from None
    if not model.graph.node:
        raise CnnlabError(f"ONNX file '{path}' holds no graph (it is truncated or not an ONNX model); "
                          "re-export or re-download it.")
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - ValidationError, or a C++ parse error on damaged bytes
        raise CnnlabError(f"ONNX file '{path}' is not a valid ONNX model, probably truncated or damaged "
                          f"({brief(e, 120)}); re-export or re-download it.") from None
    return model


def graph_inputs(model: Any) -> list:
    """The graph's real inputs (older exporters also list the initializers as inputs)."""
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def dims(value_info: Any) -> list[int | None]:
    """A value's static shape; None for a symbolic or unknown dimension."""
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def check_image_classifier(model: Any, source: str, channels: str = "auto") -> tuple[bool, tuple[int, int] | None]:
    """(channels_last, (H, W) or None) of the one image input, after checking that the graph has one
    float image input and one output; anything else is one sentence naming `source`."""
    if channels not in CHANNEL_LAYOUTS:
        raise CnnlabError(f"Channel layout '{channels}' is not one of {', '.join(CHANNEL_LAYOUTS)}.")
    inputs = graph_inputs(model)
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise CnnlabError(f"Model '{source}' has {len(inputs)} inputs ({names}); cnnlab reads image classifiers "
                          "with one image input: export the model with a single [N,3,H,W] or [N,H,W,3] input.")
    (inp,) = inputs
    shape = dims(inp)
    elem = inp.type.tensor_type.elem_type
    if elem not in (_FLOAT, _FLOAT16, _DOUBLE) or len(shape) != 4:
        shown = "x".join("?" if d is None else str(d) for d in shape) or "scalar"
        raise CnnlabError(f"Model '{source}' takes a {len(shape)}-D {_elem_name(elem)} input '{inp.name}' "
                          f"({shown}), not a batch of images [N,3,H,W]; cnnlab reads image classifiers.")
    if channels == "auto":
        channels = "last" if shape[3] == 3 and shape[1] != 3 else "first"
    last = channels == "last"
    c = shape[3] if last else shape[1]
    if c not in (3, None):
        raise CnnlabError(f"Model '{source}' takes {c}-channel images ({'NHWC' if last else 'NCHW'}); cnnlab works "
                          "with RGB classifiers (3 channels): for channels-last input pass --channels last.")
    hw = (shape[1], shape[2]) if last else (shape[2], shape[3])
    if len(model.graph.output) != 1:
        names = ", ".join(o.name for o in model.graph.output)
        raise CnnlabError(f"Model '{source}' has {len(model.graph.output)} outputs ({names}); cnnlab needs one output "
                          "of class scores [N, classes]: export the model with only its logits or probabilities.")
    out = dims(model.graph.output[0])
    if out and (len(out) != 2 or out[1] in (0, 1)):
        raise CnnlabError(f"Model '{source}' outputs shape {'x'.join('N' if d is None else str(d) for d in out)}, "
                          "not a class vector [N, classes]; cnnlab reads image classifiers (one score per class).")
    return last, (hw if None not in hw else None)


def _elem_name(elem: int) -> str:
    return {1: "float", 10: "float16", 11: "double", 6: "int32", 7: "int64", 9: "bool", 8: "string"}.get(elem, "non-float")


def without_softmax(model: Any) -> Any:
    """A copy whose output is the input of a final Softmax/LogSoftmax (the logits), or the model itself."""
    out = model.graph.output[0].name
    producer = next((n for n in model.graph.node if out in n.output), None)
    if producer is None or producer.op_type not in ("Softmax", "LogSoftmax"):
        return model
    axis = next((a.i for a in producer.attribute if a.name == "axis"), None)
    if axis not in (None, -1, 1):
        return model
    model = copy.deepcopy(model)
    node = next(n for n in model.graph.node if out in n.output)
    logits = node.input[0]
    model.graph.node.remove(node)
    model.graph.output[0].name = logits
    return model


#: operators whose inputs after the first are weights that onnx2torch expects as initializers
_WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "BatchNormalization", "InstanceNormalization", "LayerNormalization")


def weights_as_initializers(model: Any) -> Any:
    """A copy in which weights reached through an Identity of an initializer (torch's exporter shares equal
    tensors that way, e.g. the zero biases of a freshly initialized network) or a Constant node are
    initializers themselves, as onnx2torch's converters of weighted layers require; else the model."""
    inits = {t.name: t for t in model.graph.initializer}
    weights = {x for n in model.graph.node if n.op_type in _WEIGHTED for x in n.input[1:] if x}
    aliases = [n for n in model.graph.node if n.output and n.output[0] in weights and n.output[0] not in inits and (
        (n.op_type == "Identity" and n.input[0] in inits)
        or (n.op_type == "Constant" and any(a.name == "value" for a in n.attribute)))]
    if not aliases:
        return model
    model = copy.deepcopy(model)
    inits = {t.name: t for t in model.graph.initializer}
    names = {n.output[0] for n in aliases}
    for node in [n for n in model.graph.node if n.output and n.output[0] in names]:
        tensor = copy.deepcopy(inits[node.input[0]] if node.op_type == "Identity" else
                               next(a.t for a in node.attribute if a.name == "value"))
        tensor.name = node.output[0]
        model.graph.initializer.append(tensor)
        model.graph.node.remove(node)
    return model


def _opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _unsupported(model: Any) -> list[str]:
    """Operators (with their opset) that onnx2torch has no converter for."""
    from onnx2torch.node_converters import get_converter
    opsets = {o.domain: o.version for o in model.opset_import}
    bad = []
    for node in model.graph.node:
        version = opsets.get(node.domain, opsets.get("ai.onnx" if node.domain == "" else node.domain, 0))
        try:
            get_converter(domain=node.domain, operation_type=node.op_type, version=version)
        except NotImplementedError:
            bad.append(f"{node.domain + '.' if node.domain else ''}{node.op_type}")
    return sorted(set(bad))


def convert(model: Any, source: str) -> torch.fx.GraphModule:
    """The ONNX model as a torch.fx GraphModule (one module per ONNX node), or one sentence naming the
    operators the converter does not support."""
    require("onnx2torch", f"Converting '{source}' to PyTorch")
    import onnx2torch
    model = weights_as_initializers(model)
    bad = _unsupported(model)
    if bad and _opset(model) > _FALLBACK_OPSET:  # newer versions of known operators: try an older opset
        onnx = require("onnx", "ONNX conversion")
        try:
            older = onnx.version_converter.convert_version(model, _FALLBACK_OPSET)
            if not _unsupported(older):
                model, bad = older, []
        except Exception:  # noqa: BLE001 - the version converter could not: report the operators below
            pass
    if bad:
        ops = ", ".join(bad)
        raise CnnlabError(f"Model '{source}' uses the ONNX operator{'s' if len(bad) > 1 else ''} {ops} "
                          f"(opset {_opset(model)}) that the ONNX-to-PyTorch converter (onnx2torch) does not support; "
                          f"re-export the model without {'them' if len(bad) > 1 else 'it'} (another layer type or "
                          "opset), or run it with onnxruntime instead.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return onnx2torch.convert(model)
    except NotImplementedError as e:  # a converter that refuses an attribute value (e.g. a padding mode)
        raise CnnlabError(f"Model '{source}' could not be converted to PyTorch: onnx2torch does not support "
                          f"{brief(e, 160)}; re-export the model without it.") from None
    except Exception as e:  # noqa: BLE001 - the converter's own failures, whatever their type
        raise CnnlabError(f"Model '{source}' could not be converted to PyTorch ({type(e).__name__}: {brief(e)}); "
                          "re-export it with a standard opset (e.g. 17).") from None


def adapt_input(gm: torch.fx.GraphModule, channels_last: bool, bgr: bool) -> torch.fx.GraphModule:
    """Make the converted graph take cnnlab's RGB NCHW batch: flip to BGR and/or permute to NHWC right
    after its input, inside the graph (so gradients reach the RGB NCHW image)."""
    if not channels_last and not bgr:
        return gm
    graph = gm.graph
    inp = next(n for n in graph.nodes if n.op == "placeholder")
    added = []
    with graph.inserting_after(inp):
        x = inp
        if bgr:
            x = graph.call_method("flip", (x, 1))
            added.append(x)
    with graph.inserting_after(x):
        if channels_last:
            x = graph.call_method("permute", (x, (0, 2, 3, 1)))
            added.append(x)
    inp.replace_all_uses_with(x, delete_user_cb=lambda user: user not in added)
    graph.lint()
    gm.recompile()
    return gm


def _module_type(gm: nn.Module, node: Any) -> str:
    return type(gm.get_submodule(node.target)).__name__ if node.op == "call_module" else ""


def feature_layers(gm: torch.fx.GraphModule, size: tuple[int, int]) -> list[str]:
    """The module ending each spatial stage, early to late: for every resolution a convolution
    produces, the last module whose output has that convolution's [C, H, W] shape."""
    from torch.fx.passes.shape_prop import ShapeProp
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, 3, *size))
    except Exception:  # noqa: BLE001 - no shapes, no stages: feature maps by layer name still work
        return []
    conv_shapes: set[tuple[int, ...]] = set()
    last: dict[tuple[int, int], str] = {}
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        shape = tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else ()
        if node.op != "call_module" or len(shape) != 4:
            continue
        module = gm.get_submodule(node.target)
        if any(isinstance(m, nn.Conv2d) for m in module.modules()):
            conv_shapes.add(shape[1:])
        if shape[1:] in conv_shapes:
            last.pop(shape[2:], None)  # re-inserted: the dict keeps the order of each stage's last node
            last[shape[2:]] = node.target
    return list(last.values())


def head_module(gm: torch.fx.GraphModule) -> str | None:
    """The module whose input is the penultimate embedding: the last Gemm/MatMul/Linear, found walking
    back from the output through bias additions and reshapes."""
    node = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    for _ in range(6):
        if not isinstance(node, torch.fx.Node) or node.op != "call_module":
            return None
        if _module_type(gm, node) in _HEAD_TYPES:
            return node.target
        tensors = [a for a in node.args if isinstance(a, torch.fx.Node) and a.op != "get_attr"]
        if len(tensors) != 1:
            return None
        node = tensors[0]
    return None


def classifier_from_onnx(model: Any, source: str, *, labels: Sequence[str] | str | Path | None = None,
                         input_size: int | Sequence[int] | None = None, normalize: str | None = None,
                         input_range: str | None = None, channels: str = "auto", resize: int | None | str = "auto",
                         interpolation: str | None = None, name: str | None = None,
                         detected_range: str | None = None, detected_from: str = "") -> Classifier:
    """An `onnx.ModelProto` (from `source`, a file name for messages) as a Classifier.

    Options win over the file's metadata, which wins over `detected_range` (what the caller found in
    the original model, `detected_from` saying where), which wins over `cnnlab.wrap`'s defaults.
    """
    channels_last, static_hw = check_image_classifier(model, source, channels)
    meta = read_metadata({p.key: p.value for p in model.metadata_props})
    conv = input_convention(input_range, normalize, meta.input_range or detected_range,
                            "the file's metadata" if meta.input_range else detected_from)
    bgr = conv.bgr if conv is not None else False
    if conv is not None and conv.source != "option" and meta.bgr is not None:
        bgr = meta.bgr
    size = _input_size(source, input_size, static_hw, meta.preprocessing)
    names = read_labels(labels) or meta.labels
    gm = adapt_input(convert(without_softmax(model), source), channels_last, bgr)
    size = size or _runnable_size(gm, source)
    _check_outputs(gm, source, size)
    pre = meta.preprocessing
    if resize == "auto" and pre is not None and tuple(pre.input_size) == tuple(size):
        resize, interpolation = pre.resize, interpolation or pre.interpolation
    try:
        clf = wrap(gm, labels=names, input_size=size, mean=conv.mean if conv else None,
                   std=conv.std if conv else None, resize=resize, interpolation=interpolation,
                   feature_layers=feature_layers(gm, size), head=head_module(gm),
                   name=name or meta.name or Path(source).name)
    except CnnlabError as e:
        raise CnnlabError(f"Model '{source}': {e}") from None
    clf.spec = {**clf.spec, "file": str(source)}
    clf.weights_name = str(source)
    return clf.eval()


def _input_size(source: str, input_size: int | Sequence[int] | None, static_hw: tuple[int, int] | None,
                pre: Preprocessing | None) -> tuple[int, int] | None:
    if input_size is not None:
        size = (int(input_size), int(input_size)) if isinstance(input_size, int) else tuple(int(s) for s in input_size)[-2:]
        if static_hw is not None and tuple(size) != tuple(static_hw):
            raise CnnlabError(f"Model '{source}' takes {static_hw[0]}x{static_hw[1]} images (fixed in the file), not "
                              f"{size[0]}x{size[1]}; drop --input-size.")
        return tuple(size)
    if static_hw is not None:
        return static_hw
    return tuple(pre.input_size) if pre is not None else None


def _runnable_size(gm: nn.Module, source: str) -> tuple[int, int]:
    """For an input of free height and width that nobody sized: ImageNet's 224 px, else CIFAR's 32 px."""
    for size in ((224, 224), (32, 32)):
        try:
            with torch.no_grad():
                gm.eval()(torch.zeros(1, 3, *size))
            return size
        except Exception:  # noqa: BLE001 - any failure means: not this size
            continue
    raise CnnlabError(f"Model '{source}' takes images of any size and runs on neither 224x224 nor 32x32; "
                      "pass --input-size H W.")


def _check_outputs(gm: nn.Module, source: str, size: tuple[int, int]) -> None:
    """One forward pass on a black image: the output must be class scores [1, C] with C >= 2."""
    try:
        with torch.no_grad():
            out = gm.eval()(torch.zeros(1, 3, *size))
    except Exception as e:  # noqa: BLE001 - the converted graph fails at this size
        raise CnnlabError(f"Model '{source}' does not run on a {size[0]}x{size[1]} image after conversion "
                          f"({type(e).__name__}: {brief(e, 120)}); pass --input-size H W.") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] < 2:
        shape = "x".join(map(str, out.shape)) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CnnlabError(f"Model '{source}' outputs {shape} for one image, not a class vector [1, classes]; "
                          "cnnlab reads image classifiers (one score per class).")
