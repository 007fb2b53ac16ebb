"""`cnnlab models`, `cnnlab predict`, `cnnlab inspect`: thin commands over the models, images and
inspect modules. `predict` is on the cold-start path: import nothing heavy here."""
from __future__ import annotations

from pathlib import Path

import click

from .common import echo_json, load_cli_model, model_options, warn

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def models_cmd(as_json: bool) -> None:
    """List the registered models and whether their weights are available offline."""
    from ..models import list_models
    rows = [{"name": e.name, "family": e.family, "description": e.description, "pretrained": e.pretrained,
             "offline": e.weights_available_offline(), "classes": e.default_classes} for e in list_models()]
    if as_json:
        echo_json(rows)
        return
    width = max(len(r["name"]) for r in rows) + 2
    click.echo(f"{'name':<{width}}{'family':<10}{'weights':<18}description")
    for r in rows:
        weights = {"bundled": "bundled (offline)", "none": "none"}.get(r["pretrained"]) or (
            "cached (offline)" if r["offline"] else "download")
        click.echo(f"{r['name']:<{width}}{r['family']:<10}{weights:<18}{r['description']}")
    click.echo(f"\n{len(rows)} models; 'download' weights are fetched into the torch hub cache on first use "
               "(offline: copy the file there, or pass --weights PATH).")


def expand_image_paths(items: tuple[str, ...]) -> list[str]:
    """Image arguments -> paths; a directory stands for the image files directly inside it (sorted)."""
    out: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(str(f) for f in sorted(p.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        else:
            out.append(item)
    return out


@click.command("predict")
@click.argument("images", nargs=-1, required=True)
@model_options
@click.option("-k", "--top-k", "k", default=3, show_default=True, type=click.IntRange(1, None),
              help="How many classes to show per image.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, None),
              help="Images loaded and classified at once.")
@click.option("--json", "as_json", is_flag=True, help='Print [{"image", "top": [{"index", "label", "prob"}]}].')
def predict_cmd(images: tuple[str, ...], model_name: str | None, weights: str | None, normalize: str | None,
                k: int, batch_size: int, as_json: bool) -> None:
    """Top-k classes with probabilities for each IMAGE (files or directories of images).

    Unreadable files are skipped and counted; the exit status is non-zero only if none succeeded.
    """
    from ..errors import CnnlabError
    from ..images import load_many
    paths = expand_image_paths(images)
    if not paths:
        raise CnnlabError(f"No image files found in {', '.join(images)}; pass image files or a directory holding them.")
    model = load_cli_model(model_name, weights, normalize)
    results, n_bad = [], 0
    for start in range(0, len(paths), batch_size):
        good, x, bad = load_many(paths[start:start + batch_size], model)
        for path, reason in bad:
            warn(reason)
        n_bad += len(bad)
        if x is None:
            continue
        for path, top in zip(good, model.predict(x, k=k)):
            results.append({"image": path, "top": [p.to_dict() for p in top]})
            if not as_json:
                click.echo(path)
                for rank, p in enumerate(top, 1):
                    click.echo(f"  {rank}. {p.label:<28} {p.prob:7.2%}  (class {p.index})")
    if as_json:
        echo_json(results)
    if n_bad:
        warn(f"skipped {n_bad} of {len(paths)} images that could not be read")
    if not results:
        raise CnnlabError(f"None of the {len(paths)} images could be read; see the warnings above.")


@click.command("inspect")
@model_options
@click.option("--input-size", nargs=2, type=click.IntRange(1, None), default=None, metavar="H W",
              help="Input height and width for shapes, MACs and receptive fields (default: the model's).")
@click.option("--layers", "show_layers", is_flag=True, help="Also list every layer with its output shape.")
@click.option("--json", "as_json", is_flag=True,
              help="Print nodes, op_counts, placeholders, max_fan_in, logits_node, params, macs, layers, stages.")
def inspect_cmd(model_name: str | None, weights: str | None, normalize: str | None,
                input_size: tuple[int, int] | None, show_layers: bool, as_json: bool) -> None:
    """Answer graph questions about a model: nodes, op types, inputs, fan-in, logits, params, MACs,
    per-layer shapes and each stage's receptive field (traced with torch.fx; no weights needed)."""
    from ..graph import inspect_model
    from ..models import create_model
    from .common import DEFAULT_MODEL
    if weights is None:  # the graph does not depend on the weights: never download for inspect
        model = create_model(model_name or DEFAULT_MODEL, pretrained=False, normalize=normalize)
    else:
        model = load_cli_model(model_name, weights, normalize)
    report = inspect_model(model, input_size)
    if as_json:
        echo_json(report.to_dict())
        return
    click.echo(report.summary())
    if show_layers:
        click.echo(f"\n{'node':<34}{'op':<20}{'output shape':<20}{'params':>10}{'MACs':>14}")
        for layer in report.layers:
            shape = "x".join(map(str, layer.shape)) if layer.shape else "-"
            click.echo(f"{layer.name:<34}{layer.op:<20}{shape:<20}{layer.params:>10,}{layer.macs:>14,}")
