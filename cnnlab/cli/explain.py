"""`cnnlab featmaps | filters | saliency | dream | top-activations`: thin shells over cnnlab.explain.

Each writes PNG figures (and a JSON summary) into --out, optionally TensorBoard images too.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import CnnlabError
from .common import ModelChoice, Number, classes_option, echo_json, fresh_out_dir, load_or_skip, model_options, warn

if TYPE_CHECKING:
    import torch

    from ..data import Dataset
    from ..models import Classifier

class LibraryHelp(click.Option):
    """An option whose help text is read from the library when --help is shown: the attribution
    registry owns the method names and their defaults, and importing this module stays free of torch."""

    def __init__(self, *args: Any, help_from: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help_from = help_from

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = self.help_from()
        return super().get_help_record(ctx)


def _method_default(method: str, option: str) -> str:
    from ..explain import method_spec
    return f"[default: {method_spec(method).options[option]}]"


def _scores() -> str:
    from ..explain.attribution import SCORES
    return " or ".join(SCORES)


def _method_names() -> str:
    from ..explain import METHODS
    return ", ".join(METHODS)


def _out_options(default: str) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        fn = click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")(fn)
        fn = click.option("--tensorboard", type=click.Path(file_okay=False), default=None,
                          help="Also write the figures as TensorBoard images into this log directory.")(fn)
        fn = click.option("--force", is_flag=True, help="Write into an existing non-empty --out.")(fn)
        fn = click.option("--out", type=click.Path(file_okay=False), default=None,
                          help=f"Directory for the PNG figures and summary JSON [default: ./{default}, "
                               f"or {default}-2, -3... if that exists].")(fn)
        return fn
    return deco


def _check_out(out: str | None, force: bool) -> None:
    """Refuse a non-empty --out before any work is done (nothing of the user's is overwritten)."""
    if out is None:
        return
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise CnnlabError(f"--out '{out}' is a file; choose a directory for the figures.")
    if p.exists() and any(p.iterdir()) and not force:
        fresh_out_dir(out, force)  # raises the one-sentence error


def _out_dir(out: str | None, force: bool, default: str) -> Path:
    """--out as given (refusing a non-empty one without --force), else a new ./default[-N]."""
    if out is not None:
        _check_out(out, force)
        return fresh_out_dir(out, force)
    path, n = Path(default), 1
    while path.exists() and any(path.iterdir()):
        n += 1
        path = Path(f"{default}-{n}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _finish(out: Path, summary: dict, images: dict, tensorboard: str | None, as_json: bool, name: str) -> None:
    from ..runs import write_json
    write_json(out / f"{name}.json", summary)
    if tensorboard:
        from ..explain.figures import write_tensorboard
        write_tensorboard(tensorboard, images)
        summary["tensorboard"] = tensorboard
    if as_json:
        echo_json(summary)
    else:
        for p in summary.get("figures", []):
            click.echo(f"wrote {p}")
        if tensorboard:
            click.echo(f"TensorBoard images in {tensorboard} (tensorboard --logdir {tensorboard})")


def _image_or_default(image: str | None, model: Classifier) -> tuple[torch.Tensor, str]:
    from ..images import bundled_photo, load_images
    src = image if image is not None else bundled_photo("chelsea")
    if image is None:
        click.echo("no IMAGE given: using scikit-image's photo 'chelsea' (a cat)", err=True)
    return load_images(src, model), Path(str(src)).stem


@click.command("featmaps")
@click.argument("image", required=False, type=click.Path(dir_okay=False))
@model_options
@click.option("--layer", "layers", multiple=True,
              help="Layer name, or early/middle/late (repeatable) [default: early, middle, late].")
@click.option("-k", "--top-k", "k", type=click.IntRange(1, 256), default=5, show_default=True,
              help="How many of the most active channels per layer.")
@click.option("--channels", default=None, help="Show these channels instead, e.g. 0,5,9 (same for every layer).")
@click.option("--rank", type=click.Choice(["mean", "max"]), default="mean", show_default=True,
              help="Rank channels by mean or max activation.")
@_out_options("featmaps")
def featmaps_cmd(image: str | None, model_choice: ModelChoice,
                 layers: tuple[str, ...], k: int, channels: str | None, rank: str, out: str | None, force: bool,
                 tensorboard: str | None, as_json: bool) -> None:
    """Feature maps of IMAGE at early/middle/late layers, each normalized to [0,1], as one figure."""
    from ..explain import feature_maps
    from ..images import save_image
    model = model_choice.load()
    x, stem = _image_or_default(image, model)
    chans = _int_list(channels, "--channels") if channels else None
    fm = feature_maps(model, x, list(layers) or ["early", "middle", "late"], k=k, channels=chans, rank=rank)
    d = _out_dir(out, force, "featmaps")
    figs = [fm.figure(d / f"featmaps_{stem}.png")]
    grids = {f"featmaps/{n}": fm.grid(n) for n in fm.layers}
    for n in fm.layers:
        figs.append(save_image(fm.grid(n), d / f"maps_{n.replace('.', '_')}.png"))
    summary = {**fm.to_dict(), "image": image or "chelsea", "figures": [str(p) for p in figs]}
    if not as_json:
        for n, req in zip(fm.layers, fm.requested):
            click.echo(f"{req:>8} -> {n} {fm.shapes[n]}: channels {fm.channels[n]}")
        for note in fm.notes:
            click.echo(f"note: {note}", err=True)
    _finish(d, summary, grids, tensorboard, as_json, "featmaps")


@click.command("filters")
@model_options
@click.option("--layer", default=None, help="A Conv2d over RGB (or a Linear on pixels) [default: the first layer].")
@click.option("--columns", type=click.IntRange(1, 256), default=None,
              help="Filters per row [default: 16 for 32+ filters, so 64 filters make 4 rows x 16].")
@_out_options("filters")
def filters_cmd(model_choice: ModelChoice, layer: str | None,
                columns: int | None, out: str | None, force: bool, tensorboard: str | None, as_json: bool) -> None:
    """First-layer filters as one titled RGB grid, each contrast-stretched; a linear model's class templates."""
    from ..explain import filters
    model = model_choice.load()
    f = filters(model, layer)
    d = _out_dir(out, force, "filters")
    figs = [f.figure(d / "filters.png", ncols=columns)]
    if f.kind == "templates":
        figs.append(f.panels(d / "templates.png"))
    summary = {**f.to_dict(), "figures": [str(p) for p in figs]}
    if not as_json:
        click.echo(f"{f.kind} of layer '{f.layer}': {len(f.filters)} filters, weight shape {f.weight_shape}")
    _finish(d, summary, {"filters": f.image(ncols=columns)}, tensorboard, as_json, "filters")


@click.command("saliency")
@click.argument("images", nargs=-1, type=click.Path(dir_okay=False))
@model_options
@click.option("--method", default="gradient", show_default=True, cls=LibraryHelp,
              help_from=lambda: f"{_method_names()}, a comma list, or all.")
@click.option("--target", default=None, help="Class to explain: a name or index [default: each image's prediction].")
@click.option("--layer", default=None, help="Grad-CAM layer: a name or early/middle/late [default: last feature layer].")
@click.option("--steps", type=click.IntRange(1, 10000), default=None, cls=LibraryHelp,
              help_from=lambda: f"Integrated Gradients steps {_method_default('ig', 'steps')}.")
@click.option("--samples", type=click.IntRange(1, 10000), default=None, cls=LibraryHelp,
              help_from=lambda: f"SmoothGrad samples {_method_default('smoothgrad', 'samples')}.")
@click.option("--sigma", type=Number(0.0), default=None, cls=LibraryHelp,
              help_from=lambda: f"SmoothGrad noise std in pixel units {_method_default('smoothgrad', 'sigma')}.")
@click.option("--score", default=None, cls=LibraryHelp,
              help_from=lambda: f"What gradient methods differentiate, {_scores()}: the target's logit or its "
                                f"cross-entropy loss {_method_default('gradient', 'score')}.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None,
              help="Interpolation points / noisy copies per forward pass (bounds memory) [default: by image size].")
@_out_options("saliency")
def saliency_cmd(images: tuple[str, ...], model_choice: ModelChoice,
                 method: str, target: str | None, layer: str | None, steps: int | None, samples: int | None,
                 sigma: float | None, score: str | None, batch_size: int | None, out: str | None, force: bool,
                 tensorboard: str | None, as_json: bool) -> None:
    """Attribution maps of IMAGES (gradient saliency by default), with overlays, in --out.

    Unreadable files are skipped and counted; the exit status is non-zero only if none could be read.
    """
    from ..explain import attribute
    from ..explain import attributions_figure
    from ..explain.attribution import method_specs
    from ..images import bundled_photo, save_image, unique_stems
    specs = method_specs(method, "--method")
    model = model_choice.load()
    if not images:
        click.echo("no IMAGES given: using scikit-image's photo 'chelsea' (a cat)", err=True)
    srcs, x = load_or_skip([str(s) for s in images] or [str(bundled_photo("chelsea"))], model)
    _check_out(out, force)
    given = {"layer": layer, "steps": steps, "samples": samples, "sigma": sigma, "score": score,
             "batch_size": batch_size}
    results = [attribute(model, x, target=target, method=spec.name, **spec.pick(given)) for spec in specs]
    d = _out_dir(out, force, "saliency")
    summary: dict = {"images": srcs, "methods": {}, "figures": []}
    if len(srcs) < len(images):
        summary["skipped"] = len(images) - len(srcs)
    stems = unique_stems(srcs)
    tb: dict = {}
    for a in results:
        key = a.method
        summary["methods"][key] = a.to_dict()
        summary["figures"].append(str(a.figure(d / f"saliency_{key}.png")))
        for i, (ov, stem) in enumerate(zip(a.overlays(), stems)):
            p = save_image(ov, d / f"{key}_{i:02d}_{stem}.png")
            tb[f"{key}/{i:02d}_{stem}"] = ov
            summary["figures"].append(str(p))
        if not as_json:
            click.echo(a.summary())
            for note in a.notes:
                click.echo(f"note: {note}", err=True)
    if len(results) > 1:
        summary["figures"].insert(0, str(attributions_figure(results, d / "saliency_methods.png")))
    _finish(d, summary, tb, tensorboard, as_json, "saliency")
    if len(srcs) < len(images):
        warn(f"skipped {len(images) - len(srcs)} of {len(images)} images that could not be read")


@click.command("dream")
@click.argument("image", required=False, type=click.Path(dir_okay=False))
@model_options
@click.option("--objective", default=None,
              help="What to maximize: LAYER:CH (channel), LAYER:CH@Y,X (neuron), LAYER (DeepDream), class:NAME, "
                   "and weighted sums like 'middle:5*2 + middle:16'. LAYER may be early/middle/late "
                   "[default: 'middle' (DeepDream)].")
@click.option("--steps", type=click.IntRange(1, 100000), default=256, show_default=True, help="Optimization steps.")
@click.option("--lr", type=Number(0.0), default=0.05, show_default=True, help="Adam learning rate.")
@click.option("--reg", "regs", multiple=True,
              help="Regularizers (repeatable, NAME or NAME:VALUE): fft, decorrelate, jitter, scale, rotate, "
                   "blur, tv, or a preset none/default/classic [default: default].")
@click.option("--compare", is_flag=True, help="Also optimize without regularization and show both side by side.")
@click.option("--canvas", type=click.IntRange(8, 2048), default=None,
              help="Side of the optimized image [default: the model's input, 4x for small inputs].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the starting noise and the jitter.")
@_out_options("dream")
def dream_cmd(image: str | None, model_choice: ModelChoice,
              objective: str | None, steps: int, lr: float, regs: tuple[str, ...], compare: bool,
              canvas: int | None, seed: int, out: str | None, force: bool, tensorboard: str | None,
              as_json: bool) -> None:
    """Feature visualization: optimize an image (from noise, or from IMAGE) to excite a unit."""
    from ..explain import compare_regularization, parse_objective, visualize
    from ..images import load_images
    model = model_choice.load()
    obj = parse_objective(model, objective or "middle")
    start = load_images(image, model) if image else None
    reg = list(regs) or "default"
    _check_out(out, force)
    v = visualize(model, obj, steps=steps, lr=lr, regularizers=reg, start=start, canvas=canvas, seed=seed)
    d = _out_dir(out, force, "dream")
    figs = [v.save(d / "dream.png"), v.figure(d / "dream_curve.png")]
    tb = {"dream/regularized": v.image}
    summary = {**v.to_dict(), "start": image or "noise"}
    if compare:
        plain, _, path = compare_regularization(model, obj, steps=steps, regularizers=reg, lr=lr, start=start,
                                                canvas=canvas, seed=seed, path=d / "dream_compare.png")
        figs.append(path)
        tb["dream/unregularized"] = plain.image
        summary["unregularized"] = plain.to_dict()
    summary["figures"] = [str(p) for p in figs]
    if not as_json:
        click.echo(f"{obj.name}: {v.start_value:.3f} -> {v.final_value:.3f} in {steps} steps ({v.seconds:.1f} s)")
    _finish(d, summary, tb, tensorboard, as_json, "dream")


@click.command("top-activations")
@model_options
@click.option("--data", "data", multiple=True, required=True,
              help="Images to scan (repeatable): any dataset the other commands read (cifar10, an .npz/.npy of "
                   "arrays or photos, a folder of class folders or of images), or image files.")
@click.option("--layer", default="middle", show_default=True, help="Layer name or early/middle/late.")
@click.option("--channel", type=int, default=0, show_default=True, help="Channel of the layer.")
@click.option("-k", "--top-k", "k", type=click.IntRange(1, 1000), default=9, show_default=True,
              help="How many top images.")
@click.option("--reduce", type=click.Choice(["max", "mean"]), default="max", show_default=True,
              help="Score an image by the channel's spatial max or mean.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Images per forward pass.")
@click.option("--split", type=click.Choice(["all", "train", "test"]), default="all", show_default=True,
              help="Which part of a dataset to scan.")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Scan a seeded random subset of this many images (the same subset as every --limit).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of that subset.")
@classes_option()
@_out_options("top-activations")
def top_activations_cmd(data: tuple[str, ...], model_choice: ModelChoice,
                        layer: str, channel: int, k: int, reduce: str, batch_size: int, split: str,
                        limit: int | None, seed: int, classes: str | None, out: str | None, force: bool,
                        tensorboard: str | None, as_json: bool) -> None:
    """The --data images that most excite one channel, with the receptive-field patch of the strongest
    position and each image's label."""
    from ..explain import top_activations
    model = model_choice.load()
    items = _scan_source(data, split, limit, seed, classes)
    _check_out(out, force)
    ta = top_activations(model, items, layer, channel, k=k, batch_size=batch_size, reduce=reduce)
    files = [items.paths[i] for i in ta.indices] if hasattr(items, "paths") else None
    index = items.meta.get("index")
    if index is not None:  # a --limit subset: report the source's own indices
        ta.indices = [int(index[i]) for i in ta.indices]
    d = _out_dir(out, force, "top-activations")
    fig = ta.figure(d / "top_activations.png")
    summary = {**ta.to_dict(), "data": list(data), "split": split, "limit": limit, "seed": seed,
               "figures": [str(fig)]}
    if files is not None:
        summary["files"] = files
    if not as_json:
        click.echo(f"scanned {ta.scanned} images in {ta.seconds:.1f} s; {ta.layer}:{ta.channel} strongest in "
                   + ", ".join(f"#{i} ({v:.2f}{', ' + lab if lab else ''})"
                               for i, v, lab in zip(ta.indices, ta.values, ta.labels)))
    from ..images import make_grid
    _finish(d, summary, {"top_activations/patches": make_grid(ta.images)}, tensorboard, as_json, "top_activations")


def _scan_source(data: tuple[str, ...], split: str, limit: int | None, seed: int, classes: str | None) -> Dataset:
    """DATA as a dataset: one source the data resolver reads, or image files (and folders of them)."""
    import numpy as np

    from ..data import ImageFiles, select_images
    from ..images import IMAGE_SUFFIXES, expand_image_paths
    if len(data) == 1 and not Path(data[0]).suffix.lower() in IMAGE_SUFFIXES:
        return select_images(data[0], split, limit=limit, seed=seed, classes=classes)
    files = expand_image_paths(data, recursive=True)
    if not files:
        raise CnnlabError(f"No image files found in {', '.join(data)}; pass image files, folders or a dataset.")
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise CnnlabError(f"Image '{missing[0]}' does not exist; check the path.")
    return select_images(ImageFiles(files, np.full(len(files), -1, dtype=np.int64), [], "images"),
                         limit=limit, seed=seed, classes=classes)


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CnnlabError(f"{what} '{text}' must be whole numbers separated by commas, e.g. 0,5,9.") from None
