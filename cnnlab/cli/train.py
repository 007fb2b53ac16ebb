"""`cnnlab train`, `cnnlab eval`, `cnnlab predict-set`, `cnnlab compare`: thin shells over cnnlab.train.

`train`'s options are made from the fields of cnnlab.train.TrainConfig (their help texts are the
fields' metadata), when the command runs or shows its help: `cnnlab --help` does not import torch.
"""
from __future__ import annotations

import dataclasses
import typing

import click

from ..errors import CnnlabError
from .common import (FractionParam, KeyValueParam, ModelChoice, classes_option, echo_json, join_processes,
                     key_values_text, merged, model_options, out_file, trained_model, warn)

#: cnnlab.train.config.TTA_MODES and cnnlab.devices.PRECISIONS, repeated here so that building eval's
#: options does not import torch.
TTA_CHOICES = ("none", "flip", "flip-translate")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")


def tta_option(help_text: str, default: str | None):
    """`--tta [none|flip|flip-translate]` (a bare `--tta` means flip) and `--no-tta`."""
    def wrap(f):
        f = click.option("--no-tta", "no_tta", is_flag=True, help="Same as --tta none.")(f)
        return click.option("--tta", type=click.Choice(TTA_CHOICES, case_sensitive=False), default=default,
                            is_flag=False, flag_value="flip", show_default=default is not None,
                            help=help_text)(f)
    return wrap


def _off_value(name: str, given: object, off: bool, off_value: object) -> object:
    """The value of an option that also has a --no- form: `off_value` for --no-NAME, else what was given."""
    if off and given not in (None, off_value):
        flag = name.replace("_", "-")
        shown = key_values_text(given) if isinstance(given, dict) else given
        raise CnnlabError(f"--no-{flag} contradicts --{flag} {shown}; give only one of them.")
    return (dict(off_value) if isinstance(off_value, dict) else off_value) if off else given


def _tta_value(tta: str | None, no_tta: bool) -> str | None:
    return _off_value("tta", tta, no_tta, "none")


