"""The graph questions answered on an ONNX graph itself, in the shape of cnnlab's PyTorch graph report.

ONNX's terms: a node is an operator of `graph.node` (weights are initializers, not nodes); the graph
inputs are the placeholders; a node's inputs are its non-empty input names, weights included (a Conv
with a bias has 3); parameters are the float initializers. Shapes come from ONNX shape inference at
batch 1. Node names are the ones the converted PyTorch model gives its modules (onnx2torch's: the ONNX
name with '.' as '/', or the operator type for an unnamed node, numbered when repeated), so a name
printed here can be passed as `--layer` to the imported model.
"""
from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..graph import GraphReport, LayerInfo, most_inputs
from .extras import require
from .onnx_import import dims, graph_inputs

_FLOATS = (1, 10, 11, 16)  # float, float16, double, bfloat16


def _numel(shape: Sequence[int | None] | None) -> int:
    return math.prod(shape) if shape and None not in shape else 0


def _fixed_shapes(model: Any, input_size: Sequence[int] | None) -> dict[str, list[int | None]]:
    """Every value's shape, inferred with batch 1 (and H, W = input_size where the file leaves them free)."""
    onnx = require("onnx", "Inspecting an ONNX graph")
    model = copy.deepcopy(model)
    for inp in graph_inputs(model):
        shape = inp.type.tensor_type.shape.dim
        if len(shape) == 4:
            last = shape[3].HasField("dim_value") and shape[3].dim_value == 3 and shape[1].dim_value != 3
            spatial = (1, 2) if last else (2, 3)
            for pos, size in zip(spatial, input_size or (None, None)):
                if size and not shape[pos].HasField("dim_value"):
                    shape[pos].dim_value = int(size)
        if shape and not shape[0].HasField("dim_value"):
            shape[0].dim_value = 1
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - shapes are a courtesy: report the graph without them
        pass
    g = model.graph
    shapes = {v.name: dims(v) for v in (*g.input, *g.value_info, *g.output)}
    unknown = [o for n in g.node for o in n.output[:1] if None in (shapes.get(o) or [None])]
    if unknown:  # shape arithmetic that inference cannot follow (e.g. padding computed from the input size)
        shapes.update(_run_shapes(model, unknown))
    return shapes


def _run_shapes(model: Any, names: list[str]) -> dict[str, list[int | None]]:
    """The shapes of `names`, by running the graph once in onnxruntime on zeros (when its input is fixed)."""
    import numpy as np
    onnx = require("onnx", "Inspecting an ONNX graph")
    inputs = graph_inputs(model)
    if len(inputs) != 1 or None in dims(inputs[0]) or inputs[0].type.tensor_type.elem_type != 1:
        return {}
    model = copy.deepcopy(model)
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in known)
    try:
        ort = require("onnxruntime", "Inspecting an ONNX graph")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(model.SerializeToString(), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
        wanted = [o.name for o in session.get_outputs()]
        values = session.run(wanted, {inputs[0].name: np.zeros(dims(inputs[0]), np.float32)})
    except Exception:  # noqa: BLE001 - shapes are a courtesy
        return {}
    return {n: list(v.shape) for n, v in zip(wanted, values) if hasattr(v, "shape")}


def onnx_graph_report(model: Any, name: str, input_size: Sequence[int] | None = None) -> GraphReport:
    """Node count, op counts, inputs, the node with the most inputs (ties listed), the output node and the
    logits feeding its softmax, parameters, MACs and each node's output shape, for an onnx.ModelProto."""
    require("onnx2torch", "Naming the nodes of an ONNX graph")
    from onnx2torch.onnx_graph import OnnxGraph
    g = model.graph
    nodes = list(g.node)
    names = list(OnnxGraph(g).nodes)  # the converter's unique node names, in graph order
    by_output = {out: i for i, n in enumerate(nodes) for out in n.output}
    inits = {t.name: list(t.dims) for t in g.initializer if t.data_type in _FLOATS}
    shapes = _fixed_shapes(model, input_size)
    inputs = graph_inputs(model)

    in_hw: list[int] = list(input_size or [])
    if not in_hw and inputs:
        d = shapes.get(inputs[0].name) or []
        if len(d) == 4:
            hw = (d[1], d[2]) if d[3] == 3 and d[1] != 3 else (d[2], d[3])
            in_hw = [int(v) for v in hw] if None not in hw else []

    layers = []
    for i, node in enumerate(nodes):
        out = shapes.get(node.output[0]) if node.output else None
        layers.append(LayerInfo(name=names[i], op=node.op_type, target=node.output[0] if node.output else "",
                                shape=[int(v) for v in out] if out and None not in out else None,
                                params=sum(_numel(inits[x]) for x in node.input if x in inits),
                                macs=_macs(node, shapes, inits)))

    out_idx = by_output.get(g.output[0].name) if g.output else None
    logits_idx = out_idx
    if out_idx is not None and nodes[out_idx].op_type in ("Softmax", "LogSoftmax"):
        logits_idx = by_output.get(nodes[out_idx].input[0], out_idx)
    counts = [sum(1 for x in n.input if x) for n in nodes]
    params = sum(_numel(s) for s in inits.values())
    return GraphReport(
        model=name, input_size=in_hw or [0, 0], nodes=len(nodes), op_counts=dict(Counter(n.op_type for n in nodes)),
        placeholders=len(inputs), placeholder_names=[i.name for i in inputs],
        max_fan_in=most_inputs(zip(names, (n.op_type for n in nodes), counts)),
        logits_node=names[logits_idx] if logits_idx is not None else "",
        logits_target=nodes[logits_idx].op_type if logits_idx is not None else "",
        output_node=names[out_idx] if out_idx is not None else "",
        params=params, trainable_params=params, macs=sum(layer.macs for layer in layers), layers=layers)


def _macs(node: Any, shapes: dict[str, list[int | None]], inits: dict[str, list[int]]) -> int:
    """Multiply-accumulates of a Conv, Gemm or MatMul node for one image."""
    out = shapes.get(node.output[0]) if node.output else None
    if not out or None in out:
        return 0
    per_image = math.prod(out[1:]) if len(out) > 1 else math.prod(out)
    if node.op_type == "Conv" and len(node.input) > 1:
        w = inits.get(node.input[1]) or shapes.get(node.input[1])
        return per_image * math.prod(w[1:]) if w and None not in w else 0
    if node.op_type in ("Gemm", "MatMul"):
        a = shapes.get(node.input[0])
        trans_a = any(att.name == "transA" and att.i for att in node.attribute)
        k = (a[-2] if trans_a else a[-1]) if a and len(a) >= 2 else None
        return per_image * k if k else 0
    return 0
