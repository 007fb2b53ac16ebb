"""The run directory: everything a training run leaves behind, readable without the code that made it.

Layout of RUN_DIR (`cnnlab train --out RUN_DIR`):

    config.json            the resolved TrainConfig ("config"), the model's description ("model":
                           name, classes, input size, normalization, parameters), the data
                           ("data": names and sizes of the train/validation sets), "created" (UTC
                           ISO time), "torch" version and "world_size".
    metrics.jsonl          one JSON object per finished epoch: epoch (1-based), train_loss,
                           train_top1, train_top5, val_loss, val_top1, val_top5, val_error,
                           val_mean_class_accuracy, lr (at the epoch's end), images_per_s, epoch_s,
                           elapsed_s; plus val_robust_top1 with adversarial training and
                           val_top1_raw (the weights before averaging) when an EMA is kept.
    tb/                    TensorBoard event files, laid out as Keras writes them (tensorboard
                           --logdir RUN_DIR/tb): tb/train/ and tb/validation/ hold the same rows of
                           metrics.jsonl under shared tags (epoch_loss, epoch_top1, epoch_top5: the
                           training and validation curves on one chart; see tensorboard_scalars),
                           tb/train/ also epoch_learning_rate, batch_loss (every step) and sample
                           training images; tb/ itself the hyperparameters with the final metrics.
    checkpoints/last.pt    after every epoch; checkpoints/best.pt: the epoch with the best val_top1.
                           Plain data only (torch.load(weights_only=True)): {"cnnlab": model meta
                           (spec, labels, preprocessing, mean, std), "state_dict", "optimizer",
                           "scheduler": {"step"}, "ema", "rng", "loader", "epoch", "best_top1",
                           "metrics": that epoch's row}. `cnnlab.create_model(weights=PATH)`
                           rebuilds the trained model from either file. Written atomically
                           (temporary file + rename): a crash or a full disk leaves the previous one.
    figures/curves.png     training objective and validation loss, validation error, and lr vs epoch.
    figures/filters.png    the first convolution layer's filters (contrast-stretched per filter).
    final.json             written when the run ends: "status" (finished | diverged), "epochs",
                           "best_epoch", "best_val_top1", "last" (last metrics row), "train_s".

A directory that already holds a run is never overwritten: training into it again needs --resume.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CnnlabError
from .results import Result, percent

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from torch import nn

    from .models import Classifier

CONFIG, METRICS, FINAL = "config.json", "metrics.jsonl", "final.json"
#: The TensorBoard run folders of a training run (under RUN_DIR/tb), as Keras names them.
TB_PARTS = ("train", "validation")


def tensorboard_scalars(row: dict) -> list[tuple[str, str, float]]:
    """One metrics.jsonl row as TensorBoard scalars (folder, tag, value), Keras's way: `train_X` goes to
    train/ and `val_X` to validation/ under the same tag `epoch_X`, so that both curves share one chart;
    the learning rate is train/epoch_learning_rate; timings stay in train/ (epoch_images_per_s, ...)."""
    out = []
    for key, value in row.items():
        if key == "epoch" or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key.startswith("val_"):
            out.append(("validation", f"epoch_{key[4:]}", float(value)))
        elif key.startswith("train_"):
            out.append(("train", f"epoch_{key[6:]}", float(value)))
        else:
            out.append(("train", "epoch_learning_rate" if key == "lr" else f"epoch_{key}", float(value)))
    return out


def fresh_out_dir(path: str | Path, force: bool = False) -> Path:
    """An output directory that holds nothing of the user's yet (or `force` to add to it)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CnnlabError(f"Output '{out}' is a file; choose a directory for --out.")
    if out.exists() and any(out.iterdir()) and not force:
        raise CnnlabError(f"Output directory '{out}' already exists and is not empty; choose another --out "
                          "or pass --force to write into it.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temporary file beside `path`, fsync, then rename over it: all or nothing."""
    import torch
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        kept = " the previous checkpoint there is intact" if path.exists() else " nothing was written"
        raise CnnlabError(f"Could not write checkpoint '{path}' ({e.strerror or e});{kept}; free disk "
                          "space and --resume the run.") from None
    return path


def atomic_copy(src: Path, dst: Path) -> Path:
    """Copy a file so that `dst` is either the old or the new file, never half of one."""
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CnnlabError(f"Could not write '{dst}' ({e.strerror or e}); the previous file is intact.") from None
    return dst


def json_default(o: Any) -> Any:
    """How cnnlab writes non-JSON values: paths as text, results via .to_dict(), tensors/arrays as lists."""
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename): a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=json_default) + "\n")
    os.replace(tmp, path)


