"""`cnnlab fool`: images nobody would recognize that the model labels with >= 99% confidence.
Thin: parse, call cnnlab.attacks, print."""
from __future__ import annotations

import click

from .common import FractionParam, echo_json, fresh_out_dir, load_cli_model, model_options


@click.command("fool")
@model_options
@click.option("--target", required=True,
              help="Class(es) to fool into, comma-separated names or indices, or 'all' (every class).")
@click.option("--method", type=click.Choice(["gradient", "evolve"]), default="gradient", show_default=True,
              help="gradient: ascent from noise (white-box); evolve: evolutionary search on outputs only.")
@click.option("--steps", type=click.IntRange(1, None), default=None,
              help="Gradient steps or generations [200 / 300].")
@click.option("--confidence", type=FractionParam("--confidence", 0.0, 1.0), default=0.99, show_default=True,
              help="Stop once the model is this sure.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the starting noise.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory for PNGs, fool.json, figure.")
@click.option("--force", is_flag=True, help="Write into an existing non-empty --out.")
@click.option("--json", "as_json", is_flag=True, help="Print fool.json to stdout.")
def fool_cmd(model_name: str | None, weights: str | None, normalize: str | None, target: str, method: str,
             steps: int | None, confidence: float, seed: int, out: str, force: bool, as_json: bool) -> None:
    """Make images nobody would recognize that the model labels with high confidence (Nguyen et al. 2015)."""
    from ..attacks import fooling_images
    out_dir = fresh_out_dir(out, force)
    model = load_cli_model(model_name, weights, normalize)
    targets = [t.strip() for t in target.split(",") if t.strip()]
    res = fooling_images(model, targets, method, steps=steps, threshold=confidence, seed=seed)
    doc = res.save(out_dir)
    if as_json:
        echo_json(doc)
        return
    for row in doc["images"]:
        click.echo(f"{row['target']['label']}: confidence {row['confidence']:.4f} after {row['calls']} "
                   f"{res.calls_unit}" + ("" if row["success"] else f"  (below {confidence:g})"))
    click.echo(f"{sum(r['success'] for r in doc['images'])}/{len(doc['images'])} reached {confidence:g}; "
               f"wrote {doc['json']} and {doc['figure']}")