class IntListParam(click.ParamType):
    """'80,120' -> [80, 120]."""

    name = "N,N,..."

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            return [int(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            self.fail(f"'{value}' must be whole numbers separated by commas, e.g. 80,120.", param, ctx)


def _click_type(hint: object, meta: typing.Mapping) -> click.ParamType | type:
    if meta.get("choices"):
        return click.Choice(list(meta["choices"]), case_sensitive=False)
    if meta.get("fraction"):
        return FractionParam()
    if typing.get_origin(hint) is list:
        return IntListParam()
    inner = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]  # X | None -> X
    return inner[0] if inner[0] in (int, float, str) else str


class CheckedParam(click.ParamType):
    """A TrainConfig field's click type that also checks the value as TrainConfig does (its numbers'
    bounds), when the command line is parsed: `--clip-grad -1` is one sentence before anything loads."""

    def __init__(self, f: dataclasses.Field, base: click.ParamType | type) -> None:
        self.field, self.base = f, click.types.convert_type(base)
        self.name = self.base.name

    def convert(self, value, param, ctx):
        from ..train.config import check_option
        return check_option(self.field, self.base.convert(value, param, ctx))

    def get_metavar(self, *args, **kwargs) -> str | None:  # the base's: [sgd|adam|...] for a choice
        return self.base.get_metavar(*args, **kwargs)

    def shell_complete(self, ctx, param, incomplete):
        return self.base.shell_complete(ctx, param, incomplete)


def _default_text(default: object, recipes: bool = False) -> str:
    """' [default: X]', or ' [default: the model's recipe, else X]' for an option some family's recipe sets."""
    if default in (dataclasses.MISSING, None, "") or default is False:
        shown = None
    else:
        shown = f"{default:.4g}" if isinstance(default, float) else str(default)
    if recipes:
        return f" [default: the model's recipe, else {shown or ('off' if default is False else 'none')}]"
    return f" [default: {shown}]" if shown else ""


def recipe_options() -> set[str]:
    """The TrainConfig fields that some registered model's recipe sets (`cnnlab models NAME` shows which)."""
    from ..models import list_models
    return {k for entry in list_models() for k in entry.recipe}


def config_options() -> list[click.Option]:
    """One option per TrainConfig field (but those marked cli=False), its help text from the field's
    metadata; every option defaults to unset, so the model's recipe and then TrainConfig decide."""
    from ..train.config import TrainConfig
    hints = typing.get_type_hints(TrainConfig)
    recipes = recipe_options()
    options = []
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        dash = f.name.replace("_", "-")
        hint = hints[f.name]
        kw: dict = {"default": None, "help": meta.get("help", "") + _default_text(f.default, f.name in recipes)}
        if hint is bool:
            flags = meta.get("flags") or (f"--{dash}/--no-{dash}",)
        elif hint is dict:  # repeatable KEY=VALUE
            flags = meta.get("flags") or (f"--{dash}",)
            kw.update(type=KeyValueParam(), multiple=True, metavar=meta.get("metavar"))
        else:
            flags = meta.get("flags") or (f"--{dash}",)
            kw["type"] = CheckedParam(f, _click_type(hint, meta))
        if meta.get("metavar"):
            kw["metavar"] = meta["metavar"]
        if "bare" in meta:  # e.g. a bare --tta means flip
            kw.update(is_flag=False, flag_value=meta["bare"])
        options.append(click.Option([*flags, f.name], **kw))
        if "off" in meta:  # e.g. --no-tta means none, --no-freeze-after freezes nothing
            off = meta["off"]
            options.append(click.Option([f"--no-{dash}", f"no_{f.name}"], is_flag=True, help=(
                f"No {flags[0]} at all, not even the model's recipe's." if isinstance(off, dict)
                else f"Same as {flags[0]} {off}.")))
    return options


class TrainConfigCommand(click.Command):
    """A command whose options come from `config_options()`, built the first time they are needed."""

    @property
    def params(self) -> list[click.Parameter]:
        if self._all is None:  # one list, kept: click appends its help option to it
            self._all = [*config_options(), *self._own]
        return self._all

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self._own, self._all = list(value), None

    def add_shared_option(self, option: click.Option) -> None:
        """Add an option every command has (e.g. -q) without building the TrainConfig options yet."""
        self._own.append(option)
        self._all = None


def _config_values(params: dict) -> dict:
    """The TrainConfig options the user gave (unset ones are left out); --no-NAME gives NAME its off value."""
    from ..train.config import TrainConfig
    offs = {f.name: f.metadata["off"] for f in dataclasses.fields(TrainConfig) if "off" in f.metadata}
    own = ("resume", "out", "quiet", "force", *(f"no_{name}" for name in offs))
    values = {k: v for k, v in params.items() if v is not None and k not in own}
    for name, given in list(values.items()):  # repeatable KEY=VALUE options: one dict, or unset when none given
        if isinstance(given, tuple) and all(isinstance(item, dict) for item in given):
            values[name] = merged(given) if given else None
    for name, off_value in offs.items():
        values[name] = _off_value(name, values.get(name), bool(params.get(f"no_{name}")), off_value)
    return {k: v for k, v in values.items() if v is not None}


@click.command("train", cls=TrainConfigCommand)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="New run directory (default runs/MODEL-TIME).")
@click.option("--resume", type=click.Path(file_okay=False), default=None,
              help="Continue the run in this directory from its last checkpoint, or start it again from its "
                   "recorded config if it stopped before one (other options come from it; --epochs may extend it).")
@click.option("--force", is_flag=True,
              help="Start over in an --out that holds a run: its own files (config, metrics, checkpoints, curves, "
                   "TensorBoard events) are removed first; other files there are never touched.")
