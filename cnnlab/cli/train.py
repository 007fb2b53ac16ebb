"""`cnnlab train`, `cnnlab eval`, `cnnlab predict-set`, `cnnlab compare`: thin shells over cnnlab.train."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import CnnlabError
from .common import FractionParam, echo_json

#: cnnlab.train.config.TTA_MODES, repeated here so that parsing the command line does not import torch.
TTA_CHOICES = ("none", "flip", "flip-translate")


def tta_option(help_text: str, default: str | None):
    """`--tta [none|flip|flip-translate]` (a bare `--tta` means flip, as the old flag did) and `--no-tta`."""
    def wrap(f):
        f = click.option("--no-tta", "no_tta", is_flag=True, help="Same as --tta none.")(f)
        return click.option("--tta", type=click.Choice(TTA_CHOICES, case_sensitive=False), default=default,
                            is_flag=False, flag_value="flip", show_default=default is not None,
                            help=help_text)(f)
    return wrap


def _tta_value(tta: str | None, no_tta: bool) -> str | None:
    if no_tta and tta not in (None, "none"):
        raise CnnlabError(f"--no-tta contradicts --tta {tta}; give only one of them.")
    return "none" if no_tta else tta


def _model_kwargs(items: tuple[str, ...]) -> dict:
    """--model-arg strides=1,1,2 --model-arg bn=true -> {"strides": "1,1,2", "bn": True}."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise CnnlabError(f"--model-arg '{item}' must look like key=value (e.g. bn=true, strides=3-3-3).")
        k, v = item.split("=", 1)
        low = v.strip().lower()
        if low in ("true", "yes", "on"):
            out[k.strip().replace("-", "_")] = True
        elif low in ("false", "no", "off"):
            out[k.strip().replace("-", "_")] = False
        else:
            try:
                out[k.strip().replace("-", "_")] = int(v) if v.strip().lstrip("-").isdigit() else float(v)
            except ValueError:
                out[k.strip().replace("-", "_")] = v
    return out


@click.command("train")
@click.option("--model", "model_name", default="cifar_resnet20", show_default=True,
              help="Registered model (see `cnnlab models`), e.g. cifar_resnet20, course_resnet, simple_cnn_bn, airbench.")
@click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
              help="Model option, repeatable: strides=1,1,2,1,1,2,1,1,1  shortcut=false  bn=true  widths=512,256.")
@click.option("--data", default="cifar10", show_default=True,
              help="cifar10, cifar100, an .npz/.npy file (x uint8 NxHxWx3 + y) or an image folder.")
@click.option("--val", default=None, help="Validation data: 'test' (the dataset's test split) or another file; "
              "default: a seeded, stratified --val-split of the training data.")
@click.option("--val-split", type=float, default=0.1, show_default=True, help="Fraction held out for validation.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where CIFAR lives or is downloaded to (default $CNNLAB_DATA or ~/.cache/cnnlab/datasets).")
@click.option("--limit", type=int, default=None, help="Train on a seeded random subset of N images (quick runs).")
@click.option("--num-classes", type=int, default=None, help="Head size (default: the data's number of classes).")
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option("--batch-size", type=int, default=None, help="[128]")
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]), default=None, help="[sgd; adam for course nets]")
@click.option("--lr", type=float, default=None, help="Peak learning rate [0.1 sgd, 1e-3 adam].")
@click.option("--momentum", type=float, default=None, help="[0.9]")
@click.option("--nesterov/--no-nesterov", default=None)
@click.option("--wd", "weight_decay", type=float, default=None, help="L2 weight decay [1e-4].")
@click.option("--wd-all/--no-wd-norm-bias", "decay_norm_and_bias", default=None,
              help="Decay BatchNorm and bias parameters too (default: not).")
@click.option("--schedule", type=click.Choice(["constant", "step", "multistep", "exponential", "cosine", "onecycle",
                                               "triangle"]), default=None, help="[cosine]")