@dataclass(repr=False)
class Run(Result):
    """A run directory on disk (see the module docstring for its layout)."""

    path: Path

    @classmethod
    def create(cls, path: str | Path, config: dict) -> "Run":
        """A new run directory; refuses one that already holds files."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            what = "a run" if (path / CONFIG).exists() else "files"
            raise CnnlabError(f"Run directory '{path}' already holds {what}; choose another --out, or "
                              f"continue it with --resume {path}.")
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
        (path / "figures").mkdir(exist_ok=True)
        run = cls(path)
        write_json(path / CONFIG, config)
        return run

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        """An existing run directory (one with config.json)."""
        path = Path(path)
        if not (path / CONFIG).exists():
            if path.is_file():
                raise CnnlabError(f"'{path}' is a file; pass the run directory (the one with {CONFIG}).")
            raise CnnlabError(f"'{path}' is not a cnnlab run directory (no {CONFIG}); pass the --out "
                              "directory of a `cnnlab train` run.")
        return cls(path)

    # -- reading ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict:
        return json.loads((self.path / CONFIG).read_text())

    def metrics(self) -> list[dict]:
        """The per-epoch rows of metrics.jsonl (a torn last line from a crash is ignored)."""
        f = self.path / METRICS
        rows = []
        if f.exists():
            for line in f.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return rows

    def final(self) -> dict | None:
        f = self.path / FINAL
        return json.loads(f.read_text()) if f.exists() else None

    def checkpoint(self, which: str = "best") -> Path:
        """checkpoints/best.pt or last.pt (best falls back to last when no best exists yet)."""
        p = self.path / "checkpoints" / f"{which}.pt"
        if not p.exists() and which == "best":
            p = self.path / "checkpoints" / "last.pt"
        if not p.exists():
            raise CnnlabError(f"Run '{self.path}' has no checkpoint yet (checkpoints/{which}.pt); it stopped "
                              "before finishing an epoch.")
        return p

    def load_model(self, which: str = "best", device: str | None = "auto") -> "Classifier":
        """The trained Classifier from a checkpoint of this run, on `device` (see cnnlab.devices)."""
        from .models import create_model
        return create_model(weights=self.checkpoint(which), device=device)

    # -- writing ----------------------------------------------------------------------------
    def append_metrics(self, row: dict) -> None:
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()

    def truncate_metrics(self, epochs: int) -> None:
        """Keep only rows of the first `epochs` epochs (a resumed run rewrites what came later)."""
        rows = [r for r in self.metrics() if r.get("epoch", 0) <= epochs]
        tmp = self.path / f".{METRICS}.tmp"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.replace(tmp, self.path / METRICS)

    def save_checkpoint(self, obj: dict, best: bool) -> Path:
        last = atomic_save(obj, self.path / "checkpoints" / "last.pt")
        if best:
            atomic_copy(last, self.path / "checkpoints" / "best.pt")
        return last

    def write_final(self, obj: dict) -> None:
        write_json(self.path / FINAL, obj)

    # -- summary and figures ----------------------------------------------------------------
    def summary_rows(self) -> list[tuple[str, object]]:
        s = summary(self)
        final = self.final() or {}
        rows: list[tuple[str, object]] = [("path", str(self.path)), ("model", s["model"]),
                                          ("epochs", s["epochs"]), ("status", final.get("status", "running"))]
        if s["best_val_top1"] is not None:
            rows.append(("best_val_top1", f"{percent(s['best_val_top1'])} (epoch {s['best_epoch']})"))
        if s["last"]:
            rows.append(("train_loss", round(s["last"]["train_loss"], 4)))
            rows.append(("minutes", round(s["last"].get("elapsed_s", 0.0) / 60, 1)))
        return rows

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """The curves: objective and validation loss, validation error and lr vs epoch."""
        return plot_curves([self], Path(path) if path else None)

    def plot_curves(self, path: str | Path | None = None) -> Path:
        """Training objective + validation loss, validation error and lr vs epoch (figures/curves.png)."""
        return plot_curves([self], Path(path) if path else self.path / "figures" / "curves.png")


def plot_curves(runs: list[Run], out: Path | None = None, labels: list[str] | None = None) -> "Figure | Path":
    """One figure of several runs: objective, validation error and learning rate vs epoch; the figure,
    or the PNG path when `out` is given."""
    labels = labels or [r.name for r in runs]
    return curves_figure([(label, run.metrics()) for run, label in zip(runs, labels)], out)


def curves_figure(series: list[tuple[str, list[dict]]], out: Path | None = None) -> "Figure | Path":
    """The curves of (label, metrics rows) pairs (rows as in metrics.jsonl): objective, validation error
    and learning rate vs epoch; the figure, or the PNG path when `out` is given."""
    from .figures import finish, new_figure
    fig, grid = new_figure(1, 3, figsize=(15, 4.2))
    axes = grid[0]
    for i, (label, rows) in enumerate(series):
        if not rows:
            continue
        ep = [r["epoch"] for r in rows]
        color = f"C{i % 10}"
        axes[0].plot(ep, [r["train_loss"] for r in rows], "-o", ms=3, color=color, label=f"{label} train objective")
        vals = [(r["epoch"], r["val_loss"], r["val_error"]) for r in rows if r.get("val_loss") is not None]
        if vals:
            axes[0].plot([v[0] for v in vals], [v[1] for v in vals], "--", color=color, label=f"{label} val loss")
            axes[1].plot([v[0] for v in vals], [100 * v[2] for v in vals], "-o", ms=3, color=color,
                         label=f"{label} val error")
        if rows[0].get("train_top1") is not None:
            axes[1].plot(ep, [100 * (1 - r["train_top1"]) for r in rows], ":", color=color, label=f"{label} train error")
        axes[2].plot(ep, [r["lr"] for r in rows], "-", color=color, label=label)
    axes[0].set(xlabel="epoch", ylabel="cross-entropy", title="objective")
    axes[1].set(xlabel="epoch", ylabel="error %", title="error")
    axes[2].set(xlabel="epoch", ylabel="learning rate (end of epoch)", title="learning rate")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return finish(fig, out)


def first_conv_filters(net: nn.Module) -> torch.Tensor | None:
    """The weights [out, 3, k, k] of the first convolution over RGB input, or None (e.g. an MLP)."""
    from .explain.filters import first_rgb_conv
    found = first_rgb_conv(net)
    return None if found is None else found[1].weight.detach().float().cpu()


def save_filters(net: nn.Module, path: str | Path, scale: int = 0) -> Path | None:
    """The first convolution's filters as the titled grid of `cnnlab.explain` (each contrast-stretched,
    16 per row for 32+ filters), or None when the network has no convolution over RGB."""
    from .explain.filters import conv_filters, first_rgb_conv
    found = first_rgb_conv(net)
    return None if found is None else conv_filters(*found).figure(path, scale=scale)


def compare_runs(paths: list[str | Path], out: str | Path) -> Path:
    """Curves of several runs on one figure (e.g. with vs without shortcuts, BN vs none), saved as a new
    PNG `out` (an existing file is kept)."""
    if Path(out).exists():
        raise CnnlabError(f"'{out}' already exists; choose another --out.")
    runs = [Run.open(p) for p in paths]
    empty = [r.name for r in runs if not r.metrics()]
    if len(empty) == len(runs):
        raise CnnlabError(f"None of the runs has finished an epoch yet ({', '.join(empty)}).")
    names = [r.name for r in runs]
    labels = names if len(set(names)) == len(names) else [str(r.path) for r in runs]
    return plot_curves(runs, Path(out), labels)


def load_trained_model(path: str | Path, which: str = "best", device: str | None = "auto") -> "Classifier":
    """The model of a run directory (its `which` checkpoint) or of a checkpoint file, on `device`."""
    from .models import create_model
    path = Path(path)
    if path.is_dir():
        return Run.open(path).load_model(which, device)
    if path.suffix.lower() in (".json", ".jsonl", ".txt", ".png"):
        raise CnnlabError(f"'{path}' is not a checkpoint; pass RUN_DIR/checkpoints/best.pt or the run directory.")
    return create_model(weights=path, device=device)


def summary(run: Run) -> dict:
    """A short JSON-able summary of a run: best and last epoch metrics."""
    rows = run.metrics()
    best = max(rows, key=lambda r: r.get("val_top1") or 0.0) if rows else None
    return {"run": str(run.path), "model": run.config.get("config", {}).get("model"), "epochs": len(rows),
            "best_epoch": best and best["epoch"], "best_val_top1": best and best.get("val_top1"),
            "last": rows[-1] if rows else None}
