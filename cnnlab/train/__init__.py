"""Training: `cnnlab.train("cifar_resnet20", data="cifar10", epochs=30, out="runs/r20") -> Run`.

The module itself is callable (that call is `train(...)` below); underneath, `fit(model, train,
val, config)` is the loop for a model and data you already hold. `resume("runs/r20")` continues a
run from its last checkpoint exactly where it stopped (or, when it stopped before its first
checkpoint, starts it again from its recorded config), on the same data: the run records a
signature of its training and validation data, and a resume on other data is refused. One
process at a time writes a run (see `Run.locked`).
"""
from __future__ import annotations

import contextlib
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn

from .. import distributed
from ..data import Dataset, signature
from ..devices import describe_device, resolve_device, resolve_precision
from ..errors import CnnlabError
from ..runs import Run, run_dir_problem
from .config import TrainConfig
from .evaluate import EvalResult, evaluate, evaluate_checkpoint, predict_labels, write_label_file
from .fit import FitResult, TrainingDiverged, fit
from .proxy import data_initialize

__all__ = ["train", "resume", "fit", "TrainConfig", "FitResult", "TrainingDiverged", "evaluate", "evaluate_checkpoint",
           "EvalResult",
           "predict_labels", "write_label_file", "prepare"]


def prepare(cfg: TrainConfig, model=None, data=None, val=None,  # noqa: ANN001
            device: torch.device | str | None = None):
    """The (model, train set, validation set) a config describes, seeded: what `train` feeds to `fit`.

    `model` (a Classifier), `data` and `val` (dataset objects) replace what cfg.model / cfg.data / cfg.val
    name. The model is built and initialized on the CPU (the same initialization everywhere), then moved to
    `device` (default: cfg.device)."""
    device = resolve_device(cfg.device if device is None else device)
    from ..data import check_labels, name_classes, seeded_subset, train_val_split
    from ..models import Classifier
    split = train_val_split(data if data is not None else cfg.data, val if val is not None else cfg.val,
                            cfg.val_split, cfg.seed, cfg.data_dir)
    if cfg.classes:
        split = name_classes(split, cfg.classes)
    train_set, val_set = seeded_subset(split.train, cfg.limit, cfg.seed), split.test
    data_classes = list(split.classes)
    torch.manual_seed(cfg.seed)
    if isinstance(model, Classifier):
        num_classes = model.num_classes
    else:
        num_classes = cfg.num_classes or len(data_classes) or None
        if num_classes is None:
            raise CnnlabError(f"The data '{cfg.data}' has no class names; pass --num-classes.")
        model = _build_model(cfg, num_classes)
    if len(data_classes) == model.num_classes:
        model.labels = data_classes
    check_labels(train_set, model.num_classes, "training data")
    if val_set is not None and len(val_set):
        check_labels(val_set, model.num_classes, "validation data")
    if cfg.data_init and not (cfg.weights or cfg.pretrained):
        data_initialize(model, train_set, cfg.seed)
    return model.to(device), train_set, val_set


def _build_model(cfg: TrainConfig, num_classes: int):  # noqa: ANN001
    from ..models import create_model
    if cfg.weights:
        model = create_model(cfg.model or None, weights=cfg.weights, device="cpu", **cfg.model_kwargs)
        if model.num_classes != num_classes:
            model.replace_head(num_classes)
            model.weights_name = f"{model.weights_name}, a new {num_classes}-class head (PyTorch's default init)"
        return model
    return create_model(cfg.model, pretrained=cfg.pretrained, num_classes=num_classes, device="cpu",
                        **cfg.model_kwargs)


def _describe_data(train_set: Dataset, val_set: Dataset | None) -> tuple[dict, dict]:
    """config.json's "data" (each set's name, source, part, size, fingerprint and the signature a resume
    checks) and the per-image
    hashes for images.npz."""
    from ..data import GivenLoader
    from ..data.fingerprint import describe_images, image_hashes
    hashes, data = {}, {"classes": list(train_set.classes)}
    for part, ds in (("train", train_set), ("val", val_set)):
        if ds is None:
            data[part] = None
        elif isinstance(ds, GivenLoader):  # read batch by batch: recorded without per-image hashes
            data[part] = {"name": ds.name, "source": None, "part": None, "n": len(ds), "fingerprint": None,
                          "signature": signature(ds)}
        else:
            hashes[part] = image_hashes(ds)
            data[part] = {**describe_images(ds, hashes[part]), "signature": signature(ds)}
    return data, hashes


def _check_same_data(run: Run, train_set: Dataset, val_set: Dataset | None) -> None:
    """Refuse to resume on data other than the run's (its recorded signatures; older runs have none)."""
    recorded = run.config.get("data") or {}
    for part, data in (("train", train_set), ("val", val_set)):
        was = recorded.get(part) if isinstance(recorded.get(part), dict) else {}
        if not was.get("signature") or data is None:
            continue
        now = signature(data)
        if now != was["signature"] or len(data) != was.get("n"):
            what = "training" if part == "train" else "validation"
            raise CnnlabError(f"The {what} data is not the data run '{run.path}' was trained on ({len(data)} images, "
                              f"signature {now}; the run recorded {was.get('n')} images, signature "
                              f"{was['signature']}); resume with the same data, or start a new run.")