@click.pass_context
def train_cmd(ctx: click.Context, out: str | None, resume: str | None, force: bool, **params: object) -> None:
    """Train a classifier into a run directory (config, metrics.jsonl, TensorBoard, checkpoints, figures).

    Options left unset take the model's recipe (its optimizer, schedule, augmentation ...), then the
    defaults shown.

    \b
    Examples:
      cnnlab train --model cifar_resnet20 --data cifar10 --epochs 30 --out runs/r20
      cnnlab train --model course_resnet --model-arg shortcut=false --data hw-train-data.npy --out runs/noskip
      cnnlab train --model resnet18 --pretrained --data photos/ --freeze-epochs 2 --backbone-lr-mult 0.1
      cnnlab train --resume runs/r20
      cnnlab train --model cifar_resnet20 --data cifar10 --out runs/r20 --force     (start runs/r20 over)
      cnnlab train --model cifar_resnet20 --data cifar10 --device cuda --precision bf16 --out runs/r20
      torchrun --nproc-per-node 4 -m cnnlab train ...     (data-parallel: 4 GPUs, or 4 CPU processes)
    """
    from .. import train as training
    from ..distributed import current
    options = _config_values(params)
    if resume and force:
        raise CnnlabError("--resume continues a run and --force starts one over; give only one of them.")
    if resume:
        keep = ("resume", "epochs", "quiet", "force", *training.RESUME_OPTIONS)
        given = [p.name for p in ctx.command.params if p.name not in keep
                 and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise CnnlabError(f"--resume continues a run with its own settings; drop --{given[0].replace('_', '-')} "
                              f"(only --epochs, {', '.join('--' + o for o in training.RESUME_OPTIONS)} may change).")
        run = training.resume(resume, epochs=options.get("epochs"),
                              **{k: options.get(k) for k in training.RESUME_OPTIONS})
    else:
        run = training.train(out=out, header=True, force=force, **options)
    if current().is_main:
        final = run.final() or {}
        best = final.get("best_val_top1")
        click.echo(f"run: {run.path}  epochs: {final.get('epochs')}  best val top-1: "
                   f"{'-' if best is None else f'{100 * best:.2f}%'} (epoch {final.get('best_epoch')})  "
                   f"train time: {final.get('train_s', 0) / 60:.1f} min")
        click.echo(f"checkpoint: {run.path / 'checkpoints' / 'best.pt'}   figures: {run.path / 'figures'}")


@click.command("eval")
@click.argument("checkpoint", type=click.Path(), required=False)
@model_options
@click.option("--data", required=True,
              help="cifar10, cifar100, pets, miniplaces, an .npz/.npy file or an image folder.")
@click.option("--split", type=click.Choice(["test", "train", "all"]), default="test", show_default=True,
              help="Which part of the data: its held-out part (an error when it has none), its training part, or "
                   "all of it.")
@click.option("--overlap", type=click.Choice(["refuse", "exclude", "allow"]), default="refuse", show_default=True,
              help="When evaluation images are training images of the run: refuse, exclude them (evaluate the "
                   "rest), or allow them (marked in eval.json and warned about).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where a named dataset lives (default: $CNNLAB_DATA, else ~/.cache/cnnlab/datasets).")
@classes_option("the model's classes (default: those the checkpoint carries)")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Images per forward pass.")
@tta_option("Test-time augmentation: average the logits over the image and its mirror (flip), also over both "
            "shifted by 1 px (flip-translate), or none.", "none")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write eval.json and confusion.png into this (new) directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES, case_sensitive=False), default="fp32",
              show_default=True, help="Float format of the forward pass (auto: bf16 on GPUs that have it, fp16 on "
                                      "older NVIDIA GPUs, fp32 on the CPU).")
@click.option("--workers", type=click.IntRange(0, None), default=2, show_default=True,
              help="Decoding processes for image files streamed from disk.")
def eval_cmd(checkpoint: str | None, model_choice: ModelChoice, data: str, split: str, overlap: str,
             data_dir: str | None, classes: str | None, batch_size: int, tta: str, no_tta: bool, out: str | None,
             as_json: bool, precision: str, workers: int) -> None:
    """Evaluate a model: a CHECKPOINT or run directory of `cnnlab train`, or the model options (e.g. a
    published checkpoint: --model cifar_resnet20 --weights resnet20.th). Prints loss, top-1/top-5, mean
    class accuracy, mean average precision, per-class recall/precision/F1, confusion. Images a run trained
    on are never counted silently (see --overlap); eval.json records the checkpoint and exactly which
    images were evaluated.

    Under `torchrun --nproc-per-node N -m cnnlab eval ...` each process evaluates its share of the batches
    (one GPU each, or CPU processes) and the first prints what one process would.
    """
    from ..devices import resolve_device, resolve_precision
    from ..runs import fresh_out_dir
    from ..train import evaluate_checkpoint
    resolve_precision(precision, resolve_device(model_choice.device))
    ctx = join_processes(model_choice.device)
    chosen = model_choice.model_name or model_choice.weights or model_choice.model_file
    model = None if checkpoint and not chosen else trained_model(checkpoint, model_choice)  # refuses both
    res = evaluate_checkpoint(checkpoint, data, split, model=model,
                              model_source=None if checkpoint else str(chosen), device=model_choice.device,
                              data_dir=data_dir, overlap=overlap, classes=classes, batch_size=batch_size,
                              tta=_tta_value(tta, no_tta), precision=precision, workers=workers)
    if not ctx.is_main:
        return
    files = res.save(fresh_out_dir(out)) if out else {}
    shared = res.context.get("overlap_with_training")
    if shared and shared["images"] and overlap == "allow":
        warn(f"{shared['images']} of the {shared['of']} evaluation images are training images of the run: the "
             "numbers below are partly training accuracy (eval.json says so).")
    if as_json:
        echo_json({**res.to_dict(), "files": files})
        return
    d, tta_used = res.context["data"], res.context["tta"]
    click.echo(f"{res.context['model']} on {d['name']} ({d['split']}: {res.n} images, fingerprint {d['fingerprint']}"
               f"{'' if tta_used == 'none' else f', TTA {tta_used}'})")
    ck = res.context["checkpoint"]
    click.echo(f"checkpoint {ck['path']} (epoch {ck['epoch']}, sha256 {ck['sha256']})")
    if shared is None:
        click.echo(f"note: {res.context['overlap_note']}", err=True)
    elif shared.get("excluded"):
        click.echo(f"excluded {shared['excluded']} images the run trained on")
    click.echo(f"loss {res.loss:.4f}   top-1 {100 * res.top1:.2f}%   top-5 {100 * res.top5:.2f}%   "
               f"mean per-class accuracy {100 * res.mean_class_accuracy:.2f}%   "
               f"mean average precision {100 * res.mean_average_precision:.2f}%")
    click.echo(res.table())
    for k, v in files.items():
        click.echo(f"{k}: {v}")


