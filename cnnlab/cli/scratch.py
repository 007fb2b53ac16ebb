"""`cnnlab scratch-check`: our numpy forward pass and unfold convolution against PyTorch (thin: parse, call, print)."""
from __future__ import annotations

import sys

import click

from .common import echo_json, model_name_option, weights_option


@click.command("scratch-check")
@model_name_option(default="simple_cnn", help_text="Registered model to check (random weights unless --weights).")
@weights_option()
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096),
              help="Images per comparison and per timed training step.")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1, 100),
              help="Timed repetitions (the median is reported).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the random images and weights.")
@click.option("--no-speed", is_flag=True, help="Skip the timing.")
@click.option("--no-memory", is_flag=True, help="Skip the memory measurement (two fresh processes).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def scratch_check_cmd(model_name: str, weights: str | None, batch_size: int, repeats: int, seed: int,
                      no_speed: bool, no_memory: bool, as_json: bool) -> None:
    """Compare the from-scratch layers with PyTorch: max errors of UnfoldConv2d (forward, dX, dW, db,
    gradcheck), of a model converted to it, and of the numpy forward pass; then speed and memory ratios.

    Exits with status 1 when any error is above its tolerance.
    """
    from ..reference.checks import scratch_check
    report = scratch_check(model_name, batch_size=batch_size, seed=seed, repeats=repeats, speed=not no_speed,
                           memory=not no_memory, weights=weights)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.table())
    if not report.passed:
        sys.exit(1)
