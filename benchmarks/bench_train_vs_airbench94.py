"""airbench94 (the CIFAR-10 speed record) side by side with cnnlab's airbench recipe, on this CPU.

airbench94 is the published package (`pip install airbench==0.1.8`, the `bench` extra), run with its
algorithm unchanged; only its CUDA/fp16 plumbing is replaced at runtime, in this process, by the shims
in `install_cpu_shims` (fp32 on the CPU):
  * `Tensor.cuda` / `Module.cuda` return the object itself; `Tensor.half` / `Module.half` convert to
    float32 instead (its data loader and network are fp16 on the GPU);
  * `torch.cuda.Event` becomes a perf_counter timer and `torch.cuda.synchronize` a no-op (its own
    training-time accounting keeps working: training + whitening init, evaluation excluded);
  * `CifarLoader`'s default device `gpu=0` becomes 'cpu' (it `torch.load`s its data file there).
Data: ../shared/data CIFAR-10 (train: the 50k JPEG-75 copy, decoded by cnnlab.data.load_dataset;
test: cifar10_test.npz), written in the file format its CifarLoader reads (`cifar10/train.pt`,
`cifar10/test.pt`: uint8 NHWC images, labels, class names) into a temporary directory, which becomes
the working directory (airbench opens 'cifar10/...' relative to it).

Modes:
  --steps N   throughput: N timed training steps (after 1 warm-up step) of airbench94 (batch 1024)
              and of cnnlab's recipe (`TrainConfig` from the airbench family's recipe: batch 1024, of which the
              model trains on the hardest 512; `--cnnlab-set hard_fraction=1.0` for all 1024; plus any
              --cnnlab-option / --cnnlab-set, through cnnlab.train.fit), alternating, each in a fresh
              subprocess, --reps times. A step is timed from the end of one optimizer step to the end of
              the next (so it includes the batch's augmentation and airbench's every-5-steps lookahead
              update); a run's figure is its mean step, so work done every Nth step (the lookahead, cnnlab's
              proxy learning from every 4th batch) counts at its share: use a multiple of 4 and 5 steps, e.g.
              20. Prints images/s, the per-epoch time each implies (its steps per 50,000-image epoch x the mean
              step, plus airbench's once-per-epoch augmentation pass), medians over --reps and the ratios.
  --full      airbench94's complete training (9.9 epochs, or --epochs), in this process: training
              seconds (its own timer: whitening init + epochs, evaluation excluded), per-epoch test
              accuracy without TTA (it evaluates after every epoch), final accuracy without TTA,
              with flip TTA and with its 6-view TTA (tta_level 2), peak RSS.
  --race      the fair time-to-accuracy comparison: airbench94's complete training and cnnlab's recipe
              (`cnnlab.train`, --cnnlab-epochs, plus any --cnnlab-option of the airbench recipe),
              alternating, each in a fresh process, --reps times, with the same allocator setting (glibc's
              MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ at 1 GiB in both processes' environment:
              what cnnlab's mallopt sets), the same threads, OMP_WAIT_POLICY and data. After every epoch
              both are evaluated on the whole test set with their own 6-view TTA (airbench94: its current
              weights, tta_level 2; cnnlab: its EMA weights), outside the training time. Reports the
              training minutes to 90% and 90.5% and the final accuracy of each, and draws the per-epoch
              curves of every run in one figure (--figure). `--race-only cnnlab` (or airbench94) runs one
              side, e.g. another cnnlab configuration against an airbench94 run of the same session;
              `--figure-of A.json B.json --figure race.png` draws the curves of such runs in one figure.

    .venv/bin/pip install airbench==0.1.8        # the `bench` extra; it declares no dependencies
    nice -n 19 .venv/bin/python benchmarks/bench_train_vs_airbench94.py --steps 20 --reps 3
    nice -n 19 .venv/bin/python benchmarks/bench_train_vs_airbench94.py --full
    .venv/bin/python benchmarks/bench_train_vs_airbench94.py --race --reps 2 --figure race.png --json race.json
    # smoke checks (not results): --steps 2 --reps 1 --limit 4096 ; --full --limit 2048 --test-limit 500 --epochs 1 ;
    #   --race --reps 1 --limit 2048 --test-limit 500 --epochs 1 --cnnlab-epochs 1 --figure /tmp/race.png

The machine is shared: run when it is quiet and quote ratios from one run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CNNLAB_SHARED", ROOT.parent / "shared")) / "data"
EPOCH_IMAGES = 50_000


# ---------------------------------------------------------------------------------------------------
# data in airbench's format

def prepare_data(workdir: Path, limit: int | None, test_limit: int | None) -> Path:
    """Write workdir/cifar10/{train,test}.pt as airbench's CifarLoader reads them (uint8 NHWC)."""
    import torch

    from cnnlab.data import load_dataset
    root = workdir / "cifar10"
    root.mkdir(parents=True, exist_ok=True)
    for split, name, n in (("train", "cifar10_train_jpeg.npz", limit), ("test", "cifar10_test.npz", test_limit)):
        d = load_dataset(str(SHARED / name))
        if n:  # a seeded random subset (the test file is sorted by class)
            sel = torch.randperm(len(d), generator=torch.Generator().manual_seed(1))[:n].sort().values
            d = d.subset(sel)
        torch.save({"images": d.x.permute(0, 2, 3, 1).contiguous(), "labels": d.y.long(),
                    "classes": list(d.classes)}, root / f"{split}.pt")
    return workdir


