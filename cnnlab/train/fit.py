"""The training loop: `fit(model, train, val, config, run)`.

One epoch = the loader's batches, each: set the lr for this step, (optionally) keep only its hardest
images (a proxy network's choice, see cnnlab.train.proxy), (optionally) perturb it adversarially,
forward, cross-entropy (label smoothing), backward, (clip), step, EMA update. After each epoch:
evaluate on the validation set (inference mode), log one row to metrics.jsonl and TensorBoard, save
checkpoints/last.pt (and best.pt) atomically, redraw the figures. A non-finite loss stops the run with
one clear sentence; the last good checkpoint stays.

Everything random is seeded (initialization by the caller, data order and augmentation by the
loader, dropout by torch's global generators, whose states go into the checkpoint), so on the CPU N
epochs straight and k epochs + resume give the same weights, bit for bit. On a GPU they agree within
the GPU's determinism: cuDNN picks its fastest (not bit-reproducible) kernels, so the weights differ in
the last bits and drift apart slowly, as two uninterrupted GPU runs do.

It trains where the model's weights are. The loader makes the batches there (on a GPU: the uint8
dataset moved there once, augmentation there); the forward pass runs under mixed precision when asked
(`precision`, fp16 with a gradient scaler); on CUDA, cuDNN's autotuner is on. Checkpoints hold CPU
tensors, so a run started on a GPU resumes on a CPU and the other way round. On a GPU the loss is
checked for NaN every few steps rather than every step (each check waits for the GPU).
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..data.base import Dataset, GivenLoader
from ..data.loader import Augment, GivenBatches, StreamLoader, TensorLoader, make_loader
from ..devices import autocast, grad_scaler, resolve_precision, synchronize
from ..errors import CnnlabError
from ..models import Classifier, as_classifier
from ..models.fastpath import tune_allocator
from ..models.layout import to_channels_last
from ..progress import Progress, note
from ..results import Result, percent
from ..runs import TB_PARTS, Run, curves_figure, save_filters, tensorboard_scalars
from ..tensorboard_log import summary_writer
from .config import TrainConfig
from .ema import EMA, Lookahead
from .evaluate import evaluate
from .inplace import inplace_activations
from .optim import Optimizers, build_optimizer, frozen_names, set_lr
from .proxy import HardSelection, build_proxy

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class TrainingDiverged(CnnlabError):
    """The loss became NaN or infinite."""


@dataclass(repr=False)
class FitResult(Result):
    """What a finished (or stopped) fit returns: per-epoch history (rows as in metrics.jsonl) and the
    best epoch."""

    status: str
    epochs: int
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_top1: float | None = None
    train_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def summary_rows(self) -> list[tuple[str, object]]:
        rows: list[tuple[str, object]] = [("status", self.status), ("epochs", self.epochs)]
        if self.best_val_top1 is not None:
            rows.append(("best_val_top1", f"{percent(self.best_val_top1)} (epoch {self.best_epoch})"))
        if self.history:
            rows.append(("train_loss", round(self.history[-1]["train_loss"], 4)))
        return rows + [("minutes", round(self.train_s / 60, 1))]

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """The curves of the history: objective and validation loss, validation error and lr vs epoch."""
        return curves_figure([("fit", self.history)], Path(path) if path else None)


def backbone_parameter_names(model: Classifier) -> set[str]:
    """Names (in model.net) of every parameter outside the classification head."""
    head = model.head_name
    return {n for n, _ in model.net.named_parameters() if not (head and (n == head or n.startswith(head + ".")))}


def _set_frozen(model: Classifier, names: set[str], frozen: bool) -> None:
    for n, p in model.net.named_parameters():
        if n in names:
            p.requires_grad_(not frozen)


def _adversary(cfg: TrainConfig) -> tuple[Callable | None, Callable | None]:
    """The batch perturbation of adversarial training and the robust-accuracy check (imported only then)."""
    if not cfg.adv:
        return None, None
    from ..attacks.training import make_adversary, robust_accuracy
    return make_adversary(cfg.adv, cfg.eps, cfg.adv_steps, cfg.adv_step_size), robust_accuracy


class _Logger:
    """Rank-0 outputs: TensorBoard as Keras writes it (see cnnlab.runs.tensorboard_scalars: train/ and
    validation/ folders whose curves share a chart, the learning rate, the loss of every step, sample
    training images, hyperparameters with the final metrics), one progress bar over the whole run
    (running loss and accuracy of the epoch, time left for the run) and a line per finished epoch."""

    def __init__(self, run: Run | None, progress: bool, main: bool) -> None:
        self.run, self.progress, self.main = run, progress and main, main
        self.tb: dict = {}
        self.bar: Progress | None = None
        self.losses: list[tuple[int, torch.Tensor]] = []
        if run is not None and main:
            try:
                self.tb = {part: summary_writer(run.path / "tb" / part) for part in TB_PARTS}
            except Exception:  # noqa: BLE001 - TensorBoard missing must not stop training
                self.tb = {}

    def start(self, steps: int, epochs: int) -> None:
        """The run's bar: `steps` steps left over the remaining epochs, up to epoch `epochs`."""
        # off a terminal, the epoch lines are the progress; a line a minute covers long epochs
        self.bar = Progress(steps, "training", "step", enabled=self.progress, interval=60.0)
        self.epochs = epochs

    def step(self, epoch: int, loss: Callable[[], float] | None, acc: Callable[[], float] | None) -> None:
        """One step done in `epoch` (1-based); loss/acc, when given, read the epoch's running means."""
        if self.bar is None:
            return
        if loss is not None and acc is not None:
            self.bar.set_description(f"epoch {epoch}/{self.epochs}")
            self.bar.update(1, loss=round(loss(), 4), acc=f"{100 * acc():.1f}%")
        else:
            self.bar.update(1)

    def step_loss(self, step: int, loss: torch.Tensor) -> None:
        """The loss of global step `step`, for TensorBoard (read in groups: each read syncs a GPU)."""
        if self.tb:
            self.losses.append((step, loss.detach()))
            if len(self.losses) >= 20:
                self.flush_losses()

    def flush_losses(self) -> None:
        if self.tb and self.losses:
            values = torch.stack([v for _, v in self.losses]).float().cpu().tolist()
            for (step, _), v in zip(self.losses, values):
                self.tb["train"].add_scalar("batch_loss", v, step)
        self.losses = []

    def samples(self, x: torch.Tensor) -> None:
        """A few training images as the model sees them (after augmentation), once, at the start."""
        if self.tb:
            self.tb["train"].add_images("samples", x[:16].detach().float().cpu().clamp(0, 1), 0)

    def hparams(self, cfg: TrainConfig, final: dict) -> None:
        """The run's settings beside its final metrics (TensorBoard's HPARAMS tab), in tb/ itself."""
        if not self.tb:
            return
        hp = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in cfg.to_dict().items()
              if v is not None}
        last = final.get("last") or {}
        metrics = {f"hparam/{k}": float(v) for k, v in (("best_val_top1", final.get("best_val_top1")),
                                                         ("val_top1", last.get("val_top1")),
                                                         ("val_top5", last.get("val_top5")),
                                                         ("val_loss", last.get("val_loss")),
                                                         ("train_loss", last.get("train_loss"))) if v is not None}
        with summary_writer(self.run.path / "tb") as w:
            w.add_hparams(hp, metrics, run_name=".")

    def epoch(self, row: dict) -> None:
        self.flush_losses()
        for part, tag, value in tensorboard_scalars(row):
            if part in self.tb:
                self.tb[part].add_scalar(tag, value, row["epoch"])
        for w in self.tb.values():
            w.flush()
        if self.progress:
            parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.4f}"]
            if row.get("val_top1") is not None:
                parts += [f"val loss {row['val_loss']:.4f}", f"val top-1 {100 * row['val_top1']:.2f}%",
                          f"top-5 {100 * row['val_top5']:.2f}%"]
            if row.get("val_robust_top1") is not None:
                parts.append(f"robust {100 * row['val_robust_top1']:.2f}%")
            parts += [f"lr {row['lr']:.4g}", f"{row['images_per_s']:.0f} img/s", f"{row['elapsed_s']:.0f}s"]
            if self.bar is not None:
                self.bar.write("  ".join(parts))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.flush_losses()
        for w in self.tb.values():
            w.close()


