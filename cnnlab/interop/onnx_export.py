"""Any cnnlab model as an ONNX file that runs anywhere: `export_onnx(model, "model.onnx")`.

The file takes what cnnlab's models take, float RGB images in [0, 1] as [N, 3, H, W] with any batch
size, and returns logits [N, classes]: the normalization is inside the graph, so no consumer can
normalize twice or not at all. The class names, input size, resize/crop policy and the normalization
applied inside are written to the file's metadata_props (cnnlab's keys, and Windows ML's image keys),
and `cnnlab.interop.load_model_file` reads them back. Every export is checked by running the file in
onnxruntime on random images of another batch size than the one traced, against PyTorch.

It uses torch's TorchScript-based exporter (`dynamo=False`): it needs no package beyond onnx, and it
exports every network cnnlab builds, including the TensorFlow-style "SAME" padding of
EfficientNet-Lite0, which the newer dynamo exporter would need onnxscript for.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CnnlabError, brief
from ..models.wrap import as_classifier
from .conventions import write_metadata
from .extras import require

#: the ONNX opset written by default: supported by onnxruntime, onnx2torch and every current runtime
DEFAULT_OPSET = 17
#: largest difference between onnxruntime's and PyTorch's logits accepted, relative to the logits' scale
TOLERANCE = 1e-4


@dataclass
class OnnxExport:
    """What `export_onnx` wrote and how well onnxruntime reproduces PyTorch on it."""

    path: str
    opset: int
    nodes: int
    inputs: str
    outputs: str
    max_abs_diff: float | None  # onnxruntime vs PyTorch logits on random images (None: not checked)
    batch_checked: int

    def to_dict(self) -> dict:
        return asdict(self)


def run_onnxruntime(model: str | Path | Any, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """The first output of an ONNX model (a file or an `onnx.ModelProto`) on `x`, run by onnxruntime."""
    ort = require("onnxruntime", "Running an ONNX model")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    opts.log_severity_level = 3
    data = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return session.run(None, {session.get_inputs()[0].name: arr.astype(np.float32)})[0]


def export_onnx(model: nn.Module, path: str | Path, *, opset: int = DEFAULT_OPSET, check: bool = True,
                seed: int = 0) -> OnnxExport:
    """Write `model` (a Classifier or any nn.Module `cnnlab.wrap` accepts) to `path` as ONNX with a dynamic
    batch, the normalization inside and the preprocessing and labels in the metadata; with `check`,
    compare onnxruntime's logits with PyTorch's and refuse (one sentence) if they differ."""
    onnx = require("onnx", "Exporting to ONNX")
    clf = as_classifier(model)
    path = Path(path)
    if path.is_dir():
        raise CnnlabError(f"'{path}' is a directory; give the ONNX file to write, e.g. {path}/model.onnx.")
    path.parent.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    h, w = clf.input_size
    traced = torch.rand(2, 3, h, w, generator=gen).to(clf.device)
    tmp = path.with_name(f".{path.name}.part")
    try:
        with clf.frozen(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape arithmetic (fixed H and W are intended)
            torch.onnx.export(clf, (traced,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["images"], output_names=["logits"],
                              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, write_metadata(clf.name, clf.labels, clf.preprocessing,
                                                          clf.normalization["mean"], clf.normalization["std"]))
        proto.producer_name, proto.doc_string = "cnnlab", (
            f"{clf.name}: float RGB images in [0,1] as [N,3,{h},{w}] -> logits [N,{clf.num_classes}]; "
            "normalization inside the graph, labels and preprocessing in metadata_props.")
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    except CnnlabError:
        raise
    except Exception as e:  # noqa: BLE001 - the exporter's failures (an unsupported torch op, ...)
        raise CnnlabError(f"Model '{clf.name}' could not be exported to ONNX ({type(e).__name__}: {brief(e)}); "
                          f"try another --opset than {opset}.") from None
    finally:
        tmp.unlink(missing_ok=True)
    diff = None
    batch = 3  # another batch size than the traced one: checks that the batch is dynamic
    if check:
        x = torch.rand(batch, 3, h, w, generator=gen)
        with clf.frozen(), torch.no_grad():
            expected = clf(x.to(clf.device)).float().cpu().numpy()
        got = run_onnxruntime(path, x)
        diff = float(np.abs(got - expected).max())
        if not diff <= TOLERANCE * max(1.0, float(np.abs(expected).max())):
            raise CnnlabError(f"The ONNX export of '{clf.name}' in '{path}' computes other logits than PyTorch "
                              f"(max difference {diff:.3g}); the file is kept for inspection, but do not use it.")
    return OnnxExport(str(path), opset, len(proto.graph.node), f"images [N,3,{h},{w}] float in [0,1], RGB",
                      f"logits [N,{clf.num_classes}]", diff, batch if check else 0)