#: What checkpoints/last.pt must hold to continue a run exactly (see cnnlab.runs).
_RESUMABLE = {"state_dict": dict, "optimizer": dict, "scheduler": dict, "loader": dict, "rng": dict, "epoch": int}


def _check_resumable(ckpt: dict, path: Path) -> None:
    """One sentence when a last.pt cannot continue a run (a plain state dict, or an older or edited file)."""
    missing = [k for k, kind in _RESUMABLE.items()
               if not isinstance(ckpt.get(k), kind) or isinstance(ckpt.get(k), bool)]
    if not missing:
        loader, rng = ckpt["loader"], ckpt["rng"]
        if not all(isinstance(loader.get(k), int) for k in ("epoch", "batch", "seed")):
            missing.append("loader position")
        if not isinstance(rng.get("torch"), torch.Tensor):
            missing.append("random generator state")
        if not isinstance(ckpt["scheduler"].get("step"), int):
            missing.append("schedule step")
    if missing:
        raise CnnlabError(f"'{path}' cannot continue the run: it lacks {', '.join(missing)} (it is not a checkpoint "
                          "`cnnlab train` wrote); start over with --force, or train from it with --weights.")


def _implied_schedule(options: dict) -> dict:
    """Milestones without a schedule mean a multistep schedule; a step period without one, a step schedule."""
    if options.get("schedule") is None:
        if options.get("milestones"):
            return {**options, "schedule": "multistep"}
        if options.get("step_every"):
            return {**options, "schedule": "step"}
    return options


def train(model: str | nn.Module = "cifar_resnet20", data: str | Path | Dataset | object = "cifar10",
          epochs: int | None = None, out: str | Path | None = None, progress: bool = True,
          stop_after: int | None = None, force: bool = False, header: bool | None = None, **options) -> Run:
    """Train a model (a registry name, a Classifier or any nn.Module through `as_classifier`) on data
    into a new run directory `out` (see cnnlab.runs for its layout; default runs/MODEL-TIME).

    `data` (and the option `val`) is a name, file or folder, a cnnlab dataset, or a user's own data: a
    torch Dataset or (x, y) tensors/arrays (read into memory once, the fast path) or a DataLoader (used
    as given; see cnnlab.data.open_dataset). `epochs` and the options are TrainConfig fields (unset ones
    take the model's recipe, then TrainConfig's defaults), `device="cuda"` among them; `stop_after` ends
    the run after that epoch as if it were interrupted (resume it later); `force` starts over in a directory
    that holds a run (removing only the run's own files). The run's effective settings (model, parameters,
    initialization, optimizer, schedule, augmentation, data) go into config.json and, with `header`
    (default: with `progress`), to stderr as a short header."""
    from ..data import load_dataset
    from ..models import Classifier, as_classifier, recipe
    if isinstance(model, nn.Module):
        model = as_classifier(model)
    name = model.name if isinstance(model, Classifier) else str(model)
    if "model_kwargs" not in options and isinstance(model, Classifier):
        options["model_kwargs"] = dict(model.spec.get("kwargs", {}))
    if not isinstance(data, (str, Path)):
        data = load_dataset(data)
    val = options.get("val")
    if val is not None and not isinstance(val, (str, Path)):
        val = load_dataset(val, "all")
        options["val"] = val.name or "validation data"
    else:
        val = None
    data_name = str(data) if isinstance(data, (str, Path)) else (data.name or "data")
    options = _implied_schedule({k: v for k, v in {**options, "epochs": epochs}.items() if v is not None})
    from_recipe = [k for k in recipe(name) if k not in options]
    options = {**recipe(name), **options}
    cfg = TrainConfig.from_dict({"model": name, "data": data_name, **options})
    out = Path(out) if out is not None else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    device = resolve_device(cfg.device)  # a device or format this machine lacks stops here: nothing started
    precision = resolve_precision(cfg.precision, device)
    ctx = distributed.context(device)
    err = run_dir_problem(out, force) if ctx.is_main else None
    err = distributed.broadcast(err, ctx)
    if err:
        raise CnnlabError(err)
    built, train_set, val_set = prepare(cfg, model if isinstance(model, Classifier) else None,
                                        None if isinstance(data, (str, Path)) else data, val, device)
    run = None
    if ctx.is_main:
        from .settings import run_settings, settings_lines
        settings = run_settings(cfg, built, train_set, val_set, from_recipe=from_recipe,
                                given=isinstance(model, Classifier))
        if progress if header is None else header:
            print("\n".join(settings_lines(settings)), file=sys.stderr, flush=True)
        described, hashes = _describe_data(train_set, val_set)
        run = Run.create(out, {"config": cfg.to_dict(), "model": built.describe(), "settings": settings,
                               "data": {**described, "in_memory": not isinstance(data, (str, Path)),
                                        "val_given": val is not None},
                               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "torch": torch.__version__, "world_size": ctx.world_size,
                               "device": describe_device(device), "precision": precision}, force=force)
        run.save_image_hashes(**hashes)
    distributed.barrier(ctx)
    with run.locked() if run is not None else contextlib.nullcontext():
        fit(built, train_set, val_set, cfg, run, progress=progress, stop_after=stop_after)
    return run if run is not None else Run(out)


