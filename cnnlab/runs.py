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
                           val_top1_raw (the weights before averaging) when an EMA is kept, and
                           skipped_images when image files that could not be read were skipped.
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

    .lock                  held (fcntl.flock) by the one process writing the run; a second one is refused.

A directory that already holds a run is never overwritten: training into it again needs --resume
(continue from checkpoints/last.pt, or, when the run stopped before its first checkpoint, start it
again from its recorded config) or --force (start over: only the files listed above are removed; a
user's other files in the directory are never touched). Every write is atomic (temporary file +
rename) and a write that fails (a full disk) is one sentence, its temporary file removed.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CnnlabError, brief
from .results import Result, percent

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from torch import nn

    from .models import Classifier

CONFIG, METRICS, FINAL, LOCK = "config.json", "metrics.jsonl", "final.json", ".lock"
#: The TensorBoard run folders of a training run (under RUN_DIR/tb), as Keras names them.
TB_PARTS = ("train", "validation")
#: What a run writes (see the layout above): all that --force removes, and nothing else.
RUN_FILES = (CONFIG, METRICS, FINAL, "checkpoints/last.pt", "checkpoints/best.pt", "figures/curves.png",
             "figures/filters.png")
RUN_GLOBS = ("tb/events.out.tfevents.*", *(f"tb/{part}/events.out.tfevents.*" for part in TB_PARTS),
             "checkpoints/.*.tmp*", ".*.tmp*")
#: JSON nested deeper than this is refused: nothing cnnlab writes comes close, and the recursion of a
#: parser or renderer must not be the limit a crafted file meets.
MAX_JSON_DEPTH = 64


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


def write_failed(path: str | Path, e: BaseException, kept: str = "", full: bool | None = None) -> CnnlabError:
    """One sentence for a file that could not be written (a full disk, no permission, ...). `full`: whether
    the disk was full when the write failed (measure it before removing the partial file)."""
    path = Path(path)
    if full is None:
        full = disk_full(e, path.parent)
    if full:
        return CnnlabError(f"Could not write '{path}' (no space left on the disk){kept}; free disk space and try "
                           "again.")
    reason = e.strerror if isinstance(e, OSError) and e.strerror else brief(e, 100)
    return CnnlabError(f"Could not write '{path}' ({reason}){kept}; check that the directory is writable and "
                       "try again.")


def disk_full(e: BaseException, folder: Path) -> bool:
    """Whether a failed write failed for want of space: ENOSPC, or (torch's zip writer reports a full disk
    as a RuntimeError without the errno) a file system with almost no space left."""
    if getattr(e, "errno", None) == errno.ENOSPC:
        return True
    try:
        return shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


