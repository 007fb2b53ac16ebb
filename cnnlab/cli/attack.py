"""`cnnlab attack IMAGE...` (one or a few images, figures and attack.json) and `cnnlab attack-eval`
(accuracy under attack on a dataset). Thin: parse, call cnnlab.attacks, print."""
from __future__ import annotations

import click

from ..errors import CnnlabError
from .common import FractionParam, echo_json, fresh_out_dir, load_cli_model, model_options

ATTACK_METHODS = ["logit-descent", "prob-descent", "logit-ascent", "prob-ascent", "fgsm", "bim", "pgd", "pgd-l2",
                  "apgd", "apgd-l2", "deepfool", "square", "spatial", "transfer"]
EVAL_METHODS = ["fgsm", "bim", "pgd", "pgd-l2", "apgd", "apgd-l2", "deepfool", "square", "spatial"]


def _method_option(choices: list[str], default: str):  # noqa: ANN202
    return click.option("--method", default=default, show_default=True,
                        help="Attack: " + ", ".join(choices) + ".")


def _check_method(method: str) -> None:
    from ..attacks.methods import method_names
    from ..errors import unknown
    if method not in method_names():
        raise unknown("attack method", method, method_names())


@click.command("attack")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@model_options
@_method_option(ATTACK_METHODS, "pgd")
@click.option("--target", default=None,
              help="Class to push towards: a name (toaster), an index (859), least-likely or random. "
                   "Without it the attack moves away from the current class.")
@click.option("--eps", type=FractionParam("--eps", 0.0, 1e6), default=None,
              help="Perturbation budget in pixel units, e.g. 2/255 (L-inf, in [0,1]) or an L2 radius for *-l2 [method default: 8/255; "
                   "none for descent/ascent].")
@click.option("--steps", type=int, default=None, help="Gradient steps [method default].")
@click.option("--step-size", type=FractionParam("--step-size", 0.0, 10.0), default=None,
              help="Step size, e.g. 1/255 or 0.1 [method default].")
@click.option("--keep-going", is_flag=True,
              help="Descent/ascent: run all --steps instead of stopping at the first change (see which classes follow).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random starts and targets.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory for figures and attack.json.")
@click.option("--force", is_flag=True, help="Write into an existing non-empty --out.")
@click.option("--no-robustness", is_flag=True, help="Skip the flip/crop/rotate/grayscale/JPEG/blur table.")
@click.option("--json", "as_json", is_flag=True, help="Print attack.json to stdout.")
def attack_cmd(images: tuple[str, ...], model_name: str | None, weights: str | None, normalize: str | None,
               method: str, target: str | None, eps: float | None, steps: int | None, step_size: float | None,
               keep_going: bool, seed: int, out: str, force: bool, no_robustness: bool, as_json: bool) -> None:
    """Make adversarial versions of IMAGE(s) and save figures, PNGs and attack.json in --out."""
    from ..attacks.methods import attack
    from ..attacks.output import save_attack
    from ..images import load_images
    _check_method(method)
    if steps is not None and steps <= 0:
        raise CnnlabError(f"--steps must be a positive whole number, got {steps}.")
    model = load_cli_model(model_name, weights, normalize)
    x = load_images(list(images), model)
    if target is not None and target.strip().lstrip("-").isdigit():
        target = int(target)
    result = attack(model, x, method, target=target, eps=eps, steps=steps, step_size=step_size, seed=seed,
                    keep_going=keep_going)
    out_dir = fresh_out_dir(out, force)
    doc = save_attack(result, model, out_dir, names=list(images), robustness=not no_robustness)
    if as_json:
        echo_json(doc)
        return
    for name, row in zip(images, doc["images"]):
        o, f = row["original"], row["final"]
        verdict = "fooled" if row["success"] else "NOT fooled"
        click.echo(f"{name}: {o['label']} ({o['prob']:.3f}) -> {f['label']} ({f['prob']:.3f}) {verdict} after "
                   f"{row['steps']} steps, L-inf {row['linf_255']:.2f}/255, L2 {row['l2']:.3f}"
                   + ("" if row["png_still_adversarial"] or not row["success"] else
                      "  [the 8-bit PNG rounds the perturbation away]"))
        if row.get("classes_seen") and len(row["classes_seen"]) > 2:
            click.echo("  classes over the steps: " + " -> ".join(
                f"{c['label'].split(',')[0]}@{c['step']}" for c in row["classes_seen"]))
    click.echo(f"wrote {doc['json']} and {len(doc['figures'])} figures in {out_dir / 'figures'}")


@click.command("attack-eval")
@model_options
@click.option("--data", required=True, help="Labelled images: an .npz (x uint8 NHWC + y), a folder, or cifar10.")
@_method_option(EVAL_METHODS, "pgd")
@click.option("--eps", type=FractionParam("--eps", 0.0, 1e6), default=8 / 255, show_default="8/255",
              help="Perturbation budget (L-inf in pixel units, or the L2 radius for *-l2).")
@click.option("--steps", type=int, default=None,
              help="Attack steps [10 for gradient attacks; the query budget for square: 1000].")
@click.option("--step-size", type=FractionParam("--step-size", 0.0, 10.0), default=None,
              help="Step size [2.5 * eps / steps].")
@click.option("--target", default=None, help="Targeted evaluation: a class, least-likely or random.")
@click.option("--limit", type=click.IntRange(1, None), default=None,
              help="Evaluate a seeded random subset of this many images.")
@click.option("--batch-size", type=click.IntRange(1, None), default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: clean_acc, robust_acc, success_rate, linf, l2, images_per_s, ...")
def attack_eval_cmd(model_name: str | None, weights: str | None, normalize: str | None, data: str, method: str,
                    eps: float, steps: int | None, step_size: float | None, target: str | None,
                    limit: int | None, batch_size: int, seed: int, as_json: bool) -> None:
    """Clean and robust accuracy of a model under an attack on a labelled dataset."""
    from ..attacks.evaluate import attack_eval
    _check_method(method)
    if method in ("logit-descent", "prob-descent", "logit-ascent", "prob-ascent"):
        raise CnnlabError(f"--method {method} is a single-image exercise; evaluate with fgsm, bim, pgd or apgd.")
    if steps is None and method not in ("square", "deepfool", "deepfool-linf", "spatial", "transfer"):
        steps = 10
    if steps is not None and steps <= 0:
        raise CnnlabError(f"--steps must be a positive whole number, got {steps}.")
    model = load_cli_model(model_name, weights, normalize)
    if target is not None and target.strip().lstrip("-").isdigit():
        target = int(target)
    res = attack_eval(model, data, method, eps=eps, steps=steps, step_size=step_size, target=target, limit=limit,
                      batch_size=batch_size, seed=seed)
    if as_json:
        echo_json(res)
        return
    for line in res.lines():
        click.echo(line)