# ---------------------------------------------------------------------------------------------------
# runtime shims: airbench94 on the CPU in fp32

class _CpuEvent:
    """Stands in for torch.cuda.Event(enable_timing=True): wall-clock marks, elapsed_time in ms."""

    intervals: list[float] = []  # every elapsed_time() airbench asks for, in seconds, in order

    def __init__(self, *args, **kwargs) -> None:
        self.t = None

    def record(self, *args, **kwargs) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: "_CpuEvent") -> float:
        s = end.t - self.t
        _CpuEvent.intervals.append(s)
        return 1e3 * s


def install_cpu_shims() -> None:
    """Make airbench's CUDA/fp16 code run on the CPU in float32 (algorithm unchanged)."""
    import torch
    from torch import nn
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.half = lambda self, *a, **k: self.float(**k)
    nn.Module.half = lambda self: self.float()
    torch.cuda.Event = _CpuEvent
    torch.cuda.synchronize = lambda *a, **k: None
    import airbench.utils as abu
    init = abu.CifarLoader.__init__
    names = init.__code__.co_varnames[1:init.__code__.co_argcount]
    defaults = dict(zip(names[-len(init.__defaults__):], init.__defaults__))
    defaults["gpu"] = "cpu"
    init.__defaults__ = tuple(defaults.values())


def _threads(n: int) -> None:
    import torch
    torch.set_num_threads(n)


def _timed(iterable, marks: list[float], stop_after: int | None = None):
    """Yield from `iterable`, appending perf_counter() when each consumer step is done (the next
    request) to `marks`; marks[0] is the start of the epoch's iteration."""
    marks.append(time.perf_counter())
    for i, batch in enumerate(iterable):
        if stop_after is not None and i >= stop_after:
            return
        yield batch
        marks.append(time.perf_counter())


def _cycles(marks: list[float]) -> list[float]:
    """Step times from `_timed` marks: end of step k-1 -> end of step k, for k >= 2 (step 1 is warm-up)."""
    return [b - a for a, b in zip(marks[1:], marks[2:])]


# ---------------------------------------------------------------------------------------------------
# workers (each in a fresh subprocess)

