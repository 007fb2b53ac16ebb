"""What a training run runs, in words and numbers: the model and its arguments, its parameters and how
they were initialized, the optimizer, schedule and augmentation, and the data. Every run prints this as
a short header and records it in config.json ("settings"), noting which values came from the model's
recipe rather than from the caller or TrainConfig's defaults."""
from __future__ import annotations

from ..data.base import Dataset
from ..models import Classifier, data_init, get_entry, weight_init
from .config import TrainConfig


def initialization(cfg: TrainConfig, model: Classifier, given: bool) -> str:
    """How the weights a run starts from were set."""
    if given:
        return "the model as passed in (its weights at the call)"
    if cfg.weights:
        return f"from the weights file {model.weights_name or cfg.weights}"
    if cfg.pretrained:
        published = get_entry(cfg.model).weights
        text = f"published weights ({model.weights_name or cfg.model})"
        if published is not None and published.num_classes != model.num_classes:
            text += f"; a new {model.num_classes}-class head with PyTorch's default init (uniform +-1/sqrt(fan_in))"
        return text
    text = weight_init(cfg.model)
    init = data_init(cfg.model) if cfg.data_init else None
    return text + (f"; then {init.description}" if init is not None else "")


def schedule_text(cfg: TrainConfig) -> str:
    """The learning-rate schedule in words, e.g. 'step: x0.1 every 10 epochs'."""
    s = cfg.schedule
    text = {"constant": "constant",
            "step": f"step: x{cfg.gamma:g} every {cfg.step_every} epochs",
            "multistep": f"multistep: x{cfg.gamma:g} at epochs {','.join(map(str, cfg.milestones)) or '(none)'}",
            "exponential": f"exponential: x{cfg.gamma:g} per epoch",
            "cosine": "cosine decay to 0",
            "onecycle": "one-cycle: up from lr/25 over 30% of the steps, then down to lr/1e4",
            "triangle": f"triangle: up from 0.2 lr over 23% of the steps, then down to {cfg.lr_end:g} lr",
            "linear": f"linear: from lr straight down to {cfg.lr_end:g} lr over the steps"}.get(s, s)
    return text + (f", after {cfg.warmup_epochs:g} warm-up epochs" if cfg.warmup_epochs else "")


def selection_text(cfg: TrainConfig) -> str | None:
    """What hard-example selection does in this run, in words (None when the model sees every image)."""
    if cfg.hard_fraction >= 1:
        return None
    args = ", ".join(f"{k}={v}" for k, v in cfg.proxy_args.items())
    proxy = f"the model rebuilt with {args}" if args else "a copy of the model"
    n = cfg.proxy_every
    nth = f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
    every = "every batch" if n == 1 else f"every {nth} batch"
    return (f"the hardest {100 * cfg.hard_fraction:g}% of each batch, by the loss of a proxy ({proxy}) that "
            f"learns from {every}")


def run_settings(cfg: TrainConfig, model: Classifier, train_set: Dataset, val_set: Dataset | None, *,
                 from_recipe: list[str], given: bool = False) -> dict:
    """The effective settings of a run (see the module docstring)."""
    optimizer = {"name": cfg.optimizer, "lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cfg.optimizer in ("sgd", "muon"):  # muon: Muon for the filter banks, Nesterov SGD for the rest
        optimizer.update(momentum=cfg.momentum, nesterov=cfg.nesterov if cfg.optimizer == "sgd" else cfg.momentum > 0)
    if cfg.optimizer == "muon":
        optimizer.update(muon_lr=cfg.muon_lr, muon_momentum=cfg.muon_momentum)
    if cfg.lookahead:
        optimizer["lookahead"] = cfg.lookahead
    if cfg.freeze_after:
        optimizer["freeze_after"] = dict(cfg.freeze_after)
    val = None if val_set is None or not len(val_set) else {"name": val_set.name, "n": len(val_set),
                                                            "part": (val_set.meta or {}).get("part")}
    return {"model": model.name, "model_args": {k: v for k, v in model.spec.get("kwargs", {}).items()
                                                if k != "num_classes"},
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "initialization": initialization(cfg, model, given), "optimizer": optimizer,
            "schedule": schedule_text(cfg), "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "augmentation": cfg.augment or "none", "label_smoothing": cfg.label_smoothing, "ema": cfg.ema,
            "tta": cfg.tta, "selection": selection_text(cfg),
            "data": {"source": cfg.data, "train": len(train_set), "val": val, "classes": model.num_classes},
            "from_recipe": sorted(from_recipe)}


#: The TrainConfig values the header's optimizer line shows.
OPTIMIZER_KEYS = ("optimizer", "lr", "weight_decay", "momentum", "nesterov", "muon_lr", "muon_momentum", "lookahead",
                  "freeze_after")


def settings_lines(s: dict) -> list[str]:
    """The header a run prints: one line per setting, '(recipe)' after values from the model's recipe."""
    rec = s["from_recipe"]

    def mark(*keys: str) -> str:
        mine = [k for k in rec if k in keys]
        return f" (model's recipe: {', '.join(mine)})" if mine else ""

    def show(v: object) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    args = ", ".join(f"{k}={show(v)}" for k, v in s["model_args"].items())
    o = s["optimizer"]
    sgd = f"lr {o['lr']:g}, {'Nesterov ' if o.get('nesterov') else ''}momentum {o.get('momentum', 0):g}"
    if o["name"] == "muon":
        opt = (f"muon for the filters (lr {o['muon_lr']:g}, momentum {o['muon_momentum']:g}), SGD for the rest "
               f"({sgd}), weight decay {o['weight_decay']:g}")
    else:
        lr = sgd if o["name"] == "sgd" else f"lr {o['lr']:g}"
        opt = f"{o['name']}, {lr}, weight decay {o['weight_decay']:g}"
    if o.get("lookahead"):
        opt += f"; lookahead every {o['lookahead']} steps"
    if o.get("freeze_after"):
        opt += "; frozen after: " + ", ".join(f"{k} at epoch {v:g}" for k, v in o["freeze_after"].items())
    extra = [f"label smoothing {s['label_smoothing']:g}"] if s["label_smoothing"] else []
    extra += [f"EMA {s['ema']:g}"] if s["ema"] else []
    extra += [f"TTA {s['tta']}"] if s["tta"] != "none" else []
    d = s["data"]
    part = str(d["val"]["part"] or d["val"]["name"]).removeprefix("validation: ") if d["val"] else ""
    val = f"validation {d['val']['n']} ({part})" if d["val"] else "no validation"
    return [f"model         {s['model']}{f' ({args})' if args else ''}: {s['parameters']:,} parameters"
            + (f" ({s['trainable']:,} trainable)" if s["trainable"] != s["parameters"] else ""),
            f"init          {s['initialization']}",
            f"optimizer     {opt}{mark(*OPTIMIZER_KEYS)}",
            f"schedule      {s['schedule']}{mark('schedule', 'step_every', 'milestones', 'gamma')}; "
            f"{s['epochs']} epoch{'s' * (s['epochs'] != 1)}, batch {s['batch_size']}{mark('batch_size')}",
            f"augmentation  {s['augmentation']}{mark('augment')}" + (f"; {', '.join(extra)}" if extra else "")
            + (mark("label_smoothing", "ema", "tta") if extra else ""),
            *([f"selection     {s['selection']}"] if s.get("selection") else []),
            f"data          {d['source']}: train {d['train']} images, {val}; {d['classes']} classes"]
