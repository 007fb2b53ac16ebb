"""`cnnlab patch`: a universal adversarial patch for a target class, optimized on half of a labelled
dataset and tested on the other half. Thin: parse, call cnnlab.attacks, print."""
from __future__ import annotations

import click

from .common import FractionParam, echo_json, fresh_out_dir, load_cli_model, model_options


@click.command("patch")
@model_options
@click.option("--data", required=True, help="Labelled images: an .npz (x uint8 NHWC + y), a folder, or cifar10.")
@click.option("--target", required=True, help="Class the patch should force: a name or an index.")
@click.option("--area", type=FractionParam("--area", 0.0, 1.0), default=0.1, show_default=True,
              help="Patch size as a fraction of the image area.")
@click.option("--steps", type=click.IntRange(1, None), default=300, show_default=True, help="Optimization steps.")
@click.option("--limit", type=click.IntRange(4, None), default=400, show_default=True,
              help="Images to use (a seeded random subset); half optimize the patch, half test it.")
@click.option("--batch-size", type=click.IntRange(1, None), default=32, show_default=True,
              help="Images per optimization step.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the image subset, the starting patch and its random placements.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory for patch.png, patch.json, figures.")
@click.option("--force", is_flag=True, help="Write into an existing non-empty --out.")
@click.option("--json", "as_json", is_flag=True, help="Print patch.json to stdout.")
def patch_cmd(model_name: str | None, weights: str | None, normalize: str | None, data: str, target: str,
              area: float, steps: int, limit: int, batch_size: int, seed: int, out: str, force: bool,
              as_json: bool) -> None:
    """Optimize an adversarial patch (random place, scale, rotation) and test it on held-out images."""
    from ..attacks import patch_from_data
    out_dir = fresh_out_dir(out, force)
    model = load_cli_model(model_name, weights, normalize)
    res = patch_from_data(model, data, target, limit=limit, seed=seed, area=area, steps=steps, batch_size=batch_size)
    doc = res.save(out_dir)
    if as_json:
        echo_json(doc)
        return
    click.echo(f"patch for '{res.target_label}' ({res.area:.1%} of the image, {steps} steps on "
               f"{res.params['train_n']} images)")
    click.echo(f"targeted success on the optimization images {res.train_success:7.2%}")
    click.echo(f"targeted success on held-out images          {res.heldout_success:7.2%}  "
               f"({res.heldout_n} images x {res.heldout_placements} random placements)")
    click.echo(f"wrote {doc['json']}, {doc['patch_png']} and {doc['figure']}")