def fit(model: Classifier | nn.Module, train: Dataset, val: Dataset | None, cfg: TrainConfig, run: Run | None = None,
        resume: dict | None = None, progress: bool = True, stop_after: int | None = None) -> FitResult:
    """Train `model` (a Classifier, or any nn.Module through `as_classifier`) in place on `train`,
    validating on `val` after each epoch. It trains on the device its weights are on, in
    `cfg.precision` resolved for that device.

    Args:
        resume: a checkpoint dict (from checkpoints/last.pt) to continue from.
        stop_after: stop after this epoch (as if killed then), e.g. to test resuming.
    """
    model = as_classifier(model)
    device = model.device
    precision = resolve_precision(cfg.precision, device)
    ctx = distributed.context(device)
    tune_allocator()  # freed activation buffers stay in the heap: no page faults for every step's big tensors
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN time its kernels once and keep the fastest
    if cfg.custom_conv:
        from ..reference import convert_to_unfold
        convert_to_unfold(model.net)
    if cfg.channels_last:
        to_channels_last(model)
    backbone = backbone_parameter_names(model) if (cfg.freeze_epochs or cfg.backbone_lr_mult != 1.0) else set()
    loader = make_loader(train, cfg.batch_size, size=model.input_size, shuffle=True, augment=cfg.augment,
                         seed=cfg.seed, drop_last=len(train) >= 2 * cfg.batch_size, rank=ctx.rank,
                         world_size=ctx.world_size, channels_last=cfg.channels_last, workers=cfg.workers,
                         device=device)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise CnnlabError(f"The training data '{train.name}' is empty.")
    if isinstance(train, GivenLoader) and Augment.parse(cfg.augment).active and progress and ctx.is_main:
        note(f"note: the DataLoader '{train.name}' is used as given, so cnnlab's augmentation ({cfg.augment}) is "
             "not applied; augment in its transforms.")
    opt = build_optimizer(model.net, cfg, backbone or None)
    ema = EMA(model.net, cfg.ema) if cfg.ema else None
    scaler = grad_scaler(device, precision)
    lookahead = Lookahead(model.net, cfg.lookahead) if cfg.lookahead else None
    selection = HardSelection(build_proxy(model, cfg, train), cfg, ctx, precision) if cfg.hard_fraction < 1 else None
    total_steps = cfg.epochs * steps_per_epoch
    adversary, robust_accuracy = _adversary(cfg)
    start_epoch, step, best_top1, history, train_s = 0, 0, -1.0, [], 0.0
    if resume is not None:
        start_epoch, step, best_top1, train_s = _restore(resume, model, opt, ema, lookahead, scaler, loader, cfg,
                                                         device, selection)
        if run is not None:
            run.truncate_metrics(start_epoch)
            history = run.metrics()
    net = _step_module(model, ctx, device, cfg.compile)
    log = _Logger(run, progress, ctx.is_main)
    log.start((cfg.epochs - start_epoch) * steps_per_epoch - loader.batch, cfg.epochs)
    status, robust_x = "finished", None
    if robust_accuracy is not None and val is not None and len(val):
        k = min(cfg.robust_eval_images, len(val))
        if isinstance(val, GivenLoader):  # the loader's first k images
            robust_x = tuple(t.to(device) for t in val.tensors(k))
        else:
            sel = torch.randperm(len(val), generator=torch.Generator().manual_seed(cfg.seed))[:k]
            robust_x = (val.subset(sel).floats().to(device), val.subset(sel).y.to(device))
    check_every = 1 if device.type == "cpu" else _NAN_CHECK_EVERY
    frozen, stopped = None, set()
    scope = contextlib.ExitStack()
    scope.enter_context(inplace_activations(model.net))  # no hooks while training: ReLUs may overwrite
    trainable = {n for n, p in model.net.named_parameters() if p.requires_grad and n in cfg.freeze_after}
    scope.callback(_set_frozen, model, trainable, False)  # parameters stopped by --freeze-after train again afterwards
    try:
        for epoch in range(start_epoch, cfg.epochs):
            want_frozen = bool(cfg.freeze_epochs) and epoch < cfg.freeze_epochs
            want_stopped = frozen_names(cfg, epoch)
            if want_frozen != frozen or want_stopped != stopped:
                _set_frozen(model, backbone, want_frozen)
                _set_frozen(model, want_stopped, True)  # --freeze-after: no gradient computed for them at all
                frozen, stopped = want_frozen, want_stopped
                if ctx.active:
                    net = _step_module(model, ctx, device, cfg.compile)
            model.train()
            t0 = time.perf_counter()
            seen = drawn = 0
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            correct = torch.zeros((), dtype=torch.long, device=device)
            correct5 = torch.zeros((), dtype=torch.long, device=device)
            bad = _NonFinite(device)
            lr = cfg.lr
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if step == 0:
                    log.samples(x)
                lr = set_lr(opt, cfg, step, steps_per_epoch)
                drawn += len(y)
                if selection is not None:
                    x, y = selection.pick(x, y, step, steps_per_epoch)
                if adversary is not None:
                    x = adversary(model, x, y)
                    model.train()
                with autocast(device, precision):
                    logits = net(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                bad.record(loss, step)
                if (step + 1) % check_every == 0:
                    bad.check(epoch, steps_per_epoch, run, lr)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.clip_grad:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.net.parameters(), cfg.clip_grad)
                scaler.step(opt)
                scaler.update()
                step += 1
                if lookahead is not None:
                    lookahead.update(model.net, step, total_steps)
                if ema is not None:
                    ema.update(model.net)
                with torch.no_grad():
                    loss_sum += loss.detach().double() * len(y)
                    correct += (logits.argmax(1) == y).sum()
                    correct5 += (logits.topk(min(5, logits.shape[1]), 1).indices == y[:, None]).any(1).sum()
                seen += len(y)
                log.step_loss(step, loss)
                show = seen == len(y) or (step % 10 == 0)  # reading the running means syncs a GPU: not every step
                log.step(epoch + 1, (lambda: float(loss_sum) / seen) if show else None,
                         (lambda: float(correct) / seen) if show else None)
            bad.check(epoch, steps_per_epoch, run, lr)
            synchronize(device)  # the epoch's time includes the GPU's queued work
            epoch_s = time.perf_counter() - t0
            train_s += epoch_s
            row = _epoch_row(model, val, cfg, ctx, ema, epoch, loss_sum, torch.stack([correct, correct5]), seen, drawn,
                             lr, epoch_s, train_s, robust_x, robust_accuracy, precision)
            if getattr(loader, "skipped", None):  # unreadable image files, skipped (see StreamLoader)
                row["skipped_images"] = len(loader.skipped)
            history.append(row)
            is_best = row.get("val_top1") is not None and row["val_top1"] > best_top1
            if is_best:
                best_top1 = row["val_top1"]
            elif row.get("val_top1") is None:
                is_best = True
            if run is not None and ctx.is_main:
                run.append_metrics(row)
                run.save_checkpoint(_checkpoint(model, opt, ema, lookahead, scaler, loader, epoch + 1, step, best_top1,
                                                row, train_s, cfg, selection), is_best)
                _figures(run, model, ema)
            log.epoch(row)
            if stop_after is not None and epoch + 1 >= stop_after and epoch + 1 < cfg.epochs:
                status = "stopped"
                break
    except TrainingDiverged:
        status = "diverged"
        if run is not None and ctx.is_main:
            run.write_final(_final(status, history, train_s))
        raise
    finally:
        scope.close()
        log.close()
    if ema is not None:  # the trained model is the averaged one (what best/last.pt hold too)
        model.net.load_state_dict(ema.model.state_dict())
    if run is not None and ctx.is_main and status == "finished":
        final = _final(status, history, train_s)
        run.write_final(final)
        log.hparams(cfg, final)
    best = max(history, key=lambda r: r.get("val_top1") or 0.0) if history else None
    return FitResult(status, len(history), history, best and best["epoch"], best and best.get("val_top1"), train_s)