@click.option("--step-every", type=int, default=None, help="step schedule: multiply lr by --gamma every T epochs.")
@click.option("--milestones", default=None, help="multistep schedule: epochs, e.g. 80,120.")
@click.option("--gamma", type=float, default=None, help="Decay factor for step/multistep/exponential [0.1].")
@click.option("--warmup", "warmup_epochs", type=float, default=None, help="Linear warm-up epochs.")
@click.option("--label-smoothing", type=float, default=None)
@click.option("--clip-grad", type=float, default=None, help="Clip the gradient norm to this value.")
@click.option("--ema", type=float, default=None, help="Keep an EMA of the weights with this decay per step (e.g. 0.999).")
@click.option("--augment", default=None, help="Batch augmentation: 'crop4,flip' (default), 'crop2,flip,cutout8', 'none'.")
@click.option("--channels-last/--no-channels-last", default=None, help="channels_last memory format (faster on CPU).")
@tta_option("Test-time augmentation in validation: flip (image + mirror), flip-translate (+ both shifted "
            "1 px), none. [flip-translate for airbench, else none]", None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--pretrained", is_flag=True, help="Start from the model's published weights (fine-tuning; new head).")
@click.option("--weights", type=click.Path(dir_okay=False), default=None, help="Start from these weights (new head if needed).")
@click.option("--freeze-epochs", type=int, default=None, help="Train only the new head for N epochs, then everything.")
@click.option("--backbone-lr-mult", type=float, default=None, help="Backbone lr = lr x this (fine-tuning), e.g. 0.1.")
@click.option("--custom-conv", is_flag=True, help="Train with cnnlab's own unfold convolution (cnnlab.reference).")
@click.option("--adv", type=click.Choice(["pgd", "fgsm-rs"]), default=None, help="Adversarial training.")
@click.option("--eps", type=FractionParam("--eps"), default="8/255", show_default=True, help="Adversarial L-inf radius.")
@click.option("--adv-steps", type=int, default=None, help="PGD steps for training and robust validation [7].")
@click.option("--adv-step-size", type=FractionParam("--adv-step-size"), default=None)
@click.option("--workers", type=int, default=None, help="Decoding processes for image folders [2].")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="New run directory (default runs/MODEL-TIME).")
@click.option("--resume", type=click.Path(file_okay=False), default=None,
              help="Continue the run in this directory from its last checkpoint (other options come from it; "
                   "--epochs may extend it).")