@click.command("predict-set")
@click.argument("checkpoint", type=click.Path(), required=False)
@model_options
@click.option("--data", required=True, help="Images to label: an .npy/.npz file (labels not needed) or a folder.")
@click.option("--out", required=True, type=click.Path(),
              help="Directory to write the label file into (made if missing).")
@click.option("--filename", default="predictions.txt", show_default=True,
              help="Name of the label file in --out, e.g. the name a course asks for.")
@click.option("--names", is_flag=True, help="Write class names instead of class indices.")
@tta_option("Test-time augmentation: flip (image + mirror), flip-translate (+ both shifted 1 px) or none.", "none")
@click.option("--force", is_flag=True, help="Replace the label file if it exists.")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Images per forward pass.")
def predict_set_cmd(checkpoint: str | None, model_choice: ModelChoice, data: str, out: str, filename: str,
                    names: bool, tta: str, no_tta: bool, force: bool, batch_size: int) -> None:
    """Write the predicted class of every image in a file, one per line in input order (the hand-in file),
    by a CHECKPOINT or run directory, or the model options."""
    from ..data import load_dataset
    from ..train import write_label_file
    path = out_file(out, filename, force)
    written = write_label_file(trained_model(checkpoint, model_choice), load_dataset(data, "all"), path, names=names,
                               tta=_tta_value(tta, no_tta), batch_size=batch_size, force=force)
    click.echo(f"wrote {written.n} labels to {written.path} (most frequent: "
               f"{', '.join(f'{k} x{v}' for k, v in written.most_frequent)})")


@click.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(),
              help="Directory to write curves.png (the curves of all runs) and compare.json into.")
@click.option("--force", is_flag=True, help="Replace curves.png and compare.json if they exist.")
@click.option("--json", "as_json", is_flag=True, help="Also print each run's best and last metrics as JSON.")
def compare_cmd(runs: tuple[str, ...], out: str, force: bool, as_json: bool) -> None:
    """Curves of several runs on one figure (objective, validation error, lr), e.g. shortcuts vs none; they
    are read from the runs' metrics.jsonl (the same numbers as their TensorBoard scalars)."""
    from ..runs import Run, compare_runs, summary, write_json
    png = out_file(out, "curves.png", force, named=False)
    doc_path = out_file(out, "compare.json", force, named=False)
    png.unlink(missing_ok=True)
    path = compare_runs(list(runs), png)
    rows = [summary(Run.open(r)) for r in runs]
    write_json(doc_path, {"figure": str(path), "runs": rows})
    if as_json:
        echo_json({"figure": str(path), "runs": rows})
        return
    for r in rows:
        best = r["best_val_top1"]
        click.echo(f"{r['run']}: {r['model']}, {r['epochs']} epochs, best val top-1 "
                   f"{'-' if best is None else f'{100 * best:.2f}%'} (epoch {r['best_epoch']})")
    click.echo(f"figure: {path}   summary: {doc_path}")
