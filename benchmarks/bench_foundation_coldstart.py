"""Cold start: whole-process wall time of `cnnlab predict PHOTO` against `python -c "import torch"`,
interleaved in one run, several repeats, medians. The target is at most 1.0 s above the torch floor.
Also prints the slowest imports of the predict path (`python -X importtime`) and checks that no
heavy library (torchvision, matplotlib, sklearn, tensorboard, skimage) is imported.

    .venv/bin/python benchmarks/bench_foundation_coldstart.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
HEAVY = ("torchvision", "matplotlib", "sklearn", "tensorboard", "skimage", "scipy", "pandas")


def wall(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import cnnlab
    photo = str(cnnlab.bundled_photo("chelsea"))
    commands = {
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "cnnlab predict chelsea.png": [str(BIN / "cnnlab"), "predict", photo],
        "cnnlab --help": [str(BIN / "cnnlab"), "--help"],
        "cnnlab predict, OpenMP spinning": [str(BIN / "cnnlab"), "predict", photo],
    }
    # the last variant: libgomp's default wait policy (an empty value is ignored by libgomp, and the
    # `cnnlab` command only fills in PASSIVE when the variable is unset)
    envs = {"cnnlab predict, OpenMP spinning": {"OMP_WAIT_POLICY": ""}}
    for name, cmd in commands.items():  # warm the page cache once
        wall(cmd, envs.get(name))
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(args.repeats):
        for name, cmd in commands.items():
            times[name].append(wall(cmd, envs.get(name)))
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = med["python -c 'import torch'"]
    print(f"median of {args.repeats} interleaved runs (shared 2-core machine, load {os.getloadavg()[0]:.1f}):")
    for k, v in med.items():
        spread = f"[{min(times[k]):.2f}..{max(times[k]):.2f}]"
        print(f"  {k:<33} {v:6.2f} s {spread:<16} {v - floor:+.2f} s vs the torch-import floor")

    out = subprocess.run([sys.executable, "-X", "importtime", "-c",
                          f"from cnnlab.cli import main; main(['predict', {photo!r}])"],
                         capture_output=True, text=True)
    rows = []
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m and len(m.group(3)) <= 2:  # top-level imports only
            rows.append((int(m.group(2)), m.group(4)))
    print("slowest top-level imports on the predict path (cumulative):")
    for us, name in sorted(rows, reverse=True)[:8]:
        print(f"  {us / 1e6:6.3f} s  {name}")
    names = {name.split(".")[0] for _, name in rows} | {
        m.group(1).split(".")[0] for m in re.finditer(r"\|\s+(\S+)$", out.stderr, re.M)}
    print("heavy libraries imported:", sorted(set(HEAVY) & names) or "none")


if __name__ == "__main__":
    main()