#: What a resumed run may change besides --epochs: where and how fast it runs, not what it computes.
RESUME_OPTIONS = ("device", "precision", "workers", "compile")


def resume(run_dir: str | Path, epochs: int | None = None, progress: bool = True,
           stop_after: int | None = None, data: Dataset | object | None = None, val: object | None = None,
           model: nn.Module | None = None, **changes) -> Run:
    """Continue a run from checkpoints/last.pt (model, optimizer, schedule step, EMA, RNG and data order);
    a run that stopped before its first checkpoint starts again from its recorded config.

    `data` (and `val`, `model`) are needed only when the run was trained on data (a model) given as an
    object rather than a name, file or folder (the run directory records only its name); the data must
    be the run's own (its recorded signature). A DataLoader resumes at the start of the epoch after the
    checkpoint, in the order its own sampler gives (see cnnlab.data.given). `changes` may set the
    RESUME_OPTIONS, e.g. `device="cpu"` for a run begun on a GPU (checkpoints load on any device)."""
    from ..data import load_dataset
    from ..models import as_classifier, get_entry
    from ..models.weights import read_checkpoint
    run = Run.open(run_dir)
    bad = [k for k, v in changes.items() if k not in RESUME_OPTIONS and v is not None]
    if bad:
        raise CnnlabError(f"--resume continues a run with its own settings; drop --{bad[0].replace('_', '-')} "
                          f"(only --epochs, {', '.join('--' + o for o in RESUME_OPTIONS)} may change).")
    changes = {k: v for k, v in changes.items() if v is not None}
    if epochs is not None:
        changes["epochs"] = epochs
    cfg = TrainConfig.from_dict(_recorded_config(run)).replace(**changes)
    device = resolve_device(cfg.device)
    resolve_precision(cfg.precision, device)
    ctx = distributed.context(device)
    with run.locked() if ctx.is_main else contextlib.nullcontext():
        last = run.path / "checkpoints" / "last.pt"
        ckpt = None
        if last.exists():
            ckpt = read_checkpoint(last)
            _check_resumable(ckpt, last)
            if int(ckpt["epoch"]) >= cfg.epochs:
                raise CnnlabError(f"Run '{run.path}' already finished its {cfg.epochs} epochs; pass --epochs N (more) "
                                  "to train on.")
        elif ctx.is_main:
            print(f"note: run '{run.path}' stopped before its first checkpoint; starting it again from its recorded "
                  "config.", file=sys.stderr, flush=True)
        data = None if data is None else load_dataset(data)
        val = None if val is None else load_dataset(val, "all")
        if val is None and run.config.get("data", {}).get("val_given"):
            raise CnnlabError(f"Run '{run.path}' validated on data given as an object ('{cfg.val}'); pass it again: "
                              "cnnlab.train.resume(run_dir, data=..., val=...).")
        if model is None:
            try:
                get_entry(cfg.model)
            except CnnlabError:
                raise CnnlabError(f"Run '{run.path}' trained a model given as an object ('{cfg.model}'); pass it "
                                  "again: cnnlab.train.resume(run_dir, model=net, ...).") from None
        try:
            # built as the run was, data-dependent initialization included: it decides which parameters train
            # (airbench's whitening filters are frozen by it), so the optimizer state fits; the weights then
            # come from the checkpoint
            model, train_set, val_set = prepare(cfg, None if model is None else as_classifier(model), data=data,
                                                val=val, device=device)
        except CnnlabError as e:
            if data is None and run.config.get("data", {}).get("in_memory"):
                raise CnnlabError(f"Run '{run.path}' was trained on an in-memory dataset ('{cfg.data}'); pass it "
                                  "again: cnnlab.train.resume(run_dir, data=dataset).") from None
            raise e
        _check_same_data(run, train_set, val_set)
        if ctx.is_main and (changes or ckpt is None):
            from ..runs import CONFIG, write_json
            conf = run.config
            conf["config"] = cfg.to_dict()
            write_json(run.path / CONFIG, conf)
            if ckpt is None:
                run.truncate_metrics(0)
                (run.path / "final.json").unlink(missing_ok=True)
        fit(model, train_set, val_set, cfg, run if ctx.is_main else None, resume=ckpt, progress=progress,
            stop_after=stop_after)
    return run


def _recorded_config(run: Run) -> dict:
    """The TrainConfig options config.json records (one sentence when it holds none)."""
    recorded = run.config.get("config")
    if not isinstance(recorded, dict):
        raise CnnlabError(f"'{run.path / 'config.json'}' records no training options (no \"config\" object); it "
                          "cannot be resumed, start a new run.")
    return recorded


class _CallableModule(types.ModuleType):
    """Lets `cnnlab.train(...)` call `cnnlab.train.train(...)` while `cnnlab.train.fit` etc. stay reachable."""

    def __call__(self, *args, **kwargs) -> Run:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
