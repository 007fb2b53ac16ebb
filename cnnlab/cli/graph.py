"""`cnnlab inspect`: graph statistics of a model (thin: parse, call cnnlab.inspect_model or
cnnlab.interop.inspect_model_file, print)."""
from __future__ import annotations

import click

from ..errors import CnnlabError
from .common import ModelChoice, echo_json, model_options


@click.command("inspect")
@click.argument("file", required=False, metavar="[MODEL_FILE]")
@model_options
@click.option("--input-size", nargs=2, type=click.IntRange(1, None), default=None, metavar="H W",
              help="Input height and width for shapes, MACs and receptive fields (default: the model's).")
@click.option("--layers", "show_layers", is_flag=True, help="Also list every layer with its output shape.")
@click.option("--json", "as_json", is_flag=True,
              help="Print nodes, op_counts, placeholders, max_fan_in, logits_node, params, macs, layers, stages.")
def inspect_cmd(file: str | None, model_choice: ModelChoice, input_size: tuple[int, int] | None,
                show_layers: bool, as_json: bool) -> None:
    """Answer graph questions about a model: nodes, op types, inputs, the nodes with the most inputs,
    logits, params, MACs, per-layer shapes and each stage's receptive field (traced with torch.fx; no
    weights needed).

    MODEL_FILE (or --model-file) is a model from another framework, answered on its own graph: an ONNX
    file, a TF1 graph (.meta, as TensorFlow sees it: every operation is a node), or a Keras model or
    SavedModel (on its ONNX conversion).
    """
    path = file or model_choice.model_file
    if path is not None:
        from ..interop import inspect_model_file
        if model_choice.model_name or model_choice.weights or (file and model_choice.model_file):
            raise CnnlabError("Inspect either a model file or a registered --model (with --weights), not both.")
        report = inspect_model_file(path, input_size)
    else:
        from ..graph import inspect_model
        # the graph does not depend on the weights: never download them for inspect
        report = inspect_model(model_choice.load(pretrained=False), input_size)
    if as_json:
        echo_json(report.to_dict())
        return
    click.echo(report.summary())
    if show_layers:
        click.echo("\n" + report.layer_table())