def _restore(ckpt: dict, model: Classifier, opt: torch.optim.Optimizer, ema: EMA | None, lookahead: Lookahead | None,
             scaler: torch.amp.GradScaler, loader: TensorLoader | StreamLoader | GivenBatches, cfg: TrainConfig,
             device: torch.device, selection: HardSelection | None = None) -> tuple[int, int, float, float]:
    """Put a checkpoint's state back (weights, optimizer, EMA, gradient scaler, lookahead average, the
    selecting proxy, data order, RNG); returns (epoch, step, best top-1, training seconds). A checkpoint
    that does not fit is one sentence, never a traceback."""
    from ..models.weights import load_state_into
    load_state_into(model.net, ckpt.get("train_state_dict") or ckpt["state_dict"], "checkpoints/last.pt", model.name)
    try:
        opt.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CnnlabError(f"The checkpoint's optimizer state does not fit a {cfg.optimizer} optimizer over this "
                          f"model's parameters ({e}); resume with the run's own settings.") from None
    try:
        if ema is not None and ckpt.get("ema"):
            ema.load_state_dict(ckpt["ema"])
        if ckpt.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        if lookahead is not None and ckpt.get("lookahead"):
            lookahead.load_state_dict(ckpt["lookahead"])
        if selection is not None:
            selection.load_state_dict(ckpt["proxy"])
        loader.load_state_dict(ckpt["loader"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and ckpt["rng"].get("cuda") is not None:  # a GPU run resumed on a GPU
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
        return (int(ckpt["epoch"]), int(ckpt["scheduler"]["step"]), float(ckpt.get("best_top1", -1.0)),
                float(ckpt.get("train_s", 0.0)))
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CnnlabError(f"The checkpoint cannot continue this run ({type(e).__name__}: {e}); start over with "
                          "--force.") from None


#: Steps between NaN checks of the loss on a GPU (each check waits for the GPU to catch up).
_NAN_CHECK_EVERY = 25


class _NonFinite:
    """The first step of an epoch whose loss was NaN or infinite, recorded on the device without waiting
    for it; `check` (which waits) raises TrainingDiverged naming that step."""

    def __init__(self, device: torch.device) -> None:
        self.first = torch.full((), -1, dtype=torch.long, device=device)
        self.value = torch.zeros((), dtype=torch.float32, device=device)

    def record(self, loss: torch.Tensor, step: int) -> None:
        new = ~torch.isfinite(loss.detach()) & (self.first < 0)
        self.first = torch.where(new, step, self.first)
        self.value = torch.where(new, loss.detach().float(), self.value)

    def check(self, epoch: int, steps_per_epoch: int, run: Run | None, lr: float) -> None:
        first = int(self.first)
        if first >= 0:
            raise TrainingDiverged(_diverged_message(float(self.value), epoch, first - epoch * steps_per_epoch, run, lr))


def _step_module(model: Classifier, ctx: distributed.DistContext, device: torch.device, compile_: bool) -> nn.Module:
    """What a training step calls: the model, wrapped for DistributedDataParallel when several processes
    train, compiled by torch.compile when asked (the model itself stays the one saved)."""
    net = distributed.wrap(model, ctx, device)
    return torch.compile(net) if compile_ else net


def _diverged_message(loss: float, epoch: int, batch: int, run: Run | None, lr: float) -> str:
    where = f"the last good checkpoint is {run.path / 'checkpoints' / 'last.pt'} (epoch {epoch})" \
        if run is not None and epoch > 0 else "no epoch had finished, so there is no checkpoint"
    return (f"Training stopped: the loss became {loss} at epoch {epoch + 1}, batch {batch + 1} (lr {lr:.4g}); "
            f"{where}; lower --lr, add --warmup or --clip-grad.")


def _epoch_row(model: Classifier, val: Dataset | None, cfg: TrainConfig, ctx: distributed.DistContext, ema: EMA | None,
               epoch: int, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int, drawn: int, lr: float,
               epoch_s: float, train_s: float, robust_x: tuple[torch.Tensor, torch.Tensor] | None,
               robust_accuracy: Callable | None, precision: str = "fp32") -> dict:
    """The epoch's metrics row: training loss/accuracy over all ranks, validation, robust accuracy, timing.
    `correct` counts the right answers [top-1, top-5] among the `seen` images trained on, of `drawn` loaded
    (fewer with hard-example selection: the loss and accuracy are the hard images')."""
    counts = torch.tensor([float(seen), float(drawn)], dtype=torch.float64, device=loss_sum.device)
    stats = distributed.all_reduce_sum(torch.cat([torch.stack([loss_sum, *correct.double()]), counts]), ctx)
    n = max(1.0, float(stats[3]))
    row = {"epoch": epoch + 1, "train_loss": float(stats[0] / n), "train_top1": float(stats[1] / n),
           "train_top5": float(stats[2] / n)}
    if val is not None and len(val):
        fwd = (lambda x: ema.model(model.normalize(x))) if ema is not None else None
        if ema is not None:
            ema.model.train(False)
        res = evaluate(model, val, cfg.eval_batch_size, tta=cfg.tta, forward=fwd, channels_last=cfg.channels_last,
                       workers=cfg.workers, precision=precision, progress=False)
        row.update(val_loss=res.loss, val_top1=res.top1, val_top5=res.top5, val_error=res.error,
                   val_mean_class_accuracy=res.mean_class_accuracy)
        if ema is not None:
            # the raw (non-averaged) weights, for comparison: one view only, so this costs one pass
            raw = evaluate(model, val, cfg.eval_batch_size, tta="none", channels_last=cfg.channels_last,
                           workers=cfg.workers, precision=precision, progress=False)
            row["val_top1_raw"] = raw.top1
    else:
        row.update(val_loss=None, val_top1=None, val_top5=None, val_error=None)
    if robust_x is not None:
        row["val_robust_top1"] = float(robust_accuracy(model, robust_x[0], robust_x[1], cfg.eps, cfg.adv_steps))
    row.update(lr=lr, images_per_s=max(1.0, float(stats[4])) / max(epoch_s, 1e-9), epoch_s=epoch_s, elapsed_s=train_s)
    return row


def _checkpoint(model: Classifier, opt: torch.optim.Optimizer | Optimizers, ema: EMA | None,
                lookahead: Lookahead | None, scaler: torch.amp.GradScaler,
                loader: TensorLoader | StreamLoader | GivenBatches, epoch: int, step: int, best_top1: float, row: dict,
                train_s: float, cfg: TrainConfig, selection: HardSelection | None = None) -> dict:
    """Everything a resumed run needs, as plain data (torch.load(weights_only=True) reads it), every
    tensor a CPU copy (a checkpoint from a GPU loads anywhere)."""
    device = model.device
    state = model.net.state_dict()
    rng = {"torch": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    out = {"cnnlab": model.checkpoint_meta(), "state_dict": state, "optimizer": opt.state_dict(),
           "scheduler": {"step": step}, "ema": ema.state_dict() if ema is not None else None,
           "lookahead": lookahead.state_dict() if lookahead is not None else None,
           "proxy": selection.state_dict() if selection is not None else None,
           "scaler": scaler.state_dict() if scaler.is_enabled() else None,
           "rng": rng, "loader": loader.state_dict(), "epoch": epoch, "device": str(device),
           "best_top1": best_top1, "metrics": row, "train_s": train_s, "config": cfg.to_dict()}
    if ema is not None:  # the averaged weights are the model; the raw ones continue training
        out["state_dict"] = ema.model.state_dict()
        out["train_state_dict"] = state
    return _on_cpu(out)


def _on_cpu(obj: object) -> object:
    """`obj` with every tensor inside it copied to the CPU (dicts, lists and tuples rebuilt)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


def _figures(run: Run, model: Classifier, ema: EMA | None) -> None:
    try:
        run.plot_curves()
        save_filters(ema.model if ema is not None else model.net, run.path / "figures" / "filters.png")
    except Exception as e:  # noqa: BLE001 - a figure must never stop a training run
        import sys
        print(f"warning: could not draw the figures ({e})", file=sys.stderr)


def _final(status: str, history: list[dict], train_s: float) -> dict:
    vals = [r for r in history if r.get("val_top1") is not None]
    best = max(vals, key=lambda r: r["val_top1"]) if vals else None
    return {"status": status, "epochs": len(history), "best_epoch": best and best["epoch"],
            "best_val_top1": best and best["val_top1"], "last": history[-1] if history else None,
            "train_s": train_s, "train_min": train_s / 60}

