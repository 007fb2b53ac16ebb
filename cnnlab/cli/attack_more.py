"""`cnnlab patch` (a universal adversarial patch for a target class) and `cnnlab fool` (unrecognizable
images the model labels with >= 99% confidence). Thin: parse, call cnnlab.attacks, print."""
from __future__ import annotations

import json

import click

from ..errors import CnnlabError
from .common import FractionParam, echo_json, fresh_out_dir, load_cli_model, model_options


def _class(target: str) -> int | str:
    return int(target) if target.strip().lstrip("-").isdigit() else target


@click.command("patch")
@model_options
@click.option("--data", required=True, help="Labelled images: an .npz (x uint8 NHWC + y), a folder, or cifar10.")
@click.option("--target", required=True, help="Class the patch should force: a name or an index.")
@click.option("--area", type=FractionParam("--area", 0.0, 1.0), default=0.1, show_default=True,
              help="Patch size as a fraction of the image area.")
@click.option("--steps", type=click.IntRange(1, None), default=300, show_default=True, help="Optimization steps.")
@click.option("--limit", type=click.IntRange(4, None), default=400, show_default=True,
              help="Images to use (a seeded random subset); half optimize the patch, half test it.")
@click.option("--batch-size", type=click.IntRange(1, None), default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory for patch.png, patch.json, figures.")
@click.option("--force", is_flag=True, help="Write into an existing non-empty --out.")
@click.option("--json", "as_json", is_flag=True, help="Print patch.json to stdout.")
def patch_cmd(model_name: str | None, weights: str | None, normalize: str | None, data: str, target: str,
              area: float, steps: int, limit: int, batch_size: int, seed: int, out: str, force: bool,
              as_json: bool) -> None:
    """Optimize an adversarial patch (random place, scale, rotation) and test it on held-out images."""
    from ..attacks.evaluate import load_eval_data
    from ..attacks.patch import adversarial_patch
    from ..images import save_image
    out_dir = fresh_out_dir(out, force)
    model = load_cli_model(model_name, weights, normalize)
    tgt = model.class_index(_class(target))
    x, y, name = load_eval_data(data, model, limit, seed)
    x = x[y != tgt]
    if len(x) < 4:
        raise CnnlabError(f"Data '{name}' has fewer than 4 images outside class '{target}'; give more images.")
    half = len(x) // 2
    res = adversarial_patch(model, x[:half], tgt, x_test=x[half:], area=area, steps=steps, batch_size=batch_size,
                            seed=seed)
    doc = {**res.to_dict(), "data": name, "model": getattr(model, "name", "?")}
    doc["patch_png"] = str(save_image(res.patch, out_dir / "patch.png"))
    doc["figure"] = str(res.figure(out_dir / "figures" / "patch.png"))
    (out_dir / "patch.json").write_text(json.dumps(doc, indent=2))
    if as_json:
        echo_json(doc)
        return
    click.echo(f"patch for '{res.target_label}' ({res.area:.1%} of the image, {steps} steps on {half} images)")
    click.echo(f"targeted success on the optimization images {res.train_success:7.2%}")
    click.echo(f"targeted success on held-out images          {res.heldout_success:7.2%}  "
               f"({res.heldout_n} images x {res.heldout_placements} random placements)")
    click.echo(f"wrote {out_dir / 'patch.json'}, {doc['patch_png']} and {doc['figure']}")


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
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory for PNGs, fool.json, figure.")
@click.option("--force", is_flag=True, help="Write into an existing non-empty --out.")
@click.option("--json", "as_json", is_flag=True, help="Print fool.json to stdout.")
def fool_cmd(model_name: str | None, weights: str | None, normalize: str | None, target: str, method: str,
             steps: int | None, confidence: float, seed: int, out: str, force: bool, as_json: bool) -> None:
    """Make images nobody would recognize that the model labels with high confidence (Nguyen et al. 2015)."""
    from ..attacks.fooling import fooling_evolve, fooling_gradient
    from ..images import save_image
    out_dir = fresh_out_dir(out, force)
    model = load_cli_model(model_name, weights, normalize)
    names = [t.strip() for t in target.split(",") if t.strip()]
    targets = list(range(model.num_classes)) if names == ["all"] else [model.class_index(_class(t)) for t in names]
    if method == "gradient":
        res = fooling_gradient(model, targets, steps=steps or 200, threshold=confidence, seed=seed)
    else:
        res = fooling_evolve(model, targets, generations=steps or 300, threshold=confidence, seed=seed)
    doc = {**res.to_dict(), "model": getattr(model, "name", "?")}
    for i, row in enumerate(doc["images"]):
        stem = f"fool_{row['target']['index']}_{row['target']['label'].split(',')[0].replace(' ', '_').replace('/', '_')}"
        row["png"] = str(save_image(res.images[i], out_dir / f"{stem}.png"))
    doc["figure"] = str(res.figure(out_dir / "figures" / "fooling.png"))
    (out_dir / "fool.json").write_text(json.dumps(doc, indent=2))
    if as_json:
        echo_json(doc)
        return
    unit = "gradient steps" if method == "gradient" else "queries"
    for row in doc["images"]:
        click.echo(f"{row['target']['label']}: confidence {row['confidence']:.4f} after {row['calls']} {unit}"
                   + ("" if row["success"] else f"  (below {confidence:g})"))
    click.echo(f"{sum(r['success'] for r in doc['images'])}/{len(doc['images'])} reached {confidence:g}; "
               f"wrote {out_dir / 'fool.json'} and {doc['figure']}")