def read_json(path: str | Path, what: str | None = None) -> Any:
    """A JSON file cnnlab or a user wrote, parsed; one sentence when it is not valid or nested deeper
    than MAX_JSON_DEPTH."""
    path = Path(path)
    try:
        return loads_bounded(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError as e:
        raise CnnlabError(f"{what or path} is not usable JSON ({e}); restore or remove it.") from None
    except OSError as e:
        raise CnnlabError(f"Could not read {what or path} ({e.strerror or e}).") from None


def loads_bounded(text: str) -> Any:
    """json.loads that raises ValueError, never RecursionError, for input nested deeper than MAX_JSON_DEPTH
    (whose rendering, flattening or re-encoding would recurse that deep too)."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{e.msg} at line {e.lineno}") from None
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return obj


@contextlib.contextmanager
def replacing(path: str | Path, kept: str = "the previous file") -> Iterator[Path]:
    """A temporary file beside `path` for the block to write; renamed over `path` when the block ends, so
    `path` is always the old or the new file, never half of one. When the write fails, whatever it
    raised (an OSError, or the RuntimeError torch's zip writer makes of a full disk) removes the
    temporary file and becomes one sentence; Ctrl+C removes it and stops as asked."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        full = isinstance(e, Exception) and disk_full(e, path.parent)  # before the partial file frees space
        tmp.unlink(missing_ok=True)
        if not isinstance(e, Exception):
            raise
        raise write_failed(path, e, f"; {kept} there is intact" if path.exists() else "; nothing was written",
                           full) from None


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temporary file beside `path`, fsync, then rename over it: all or nothing."""
    import torch
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, "the previous checkpoint") as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    return path


def atomic_copy(src: Path, dst: Path) -> Path:
    """Copy a file so that `dst` is either the old or the new file, never half of one."""
    with replacing(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically: a reader never sees half a file."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


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
    atomic_write_text(path, json.dumps(obj, indent=2, default=json_default) + "\n")


def run_dir_problem(path: str | Path, force: bool = False) -> str | None:
    """Why a new run cannot be written into `path` (one sentence naming the ways out), or None."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"Run directory '{path}' is a file; choose another --out."
    if not path.exists() or not any(p.name != LOCK for p in path.iterdir()):
        return None
    config = _run_config(path)
    if config is None:
        taken = [f for f in RUN_FILES if (path / f).exists()]
        if taken:
            return (f"'{path}' holds '{taken[0]}', which cnnlab did not write; choose another --out (--force never "
                    "replaces a file of yours).")
        if force:
            return None
        return (f"Run directory '{path}' already holds files; choose another --out, or pass --force to write the "
                "run beside them (none of them is changed).")
    if force:
        return None
    if (path / "checkpoints" / "last.pt").exists():
        return (f"Run directory '{path}' already holds a run; continue it with --resume {path}, or start over with "
                "--force (which removes only the run's own files).")
    return (f"Run directory '{path}' already holds a run that stopped before its first checkpoint; start it again "
            f"from its recorded settings with --resume {path}, or start over with these options and --force "
            "(which removes only the run's own files).")


def _run_config(path: Path) -> dict | None:
    """The config.json of a cnnlab run in `path` (one with a "config" object), else None."""
    try:
        conf = loads_bounded((path / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return conf if isinstance(conf, dict) and isinstance(conf.get("config"), dict) else None


@dataclass(repr=False)
class Run(Result):
    """A run directory on disk (see the module docstring for its layout)."""

    path: Path

    @classmethod
    def create(cls, path: str | Path, config: dict, force: bool = False) -> "Run":
        """A new run directory; refuses one that already holds files (see `run_dir_problem`). With
        `force`, a previous run there is removed first (its own files only), under the run's lock."""
        path = Path(path)
        problem = run_dir_problem(path, force)
        if problem:
            raise CnnlabError(problem)
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
        (path / "figures").mkdir(exist_ok=True)
        run = cls(path)
        with run.locked():
            run.remove_own_files()
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
        if not isinstance(read_json(path / CONFIG), dict):
            raise CnnlabError(f"'{path / CONFIG}' is not the config of a cnnlab run (not a JSON object); restore it "
                              "or start a new run.")
        return cls(path)

    # -- reading ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict:
        return read_json(self.path / CONFIG)

    def metrics(self) -> list[dict]:
        """The per-epoch rows of metrics.jsonl: JSON objects with a whole epoch number (a torn last line
        from a crash, or any other line, is ignored)."""
        f = self.path / METRICS
        rows = []
        if f.exists():
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    row = loads_bounded(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and isinstance(row.get("epoch"), int) and not isinstance(row["epoch"], bool):
                    rows.append(row)
        return rows

    def final(self) -> dict | None:
        f = self.path / FINAL
        return read_json(f) if f.exists() else None

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
    @contextlib.contextmanager
    def locked(self) -> Iterator["Run"]:
        """Hold the run's lock (an fcntl lock on RUN/.lock, released by the system if the process dies):
        one process at a time writes a run; another is refused in one sentence."""
        import fcntl
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise CnnlabError(f"Run '{self.path}' is being written by another cnnlab process (pid {holder}); "
                                  "wait for it to finish, or stop it first.") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield self
        finally:
            os.close(fd)  # releases the lock

    def remove_own_files(self) -> list[str]:
        """Remove what a run writes (RUN_FILES, TensorBoard events, temporary files) and nothing else;
        returns what was removed. A user's own files in the directory stay."""
        removed = []
        for rel in RUN_FILES:
            if (self.path / rel).is_file():
                (self.path / rel).unlink()
                removed.append(rel)
        for pattern in RUN_GLOBS:
            for p in self.path.glob(pattern):
                if p.is_file() and p.name != LOCK:
                    p.unlink()
                    removed.append(p.relative_to(self.path).as_posix())
        return removed

    def append_metrics(self, row: dict) -> None:
        try:
            with open(self.path / METRICS, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
        except OSError as e:
            raise write_failed(self.path / METRICS, e, "; the checkpoints of earlier epochs are intact") from None

    def truncate_metrics(self, epochs: int) -> None:
        """Keep only rows of the first `epochs` epochs (a resumed run rewrites what came later)."""
        rows = [r for r in self.metrics() if r.get("epoch", 0) <= epochs]
        atomic_write_text(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in rows))

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
        color = f"C{i % 10}"
        for ax, key, style, name, shown in ((axes[0], "train_loss", "-o", "train objective", lambda v: v),
                                            (axes[0], "val_loss", "--", "val loss", lambda v: v),
                                            (axes[1], "val_error", "-o", "val error", lambda v: 100 * v),
                                            (axes[1], "train_top1", ":", "train error", lambda v: 100 * (1 - v)),
                                            (axes[2], "lr", "-", "", lambda v: v)):
            points = [(r["epoch"], _number(r.get(key))) for r in rows]
            points = [(e, shown(v)) for e, v in points if v is not None]  # a row without the value: a gap
            if points:
                ax.plot(*zip(*points), style, ms=3, color=color, label=f"{label} {name}".strip())
    axes[0].set(xlabel="epoch", ylabel="cross-entropy", title="objective")
    axes[1].set(xlabel="epoch", ylabel="error %", title="error")
    axes[2].set(xlabel="epoch", ylabel="learning rate (end of epoch)", title="learning rate")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return finish(fig, out)


def _number(v: object) -> float | None:
    """A finite number from a metrics row, else None (missing, text, NaN)."""
    import math
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


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
    scored = [r for r in rows if _number(r.get("val_top1")) is not None]
    best = max(scored, key=lambda r: r["val_top1"]) if scored else None
    config = run.config.get("config")
    return {"run": str(run.path), "model": config.get("model") if isinstance(config, dict) else None,
            "epochs": len(rows), "best_epoch": best and best["epoch"], "best_val_top1": best and best["val_top1"],
            "last": rows[-1] if rows else None}
