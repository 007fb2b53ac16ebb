"""`cnnlab inspect`: graph statistics of a model (thin: parse, call cnnlab.inspect_model, print)."""
from __future__ import annotations

import click

from .common import ModelChoice, echo_json, model_options


@click.command("inspect")
@model_options
@click.option("--input-size", nargs=2, type=click.IntRange(1, None), default=None, metavar="H W",
              help="Input height and width for shapes, MACs and receptive fields (default: the model's).")
@click.option("--layers", "show_layers", is_flag=True, help="Also list every layer with its output shape.")
@click.option("--json", "as_json", is_flag=True,
              help="Print nodes, op_counts, placeholders, max_fan_in, logits_node, params, macs, layers, stages.")
def inspect_cmd(model_choice: ModelChoice, input_size: tuple[int, int] | None, show_layers: bool,
                as_json: bool) -> None:
    """Answer graph questions about a model: nodes, op types, inputs, the nodes with the most inputs,
    logits, params, MACs, per-layer shapes and each stage's receptive field (traced with torch.fx; no
    weights needed)."""
    from ..graph import inspect_model
    # the graph does not depend on the weights: never download them for inspect
    report = inspect_model(model_choice.load(pretrained=False), input_size)
    if as_json:
        echo_json(report.to_dict())
        return
    click.echo(report.summary())
    if show_layers:
        click.echo("\n" + report.layer_table())
