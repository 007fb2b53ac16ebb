"""`cnnlab attack IMAGE...` (one or a few images, figures and attack.json) and `cnnlab attack-eval`
(accuracy under attack on a dataset, for one eps or a list). Thin: parse, call cnnlab.attacks, print.

The methods, their defaults and their help come from cnnlab.attacks' registry, read only when a
command runs or shows its help (parsing the command line does not import torch)."""
from __future__ import annotations

import click

from .common import (FractionParam, ModelChoice, echo_json, fresh_out_dir, join_processes, load_cli_model,
                     load_or_skip, model_options, parse_fraction, warn)


class MethodsCommand(click.Command):
    """A command whose help ends with the registered attacks, one line each."""

    def __init__(self, *args: object, evaluable: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.evaluable = evaluable

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from ..attacks import ATTACKS
        with formatter.section("Methods (--method)"):
            formatter.write_dl([(s.name, s.summary()) for s in ATTACKS.values() if s.evaluable or not self.evaluable])
        super().format_epilog(ctx, formatter)


class FractionList(click.ParamType):
    """Comma-separated values written as fractions: '8/255' or '2/255,4/255,8/255'."""

    name = "EPS[,EPS...]"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> list[float]:
        if isinstance(value, list):
            return value
        from ..errors import CnnlabError
        try:
            return [parse_fraction(v, "--eps", 0.0, 1e6) for v in str(value).split(",") if v.strip()]
        except CnnlabError as e:
            self.fail(str(e), param, ctx)


@click.command("attack", cls=MethodsCommand)
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@model_options
@click.option("--method", default="pgd", show_default=True, help="Attack method (listed below).")
@click.option("--target", default=None,
              help="Class to push towards: a name (toaster), an index (859), least-likely or random. "
                   "Without it the attack moves away from the current class.")
@click.option("--eps", type=FractionParam("--eps", 0.0, 1e6), default=None,
              help="Perturbation budget in pixel units, e.g. 2/255 (L-inf, in [0,1]) or an L2 radius for *-l2 "
                   "[method default].")
@click.option("--steps", type=int, default=None, help="Gradient steps, or the query budget of square [method default].")
@click.option("--step-size", type=FractionParam("--step-size", 0.0, 10.0), default=None,
              help="Step size, e.g. 1/255 or 0.1 [method default].")
@click.option("--early-stop/--no-early-stop", default=None,
              help="Stop each image at its first success, or run every step (a descent then shows which classes "
                   "follow) [method default].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random starts and targets.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory for figures and attack.json.")
@click.option("--force", is_flag=True, help="Write into an existing non-empty --out.")
@click.option("--no-robustness", is_flag=True, help="Skip the flip/crop/rotate/grayscale/JPEG/blur table.")
@click.option("--json", "as_json", is_flag=True, help="Print attack.json to stdout.")
def attack_cmd(images: tuple[str, ...], model_name: str | None, weights: str | None, normalize: str | None,
               method: str, target: str | None, eps: float | None, steps: int | None, step_size: float | None,
               early_stop: bool | None, seed: int, out: str, force: bool, no_robustness: bool, as_json: bool) -> None:
    """Make adversarial versions of IMAGE(s) and save figures, PNGs and attack.json in --out.

    Unreadable files are skipped and counted; the exit status is non-zero only if none could be read.
    """
    from ..attacks import attack, attack_spec, save_attack
    spec = attack_spec(method)
    model = load_cli_model(model_name, weights, normalize)
    names, x = load_or_skip(images, model)
    result = attack(model, x, method, target=target, eps=eps, steps=steps, step_size=step_size, seed=seed,
                    early_stop=early_stop)
    out_dir = fresh_out_dir(out, force)
    doc = save_attack(result, model, out_dir, names=names, robustness=not no_robustness)
    if len(names) < len(images):
        doc["skipped"] = len(images) - len(names)
    if as_json:
        echo_json(doc)
        return
    for name, row in zip(names, doc["images"]):
        o, f = row["original"], row["final"]
        verdict = "fooled" if row["success"] else "NOT fooled"
        click.echo(f"{name}: {o['label']} ({o['prob']:.3f}) -> {f['label']} ({f['prob']:.3f}) {verdict} after "
                   f"{row['steps']} {spec.steps_unit}, L-inf {row['linf_255']:.2f}/255, L2 {row['l2']:.3f}"
                   + ("" if row["png_still_adversarial"] or not row["success"] else
                      "  [the 8-bit PNG rounds the perturbation away]"))
        if row.get("classes_seen") and len(row["classes_seen"]) > 2:
            click.echo("  classes over the steps: " + " -> ".join(
                f"{c['label'].split(',')[0]}@{c['step']}" for c in row["classes_seen"]))
    click.echo(f"wrote {doc['json']} and {len(doc['figures'])} figures in {out_dir / 'figures'}")
    if len(names) < len(images):
        warn(f"skipped {len(images) - len(names)} of {len(images)} images that could not be read")


@click.command("attack-eval", cls=MethodsCommand, evaluable=True)
@model_options
@click.option("--data", required=True, help="Labelled images: an .npz (x uint8 NHWC + y), a folder, or cifar10.")
@click.option("--method", default="pgd", show_default=True, help="Attack method (listed below).")
@click.option("--eps", type=FractionList(), default=None,
              help="Perturbation budget(s) in pixel units: 8/255, or a list 2/255,4/255,8/255 for robust accuracy "
                   "against eps (L-inf, or the L2 radius for *-l2) [method default].")
@click.option("--steps", type=int, default=None, help="Attack steps, or the query budget of square [method default].")
@click.option("--step-size", type=FractionParam("--step-size", 0.0, 10.0), default=None,
              help="Step size [method default].")
@click.option("--target", default=None, help="Targeted evaluation: a class, least-likely or random.")
@click.option("--limit", type=click.IntRange(1, None), default=None,
              help="Evaluate a seeded random subset of this many images.")
@click.option("--batch-size", type=click.IntRange(1, None), default=256, show_default=True,
              help="Images attacked at once.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the --limit subset, random starts and random targets.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: top1, robust_top1, success_rate, linf, l2, images_per_s, ... (with a list of "
                   "eps: the curve, one point per eps).")
def attack_eval_cmd(model_choice: ModelChoice, data: str, method: str, eps: list[float] | None, steps: int | None,
                    step_size: float | None, target: str | None, limit: int | None, batch_size: int, seed: int,
                    as_json: bool) -> None:
    """Clean and robust accuracy of a model under an attack on a labelled dataset.

    Under `torchrun --nproc-per-node N -m cnnlab attack-eval ...` each process attacks its share of the
    batches (one GPU each, or CPU processes) and the first prints what one process would.
    """
    from ..attacks import attack_eval, attack_spec
    attack_spec(method)
    ctx = join_processes(model_choice.device)
    model = model_choice.load()
    res = attack_eval(model, data, method, eps=eps[0] if eps and len(eps) == 1 else eps, steps=steps,
                      step_size=step_size, target=target, limit=limit, batch_size=batch_size, seed=seed)
    if not ctx.is_main:
        return
    if as_json:
        echo_json(res)
        return
    for line in res.lines():
        click.echo(line)
