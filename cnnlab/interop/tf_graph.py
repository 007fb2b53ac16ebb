"""The graph questions answered on an original TensorFlow graph (a TF1 .meta or a frozen .pb), in the
shape of cnnlab's PyTorch graph report.

TensorFlow's terms, as `tf.Graph.get_operations()` sees them: every operation is a node (variables,
constants and the Saver's operations included); placeholders are the operations of type
`Placeholder`; a node's inputs are its data inputs (`op.inputs`). Parameters are the graph's
variables (or, in a frozen graph, its float constants of more than one element). Shapes per node
come from TensorFlow's shape inference with the image input fixed at batch 1.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..graph import GraphReport, LayerInfo, most_inputs
from .extras import tensorflow

_VARIABLE_OPS = {"VariableV2", "Variable", "VarHandleOp"}
#: bookkeeping operations left out of the per-node list (they are still counted as nodes)
_NOT_LAYERS = _VARIABLE_OPS | {
    "Const", "NoOp", "Placeholder", "PlaceholderWithDefault", "ReadVariableOp", "Assign", "AssignVariableOp",
    "SaveV2", "RestoreV2", "MergeV2Checkpoints", "StringJoin", "ShardedFilename", "VarIsInitializedOp",
    "IsVariableInitialized", "Identity"}


def _static(shape: Any) -> list[int] | None:
    """A TensorShape as a list with batch 1, or None when its rank or another dimension is unknown."""
    if shape.rank is None:
        return None
    out = [d if d is not None else (1 if i == 0 else None) for i, d in enumerate(shape.as_list())]
    return None if None in out else out


def _with_batch_one(graph: Any, image: str, input_size: Sequence[int] | None) -> Any:
    """The graph re-imported with its image placeholder fixed at [1, H, W, C]: TensorFlow's shape
    inference then gives static shapes everywhere (None when that fails)."""
    tf = tensorflow("Inspecting a TensorFlow graph")
    op = graph.get_operation_by_name(image)
    shape = op.outputs[0].shape.as_list()
    fixed = [1, *shape[1:]]
    if input_size and len(fixed) == 4:
        for pos, size in zip((1, 2) if fixed[3] in (3, None) else (2, 3), input_size):
            fixed[pos] = fixed[pos] or int(size)
    if None in fixed:
        return None
    g = tf.Graph()
    try:
        with g.as_default():
            x = tf.compat.v1.placeholder(op.outputs[0].dtype, fixed, name="cnnlab_fixed_input")
            tf.graph_util.import_graph_def(graph.as_graph_def(), input_map={image + ":0": x}, name="")
    except Exception:  # noqa: BLE001 - shapes are a courtesy: fall back to the graph's own
        return None
    return g


def _variable_source(tensor: Any) -> Any:
    """The variable operation a tensor reads (through Identity/ReadVariableOp), or None."""
    op = tensor.op
    for _ in range(3):
        if op.type in _VARIABLE_OPS:
            return op
        if op.type not in ("Identity", "ReadVariableOp") or not op.inputs:
            return None
        op = op.inputs[0].op
    return None


def _size(op: Any) -> int:
    shape = op.get_attr("shape") if op.type in _VARIABLE_OPS else op.outputs[0].shape
    dims_ = [d.size for d in shape.dim] if hasattr(shape, "dim") else shape.as_list()
    return math.prod(dims_) if None not in dims_ and all(d >= 0 for d in dims_) else 0


def tf_graph_report(graph: Any, name: str, input_size: Sequence[int] | None = None) -> GraphReport:
    """The graph questions on a tf.Graph: node count, op types, placeholders, the node with the most
    inputs (ties listed), the output (softmax) and the logits feeding it, parameters, MACs, shapes."""
    ops = graph.get_operations()
    holders = [op for op in ops if op.type == "Placeholder"]
    images = [op for op in holders if op.outputs[0].shape.rank == 4 and op.outputs[0].dtype.is_floating]
    fixed = _with_batch_one(graph, images[0].name, input_size) if len(images) == 1 else None
    shape_of = (lambda op: _static(fixed.get_operation_by_name(op.name).outputs[0].shape)) if fixed is not None \
        else (lambda op: _static(op.outputs[0].shape))

    variables = graph.get_collection("variables")
    if variables:
        params = sum(math.prod(v.shape.as_list()) for v in variables if v.shape.is_fully_defined())
        trainable = sum(math.prod(v.shape.as_list()) for v in graph.get_collection("trainable_variables")
                        if v.shape.is_fully_defined())
    else:  # a frozen graph: the weights are float constants
        params = trainable = sum(_size(op) for op in ops if op.type == "Const" and op.outputs[0].dtype.is_floating
                                 and _size(op) > 1)

    layers = []
    for op in ops:
        if op.type in _NOT_LAYERS or op.name.startswith(("save/", "init")) or not op.outputs:
            continue
        shape = shape_of(op)
        weights = [v for v in (_variable_source(t) for t in op.inputs) if v is not None]
        layers.append(LayerInfo(name=op.name, op=op.type, target=op.outputs[0].name, shape=shape,
                                params=sum(_size(v) for v in weights), macs=_macs(op, shape)))

    softmax = [op for op in ops if op.type == "Softmax"]
    output = softmax[-1] if softmax else None
    logits = output.inputs[0].op if output is not None else None
    in_hw = [int(d) for d in (input_size or [])]
    if not in_hw and images:
        s = images[0].outputs[0].shape.as_list()
        hw = s[1:3] if s[3] in (3, None) else s[2:4]
        in_hw = [int(d) for d in hw] if None not in hw else [0, 0]
    return GraphReport(
        model=name, input_size=in_hw or [0, 0], nodes=len(ops), op_counts=dict(Counter(op.type for op in ops)),
        placeholders=len(holders), placeholder_names=[op.name for op in holders],
        max_fan_in=most_inputs((op.name, op.type, len(op.inputs)) for op in ops),
        logits_node=logits.name if logits is not None else "", logits_target=logits.type if logits is not None else "",
        output_node=output.name if output is not None else "", params=params, trainable_params=trainable,
        macs=sum(layer.macs for layer in layers), layers=layers)


def _macs(op: Any, out: list[int] | None) -> int:
    """Multiply-accumulates of a convolution or matrix product for one image."""
    if not out:
        return 0
    per_image = math.prod(out[1:])
    if op.type in ("Conv2D", "DepthwiseConv2dNative") and len(op.inputs) > 1:
        kernel = op.inputs[1].shape.as_list() if op.inputs[1].shape.rank == 4 else None
        if not kernel or None in kernel:
            return 0
        return per_image * kernel[0] * kernel[1] * (kernel[2] if op.type == "Conv2D" else 1)
    if op.type in ("MatMul", "BatchMatMulV2"):
        a = op.inputs[0].shape.as_list() if op.inputs[0].shape.rank else None
        trans = op.type == "MatMul" and op.get_attr("transpose_a")
        k = (a[-2] if trans else a[-1]) if a else None
        return per_image * k if k else 0
    return 0