@click.option("--quiet", is_flag=True, help="No progress bar or per-epoch lines.")
@click.pass_context
def train_cmd(ctx: click.Context, model_name, model_args, data, val, val_split, data_dir, limit, num_classes, epochs,
              batch_size, optimizer, lr, momentum, nesterov, weight_decay, decay_norm_and_bias, schedule, step_every,
              milestones, gamma, warmup_epochs, label_smoothing, clip_grad, ema, augment, channels_last, tta, no_tta,
              seed, pretrained, weights, freeze_epochs, backbone_lr_mult, custom_conv, adv, eps, adv_steps,
              adv_step_size, workers, out, resume, quiet) -> None:
    """Train a classifier into a run directory (config, metrics.jsonl, TensorBoard, checkpoints, figures).

    \b
    Examples:
      cnnlab train --model cifar_resnet20 --data cifar10 --epochs 30 --out runs/r20
      cnnlab train --model course_resnet --model-arg shortcut=false --data hw4-train-data.npy --out runs/noskip
      cnnlab train --model resnet18 --pretrained --data photos/ --freeze-epochs 2 --backbone-lr-mult 0.1
      cnnlab train --resume runs/r20
      torchrun --nproc-per-node 2 -m cnnlab train ...     (data-parallel)
    """
    from .. import train as training
    tta = _tta_value(tta, no_tta)
    if resume:
        explicit = [p.name for p in ctx.command.params if p.name not in ("resume", "epochs", "quiet")
                    and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
        if explicit:
            raise CnnlabError(f"--resume continues a run with its own settings; drop --{explicit[0].replace('_', '-')} "
                              "(only --epochs may change).")
        epochs_given = ctx.get_parameter_source("epochs") == click.core.ParameterSource.COMMANDLINE
        run = training.resume(resume, epochs=epochs if epochs_given else None, progress=not quiet)
    else:
        options = dict(val=val, val_split=val_split, data_dir=data_dir, limit=limit, num_classes=num_classes,
                       batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum, nesterov=nesterov,
                       weight_decay=weight_decay, decay_norm_and_bias=decay_norm_and_bias, schedule=schedule,
                       step_every=step_every, gamma=gamma, warmup_epochs=warmup_epochs,
                       label_smoothing=label_smoothing, clip_grad=clip_grad, ema=ema, augment=augment,
                       channels_last=channels_last, tta=tta, seed=seed, pretrained=pretrained or None,
                       weights=weights, freeze_epochs=freeze_epochs, backbone_lr_mult=backbone_lr_mult,
                       custom_conv=custom_conv or None, adv=adv, eps=eps if adv else None, adv_steps=adv_steps,
                       adv_step_size=adv_step_size, workers=workers, model_kwargs=_model_kwargs(model_args) or None)
        if milestones:
            try:
                options["milestones"] = [int(m) for m in milestones.split(",")]
            except ValueError:
                raise CnnlabError(f"--milestones '{milestones}' must be epochs separated by commas, e.g. 80,120.") from None
            options["schedule"] = options["schedule"] or "multistep"
        if step_every and not schedule:
            options["schedule"] = "step"
        run = training.train(model_name, data=data, epochs=epochs, out=out, progress=not quiet, **options)
    from ..train.distributed import context
    if context().is_main:
        final = run.final() or {}
        best = final.get("best_val_top1")
        click.echo(f"run: {run.path}  epochs: {final.get('epochs')}  best val top-1: "
                   f"{'-' if best is None else f'{100 * best:.2f}%'} (epoch {final.get('best_epoch')})  "
                   f"train time: {final.get('train_s', 0) / 60:.1f} min")
        click.echo(f"checkpoint: {run.path / 'checkpoints' / 'best.pt'}   figures: {run.path / 'figures'}")


def _checkpoint_model(ckpt: str):
    from ..models import create_model
    path = Path(ckpt)
    if path.is_dir():
        from ..runs import Run
        return Run.open(path).load_model("best")
    if path.suffix.lower() in (".json", ".jsonl", ".txt", ".png"):
        raise CnnlabError(f"'{path}' is not a checkpoint; pass RUN_DIR/checkpoints/best.pt or the run directory.")
    return create_model(weights=path)


@click.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.option("--data", required=True, help="cifar10, cifar100, an .npz/.npy file or an image folder.")
@click.option("--split", type=click.Choice(["test", "train", "all"]), default="test", show_default=True,
              help="Which split of a named dataset (or of a file with a 'split' array).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--batch-size", type=int, default=256, show_default=True)
@tta_option("Test-time augmentation: average the logits over the image and its mirror (flip), also over both "
            "shifted by 1 px (flip-translate), or none.", "none")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write eval.json and confusion.png into this (new) directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_cmd(checkpoint, data, split, data_dir, batch_size, tta, no_tta, out, as_json) -> None:
    """Evaluate a checkpoint (or run directory): loss, top-1/top-5, mean per-class accuracy, confusion."""
    from ..data import load_dataset
    from ..train import evaluate
    from .common import fresh_out_dir
    model = _checkpoint_model(checkpoint)
    dataset = load_dataset(data, split if split != "all" else "all", data_dir)
    tta = _tta_value(tta, no_tta)
    res = evaluate(model, dataset, batch_size=batch_size, tta=tta)
    files = {}
    if out:
        d = fresh_out_dir(out)
        (d / "eval.json").write_text(json.dumps({"checkpoint": str(checkpoint), "data": data, "tta": tta,
                                                 **res.to_dict()}, indent=2))
        files = {"json": str(d / "eval.json"),
                 "confusion": str(res.confusion_figure(d / "confusion.png", f"{model.name} on {dataset.name}"))}
    if as_json:
        echo_json({"checkpoint": str(checkpoint), "data": data, "tta": tta, "n": res.n, "loss": res.loss,
                   "top1": res.top1, "top5": res.top5, "error": res.error,
                   "mean_class_accuracy": res.mean_class_accuracy, "per_class": res.per_class, "confusion": res.confusion, "files": files})
        return
    click.echo(f"{model.name} on {dataset.name} ({res.n} images{'' if tta == 'none' else f', TTA {tta}'})")
    click.echo(f"loss {res.loss:.4f}   top-1 {100 * res.top1:.2f}%   top-5 {100 * res.top5:.2f}%   "
               f"mean per-class accuracy {100 * res.mean_class_accuracy:.2f}%")
    click.echo(res.table())
    for k, v in files.items():
        click.echo(f"{k}: {v}")


@click.command("predict-set")
@click.argument("checkpoint", type=click.Path())
@click.option("--data", required=True, help="Images to label: an .npy/.npz file (labels not needed) or a folder.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Text file: one label per line, input order.")
@click.option("--names", is_flag=True, help="Write class names instead of class indices.")
@tta_option("Test-time augmentation: flip (image + mirror), flip-translate (+ both shifted 1 px) or none.", "none")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--batch-size", type=int, default=256, show_default=True)
def predict_set_cmd(checkpoint, data, out, names, tta, no_tta, force, batch_size) -> None:
    """Write the predicted class of every image in a file, one per line in input order (the hand-in file)."""
    from ..data import load_dataset
    from ..train import predict_labels
    out_path = Path(out)
    if out_path.exists() and not force:
        raise CnnlabError(f"'{out_path}' already exists; choose another --out or pass --force to replace it.")
    model = _checkpoint_model(checkpoint)
    dataset = load_dataset(data, "all")
    pred = predict_labels(model, dataset, batch_size=batch_size, tta=_tta_value(tta, no_tta))
    lines = [model.labels[int(i)] if names else str(int(i)) for i in pred]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out_path)
    counts = {}
    for line in lines:
        counts[line] = counts.get(line, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    click.echo(f"wrote {len(lines)} labels to {out_path} (most frequent: "
               f"{', '.join(f'{k} x{v}' for k, v in top)})")


@click.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG with the curves of all runs.")
@click.option("--json", "as_json", is_flag=True, help="Also print each run's best and last metrics as JSON.")
def compare_cmd(runs, out, as_json) -> None:
    """Curves of several runs on one figure (objective, validation error, lr), e.g. shortcuts vs none."""
    from ..runs import Run, compare_runs, summary
    if Path(out).exists():
        raise CnnlabError(f"'{out}' already exists; choose another --out.")
    path = compare_runs(list(runs), out)
    rows = [summary(Run.open(r)) for r in runs]
    if as_json:
        echo_json({"figure": str(path), "runs": rows})
        return
    for r in rows:
        best = r["best_val_top1"]
        click.echo(f"{r['run']}: {r['model']}, {r['epochs']} epochs, best val top-1 "
                   f"{'-' if best is None else f'{100 * best:.2f}%'} (epoch {r['best_epoch']})")
    click.echo(f"figure: {path}")
