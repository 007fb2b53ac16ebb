"""Ablation of the airbench recipe's named options: time to 90.5% CIFAR-10 with and without each one.

For every option in cnnlab.models.airbench.OPTIONS the recipe runs once as shipped (the baseline) and
once with that option toggled (switched on when the recipe leaves it off, off when the recipe uses
it), each in a fresh process through benchmarks/bench_train_time_to_accuracy.py (the same data, test
set, epochs and seed), alternating baseline and variants so that a change of load hits both. Prints, and
writes as Markdown to --md, a table of the training minutes at which test top-1 (EMA weights, the recipe's
TTA) first reached 90% and 90.5%, the epochs that took, and the final accuracy.

    # the full ablation (a quiet machine; 40-60 min per run on a 2-core CPU, 1 run per option + baselines):
    nice -n 5 .venv/bin/python benchmarks/bench_train_recipe_ablation.py --out /tmp/ablation \\
        --md /tmp/ablation/table.md
    # some options only:
    .venv/bin/python benchmarks/bench_train_recipe_ablation.py --options muon,hard_half --out /tmp/abl2
    # smoke check (not a result):
    .venv/bin/python benchmarks/bench_train_recipe_ablation.py --options altflip --epochs 1 --limit 2000 \\
        --test-limit 500 --widths 16,32,32 --out /tmp/abl-smoke

    # another baseline: the recipe with --base's options added (here airbench94's triangle schedule):
    .venv/bin/python benchmarks/bench_train_recipe_ablation.py --base record_schedule --options muon --out /tmp/b

Turning an option off sets its keys back to airbench94's values (cnnlab.models.airbench.HYP), or to
TrainConfig's defaults where HYP has none (tta -> none); the options still on then apply.
A variant that changes nothing (batch_1024 left out while hard_half also sets batch 1024) is skipped.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from bench_train_vs_airbench94 import cnnlab_options

HERE = Path(__file__).resolve().parent


def toggled(name: str, base: list[str]) -> dict:
    """The TrainConfig values (on top of the shipped recipe) of the baseline `base` with option `name` flipped:
    added when neither the recipe nor `base` has it on, else taken out."""
    from cnnlab.models.airbench import HYP, OPTIONS, OPTIONS_ON, option_values
    from cnnlab.train import TrainConfig
    if name not in OPTIONS_ON and name not in base:
        return option_values([*base, name])
    # taken out: each of its values goes back to the recipe's own (HYP), or to TrainConfig's default where the
    # option is what the recipe sets (tta); then the options still on apply
    hyp = {**HYP["opt"], **HYP["aug"], **HYP["tta"]}
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    values = {}
    for k, v in OPTIONS[name].items():
        if k in hyp and hyp[k] != v:
            values[k] = hyp[k]
        else:
            f = fields[k]
            values[k] = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    on = [n for n in OPTIONS_ON if n != name] + [n for n in base if n != name]
    return {**values, **option_values(on)}


def run_one(label: str, sets: dict, a: argparse.Namespace) -> dict:
    out = Path(a.out) / label.replace(" ", "_")
    cmd = [sys.executable, str(HERE / "bench_train_time_to_accuracy.py"), "--epochs", str(a.epochs),
           "--out", str(out), "--json-out", str(out) + ".json", "--widths", a.widths, "--seed", str(a.seed)]
    if a.limit:
        cmd += ["--limit", str(a.limit)]
    if a.test_limit:
        cmd += ["--test-limit", str(a.test_limit)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={json.dumps(v)}"]
    print(f"# {label}: {' '.join(cmd[1:])}", flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{label} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    r = json.loads(Path(str(out) + ".json").read_text())
    r["label"] = label
    return r


def _cell(hit: dict | None) -> str:
    return "not reached" if hit is None else f"{hit['train_min']:.1f} min (epoch {hit['epoch']})"


def table(rows: list[dict]) -> str:
    lines = ["| run | changes | to 90% | to 90.5% | final top-1 | training min | img/s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ips = sorted(e["img_per_s"] for e in r["per_epoch"])[len(r["per_epoch"]) // 2]
        lines.append(f"| {r['label']} | {r.get('changes', '')} | {_cell(r['hits'].get('90%'))} | "
                     f"{_cell(r['hits'].get('90.5%'))} | {100 * r['final_top1']:.2f}% | {r['train_min']:.1f} | "
                     f"{ips:.0f} |")
    return "\n".join(lines)


def main() -> None:
    from cnnlab.models.airbench import OPTIONS, OPTIONS_ON, RECIPE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--options", default=",".join(OPTIONS), help="comma-separated names (default: all)")
    ap.add_argument("--epochs", type=int, default=12, help="the recipe's")
    ap.add_argument("--limit", type=int, default=None, help="seeded training subset (smoke checks)")
    ap.add_argument("--test-limit", type=int, default=None, help="seeded test subset (smoke checks)")
    ap.add_argument("--widths", default="64,256,256")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base", default="", help="comma-separated options on in the baseline (leave-one-out)")
    ap.add_argument("--baseline-every", type=int, default=2,
                    help="a baseline run before every N variants (0: one baseline, first; for a quiet machine)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--md", default=None, help="write the table here as Markdown")
    a = ap.parse_args()
    names = [n.strip() for n in a.options.split(",") if n.strip()]
    base = [n.strip() for n in a.base.split(",") if n.strip()]
    cnnlab_options(names + base, [])  # an unknown name stops here, before the first run
    Path(a.out).mkdir(parents=True, exist_ok=True)
    print(f"# load average at start: {os.getloadavg()}", flush=True)
    rows = []
    for i, name in enumerate(names):
        every = a.baseline_every or len(names)
        if i % every == 0:  # a baseline between every few variants: a change of load shows in the baselines
            r = run_one(f"baseline-{i // every + 1}", cnnlab_options(base, []), a)
            r["changes"] = "the recipe as shipped" + (f", with {', '.join(base)}" if base else "")
            rows.append(r)
        sets = toggled(name, base)
        label = ("without " if name in base or name in OPTIONS_ON else "with ") + name
        baseline = {**RECIPE, **cnnlab_options(base, [])}
        changed = {k: v for k, v in sets.items() if baseline.get(k, "unset") != v}
        if not changed:
            print(f"# {label}: changes nothing here, skipped", flush=True)
            continue
        r = run_one(label, sets, a)
        r["changes"] = ", ".join(f"{k}={json.dumps(v)}" for k, v in changed.items())
        rows.append(r)
    text = table(rows)
    print(text)
    print(f"# load average at end: {os.getloadavg()}")
    if a.md:
        Path(a.md).write_text(text + "\n")


if __name__ == "__main__":
    main()