#: glibc reads these at start-up: the setting cnnlab's trainer makes with mallopt (allocations up to 1 GiB
#: come from the heap, up to 1 GiB of free top memory kept), given to airbench94's process unchanged.
SAME_ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def worker_env(tuned_malloc: bool) -> dict:
    """The environment of a worker process: the allocator setting, and OpenMP threads that sleep when idle
    (what the `cnnlab` command sets) unless the caller chose otherwise."""
    env = {**os.environ, **(SAME_ALLOCATOR if tuned_malloc else {})}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def worker_airbench_steps(steps: int, tune_malloc: bool = False) -> dict:
    # tune_malloc: the parent put SAME_ALLOCATOR in this process's environment (glibc read it at start-up)
    install_cpu_shims()
    import airbench.utils as abu
    from airbench.lib_airbench94 import hyp, train94

    marks: list[float] = []
    first_yield: list[float] = []

    class TimedLoader(abu.CifarLoader):
        def __iter__(self):
            t0 = time.perf_counter()
            it = super().__iter__()
            for i, b in enumerate(_timed(it, marks)):
                if i == 0:
                    first_yield.append(time.perf_counter() - t0)
                yield b

    batch = hyp["opt"]["batch_size"]
    loader = TimedLoader("cifar10", train=True, batch_size=batch, aug=hyp["aug"], altflip=True)
    if len(loader) < steps + 2:
        raise SystemExit(f"airbench94: {len(loader)} batches per epoch; use fewer --steps or more data.")
    # airbench trains ceil(len(loader) * epochs) steps: N+2 (the last one ends the loop unobserved)
    train94(train_loader=loader, epochs=(steps + 1.5) / len(loader), verbose=False)
    cyc = _cycles(marks)[:steps]
    # its once-per-epoch augmentation pass over the whole training set (random crop of every image),
    # done before an epoch's first batch: timed once more on a later epoch, outside training
    t0 = time.perf_counter()
    next(abu.CifarLoader.__iter__(loader))
    aug_pass_s = time.perf_counter() - t0
    return {"impl": "airbench94+malloc" if tune_malloc else "airbench94", "batch": batch, "step_s": cyc,
            "epoch0_setup_s": first_yield[0], "epoch_aug_pass_s": aug_pass_s,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def cnnlab_options(options: list[str], sets: list[str]) -> dict:
    """TrainConfig values from named options of the airbench recipe and KEY=JSON pairs."""
    from cnnlab.errors import CnnlabError
    from cnnlab.models.airbench import option_values
    try:
        opts = option_values(options)
    except CnnlabError as e:
        raise SystemExit(str(e)) from None
    for kv in sets:
        k, v = kv.split("=", 1)
        opts[k] = json.loads(v)
    return opts


def worker_cnnlab_steps(steps: int, options: list[str], sets: list[str]) -> dict:
    import torch

    import importlib

    from cnnlab.data.base import ImageArrays
    from cnnlab.models import recipe
    from cnnlab.train import TrainConfig, prepare
    fit_mod = importlib.import_module("cnnlab.train.fit")  # the module (cnnlab.train.fit is also the function)
    d = torch.load("cifar10/train.pt")
    data = ImageArrays(d["images"].permute(0, 3, 1, 2).contiguous(), d["labels"], d["classes"], "cifar10-train-jpeg")
    cfg = TrainConfig(model="airbench", **{**recipe("airbench"), "epochs": 1, **cnnlab_options(options, sets)})
    model, train_set, _ = prepare(cfg, data=data)
    marks: list[float] = []
    real_make_loader = fit_mod.make_loader

    class TimedLoader:
        def __init__(self, inner) -> None:
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __len__(self) -> int:
            return len(self.inner)

        def __iter__(self):
            return _timed(iter(self.inner), marks, stop_after=steps + 1)

    fit_mod.make_loader = lambda *a, **k: TimedLoader(real_make_loader(*a, **k))
    if len(fit_mod.make_loader(train_set, cfg.batch_size)) < steps + 1:
        raise SystemExit("cnnlab: too few batches per epoch; use fewer --steps or more data.")
    marks.clear()
    fit_mod.fit(model, train_set, None, cfg, None, progress=False)
    return {"impl": "cnnlab", "batch": cfg.batch_size, "step_s": _cycles(marks)[:steps], "n_train": len(train_set),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ---------------------------------------------------------------------------------------------------
# modes

def run_steps(a, workdir: Path) -> None:
    impls = ("airbench94", "airbench94+malloc", "cnnlab") if a.airbench_tuned_malloc else ("airbench94", "cnnlab")
    rows: dict[str, list[dict]] = {k: [] for k in impls}
    for rep in range(a.reps):
        for impl in impls:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", impl, "--steps", str(a.steps),
                   "--threads", str(a.threads)]
            if impl == "cnnlab":
                cmd += [arg for name in a.cnnlab_option for arg in ("--cnnlab-option", name)]
                cmd += [arg for kv in a.cnnlab_set for arg in ("--cnnlab-set", kv)]
            p = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True,
                               env=worker_env(impl != "airbench94"))
            if p.returncode != 0:
                raise SystemExit(f"{impl} worker failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
            r = json.loads(p.stdout.strip().splitlines()[-1])
            # the mean, not the median: work done every Nth step (cnnlab's proxy learning, airbench's
            # lookahead) counts at its share, as in a real epoch
            mean = statistics.fmean(r["step_s"])
            r.update(mean_step_s=mean, images_per_s=r["batch"] / mean,
                     epoch_s=EPOCH_IMAGES // r["batch"] * mean + r.get("epoch_aug_pass_s", 0.0))
            rows[impl].append(r)
            extra = (f" (incl. its per-epoch augmentation pass {r['epoch_aug_pass_s']:.1f} s; first epoch's "
                     f"setup {r['epoch0_setup_s']:.1f} s)") if "epoch_aug_pass_s" in r else ""
            print(f"rep {rep + 1} {impl:10s} batch {r['batch']:4d}: mean step {mean:.2f} s -> "
                  f"{r['images_per_s']:.0f} img/s, {r['epoch_s'] / 60:.1f} min per 50k epoch{extra}; "
                  f"peak RSS {r['rss_mb']:.0f} MB", flush=True)
    med = {k: statistics.median(r["images_per_s"] for r in v) for k, v in rows.items()}
    epoch_min = {k: statistics.median(r["epoch_s"] for r in v) / 60 for k, v in rows.items()}
    print(json.dumps({"images_per_s_median": med, "epoch_min_median": epoch_min,
                      "ratio_cnnlab_over_airbench94": med["cnnlab"] / med["airbench94"],
                      "epoch_time_ratio_airbench94_over_cnnlab": epoch_min["airbench94"] / epoch_min["cnnlab"],
                      "note": "shared machine: absolute figures are inflated; quote the ratios of one run",
                      "steps": a.steps, "reps": a.reps, "threads": a.threads, "limit": a.limit,
                      "load_average_end": os.getloadavg()}, indent=1))


def run_full(a, workdir: Path) -> None:
    os.chdir(workdir)
    if a.airbench_tuned_malloc:  # as mallopt: glibc read the environment before this process started
        from cnnlab.models.fastpath import tune_allocator
        tune_allocator()
    install_cpu_shims()
    _threads(a.threads)
    import torch
    import airbench.utils as abu
    from airbench.lib_airbench94 import hyp, train94
    epochs_log: list[dict] = []
    original = abu.print_training_details

    def record(variables, is_final_entry):  # noqa: ANN001
        epochs_log.append({k: variables.get(k) for k in ("epoch", "train_loss", "train_acc", "val_acc",
                                                         "tta_val_acc", "total_time_seconds")})
        original(variables, is_final_entry)

    abu.print_training_details = record
    _CpuEvent.intervals.clear()
    print(f"# load average at start: {os.getloadavg()} (shared machine: absolute times are inflated)", flush=True)
    t0 = time.time()
    n_train = len(torch.load("cifar10/train.pt")["labels"])
    model = train94(epochs=a.epochs if a.epochs else hyp["opt"]["train_epochs"])
    wall = time.time() - t0
    # intervals: whitening init, one per epoch, then the final TTA evaluation
    train_s = sum(_CpuEvent.intervals[:-1])
    tta_eval_s = _CpuEvent.intervals[-1]
    per_epoch = [r for r in epochs_log if isinstance(r["epoch"], int)]
    final = epochs_log[-1]
    test = abu.CifarLoader("cifar10", train=False, batch_size=2000)
    t1 = time.time()
    flip = abu.evaluate(model, test, tta_level=1)
    flip_s = time.time() - t1
    print(json.dumps({
        "train_s": train_s, "train_min": train_s / 60, "epochs": a.epochs or hyp["opt"]["train_epochs"],
        "per_epoch": [{"epoch": r["epoch"] + 1, "test_acc_no_tta": r["val_acc"],
                       "train_min": r["total_time_seconds"] / 60} for r in per_epoch],
        "final_acc_no_tta": per_epoch[-1]["val_acc"] if per_epoch else None, "final_acc_flip_tta": flip,
        "final_acc_tta_level2": final.get("tta_val_acc"), "tta_level2_eval_s": tta_eval_s, "flip_eval_s": flip_s,
        "wall_s": wall, "n_test": len(test.images), "n_train": n_train,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": a.threads,
        "tuned_malloc": bool(a.airbench_tuned_malloc), "load_average_end": os.getloadavg()}, indent=1))


# ---------------------------------------------------------------------------------------------------
# the race: time to accuracy of both, side by side

THRESHOLDS = (0.90, 0.905)


def worker_race_airbench(epochs: float | None) -> dict:
    """airbench94's complete training; after each epoch its current weights on the test set with its 6-view
    TTA (tta_level 2), outside its timer."""
    install_cpu_shims()
    import airbench.utils as abu
    from airbench.lib_airbench94 import hyp, train94
    rows: list[dict] = []
    original = abu.print_training_details

    def record(variables, is_final_entry):  # noqa: ANN001 - airbench's logging hook: locals() of its train()
        if isinstance(variables.get("epoch"), int):
            tta = abu.evaluate(variables["model"], variables["test_loader"], tta_level=2)
            rows.append({"epoch": variables["epoch"] + 1, "train_min": variables["total_time_seconds"] / 60,
                         "top1": tta, "top1_raw": variables["val_acc"]})
        original(variables, is_final_entry)

    abu.print_training_details = record
    epochs = epochs or hyp["opt"]["train_epochs"]
    train94(epochs=epochs, verbose=True)
    return {"impl": "airbench94", "epochs": epochs, "per_epoch": rows,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def worker_race_cnnlab(epochs: int, options: list[str], sets: list[str]) -> dict:
    """cnnlab's airbench recipe through cnnlab.train on the same files; EMA weights + 6-view TTA per epoch."""
    import numpy as np
    import torch

    import cnnlab
    from cnnlab.data.base import ImageArrays
    d = torch.load("cifar10/train.pt")
    data = ImageArrays(d["images"].permute(0, 3, 1, 2).contiguous(), d["labels"], d["classes"], "cifar10-train")
    t = torch.load("cifar10/test.pt")
    np.savez("test.npz", x=t["images"].numpy(), y=t["labels"].numpy(), classes=np.array(t["classes"]))
    run = cnnlab.train("airbench", data=data, val="test.npz", epochs=epochs, out=f"cnnlab-run-{os.getpid()}",
                       progress=False, **cnnlab_options(options, sets))
    rows = [{"epoch": r["epoch"], "train_min": r["elapsed_s"] / 60, "top1": r["val_top1"],
             "top1_raw": r.get("val_top1_raw")} for r in run.metrics()]
    return {"impl": "cnnlab", "epochs": epochs, "options": options, "set": sets, "per_epoch": rows,
            "config": run.config["config"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def time_to(rows: list[dict], threshold: float) -> float | None:
    """Training minutes at the first epoch whose test top-1 reached `threshold` (None if none did)."""
    hit = next((r for r in rows if r["top1"] >= threshold), None)
    return None if hit is None else hit["train_min"]


def race_figure(results: list[dict], path: Path) -> Path:
    """Test top-1 (6-view TTA) against training minutes, every run of both, one figure."""
    from cnnlab.figures import new_figure, save_figure
    fig, axes = new_figure(figsize=(7.5, 4.6))
    ax = axes[0][0]
    colors: dict[str, str] = {}
    palette = ["tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:red", "tab:brown"]
    for r in results:
        xs = [row["train_min"] for row in r["per_epoch"]]
        ys = [100 * row["top1"] for row in r["per_epoch"]]
        label = r["impl"] if r["impl"] != "cnnlab" else (
            "cnnlab's recipe" + (f" + {len(r['options'])} options" if r.get("options") else "")
            + f", {r['epochs']} epochs"
            + "".join(", " + s.replace('"', "") for s in r.get("set") or []))
        first = label not in colors
        colors.setdefault(label, palette[len(colors) % len(palette)])
        ax.plot(xs, ys, marker="o", ms=3, color=colors[label], alpha=1.0 if first else 0.5,
                label=label if first else None)
    for thr, dy in zip(THRESHOLDS, (-10, 2)):  # the lower line labelled below it, the upper above
        ax.axhline(100 * thr, color="grey", lw=0.8, ls=":")
        ax.annotate(f"{100 * thr:g}%", (0, 100 * thr), xycoords=("axes fraction", "data"), xytext=(2, dy),
                    textcoords="offset points", fontsize=8, color="grey")
    ax.set_xlabel("training minutes (evaluation excluded)")
    ax.set_ylabel("CIFAR-10 test top-1, 6-view TTA (%)")
    low = min(100 * row["top1"] for r in results for row in r["per_epoch"])
    ax.set_ylim(max(low - 2, 0), 100 if low < 80 else 93)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")  # the spot that covers the fewest points
    ax.set_title("airbench94 vs cnnlab on this CPU: same allocator, threads and data", fontsize=10)
    return save_figure(fig, path)


def run_race(a, workdir: Path) -> None:
    results: list[dict] = []
    print(f"# load average at start: {os.getloadavg()}", flush=True)
    for rep in range(1, a.reps + 1):
        order = ("airbench94", "cnnlab") if rep % 2 else ("cnnlab", "airbench94")
        order = tuple(impl for impl in order if a.race_only in (None, impl))
        for impl in order:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", f"race-{impl}", "--threads",
                   str(a.threads)]
            if impl == "airbench94" and a.epochs:
                cmd += ["--epochs", str(a.epochs)]
            if impl == "cnnlab":
                cmd += ["--cnnlab-epochs", str(a.cnnlab_epochs)]
                cmd += [arg for name in a.cnnlab_option for arg in ("--cnnlab-option", name)]
                cmd += [arg for kv in a.cnnlab_set for arg in ("--cnnlab-set", kv)]
            p = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=worker_env(True))
            if p.returncode != 0:
                raise SystemExit(f"{impl} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r["rep"] = rep
            results.append(r)
            last = r["per_epoch"][-1]
            print(f"rep {rep} {impl:10s}: final {100 * last['top1']:.2f}% after {last['train_min']:.1f} min; to 90%: "
                  f"{time_to(r['per_epoch'], 0.90)} min, to 90.5%: {time_to(r['per_epoch'], 0.905)} min; "
                  f"per epoch {[round(100 * e['top1'], 2) for e in r['per_epoch']]}", flush=True)
    summary = {}
    for impl in ("airbench94", "cnnlab"):
        mine = [r for r in results if r["impl"] == impl]
        summary[impl] = {"final_top1": [r["per_epoch"][-1]["top1"] for r in mine],
                         **{f"min_to_{100 * t:g}": [time_to(r["per_epoch"], t) for r in mine] for t in THRESHOLDS}}

    def med(values: list) -> float | None:
        vals = [v for v in values if v is not None]
        return statistics.median(vals) if len(vals) == len(values) and vals else None

    a94, cl = med(summary["airbench94"]["min_to_90.5"]), med(summary["cnnlab"]["min_to_90.5"])
    out = {"summary": summary, "ratio_cnnlab_over_airbench94_time_to_90.5": cl / a94 if a94 and cl else None,
           "runs": results, "threads": a.threads, "allocator": SAME_ALLOCATOR, "limit": a.limit,
           "test_limit": a.test_limit, "load_average_end": os.getloadavg()}
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    if a.figure:
        print(f"figure: {race_figure(results, Path(a.figure).resolve())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="throughput mode: timed steps per run")
    ap.add_argument("--reps", type=int, default=3, help="alternating repetitions (steps mode)")
    ap.add_argument("--full", action="store_true", help="airbench94's complete training")
    ap.add_argument("--epochs", type=float, default=None, help="full mode: epochs instead of its 9.9 (smoke checks)")
    ap.add_argument("--limit", type=int, default=None, help="seeded subset of the training images (smoke checks)")
    ap.add_argument("--test-limit", type=int, default=None, help="seeded subset of the test images (smoke checks)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "2")))
    ap.add_argument("--airbench-tuned-malloc", action="store_true",
                    help="also time airbench94 with the glibc malloc setting cnnlab's trainer makes "
                         "(steps mode: a third configuration; full mode: instead of the plain one)")
    ap.add_argument("--race", action="store_true", help="time to accuracy of both, alternating (see above)")
    ap.add_argument("--race-only", choices=["airbench94", "cnnlab"], default=None,
                    help="race mode: run only this side (its ratio to the other then needs the other's run)")
    ap.add_argument("--cnnlab-epochs", type=int, default=12, help="race mode: epochs of cnnlab's recipe")
    ap.add_argument("--cnnlab-option", action="append", default=[],
                    help="steps and race modes: a named option of cnnlab's airbench recipe to switch on (repeatable)")
    ap.add_argument("--cnnlab-set", action="append", default=[], metavar="KEY=JSON",
                    help="steps and race modes: any TrainConfig value for cnnlab, e.g. batch_size=1024 (repeatable)")
    ap.add_argument("--figure", default=None, help="race mode: the per-epoch curves of every run, one PNG")
    ap.add_argument("--json", default=None, help="race mode: every run's figures as JSON")
    ap.add_argument("--figure-of", nargs="+", default=None, metavar="JSON",
                    help="draw --figure from the --json files of earlier races (e.g. one per --race-only side)")
    ap.add_argument("--worker", choices=["airbench94", "airbench94+malloc", "cnnlab", "race-airbench94",
                                         "race-cnnlab"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        _threads(a.threads)
        if a.worker == "race-airbench94":
            print(json.dumps(worker_race_airbench(a.epochs)))
        elif a.worker == "race-cnnlab":
            print(json.dumps(worker_race_cnnlab(a.cnnlab_epochs, a.cnnlab_option, a.cnnlab_set)))
        elif a.worker == "cnnlab":
            print(json.dumps(worker_cnnlab_steps(a.steps, a.cnnlab_option, a.cnnlab_set)))
        else:
            print(json.dumps(worker_airbench_steps(a.steps, tune_malloc=a.worker == "airbench94+malloc")))
        return
    if a.figure_of:
        if not a.figure:
            ap.error("--figure-of needs --figure OUT.png")
        runs = [r for f in a.figure_of for r in json.loads(Path(f).read_text())["runs"]]
        print(f"figure: {race_figure(runs, Path(a.figure).resolve())}")
        return
    if (bool(a.steps) + bool(a.full) + bool(a.race)) != 1:
        ap.error("choose one mode: --steps N, --full or --race")
    try:
        import airbench  # noqa: F401
    except ImportError:
        raise SystemExit("airbench is not installed: .venv/bin/pip install airbench==0.1.8 (the bench extra)") from None
    with tempfile.TemporaryDirectory(prefix="airbench94-") as tmp:
        workdir = prepare_data(Path(tmp), a.limit, a.test_limit)
        if a.steps:
            run_steps(a, workdir)
        elif a.race:
            run_race(a, workdir)
        else:
            run_full(a, workdir)


if __name__ == "__main__":
    main()
