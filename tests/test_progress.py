"""cnnlab.progress: the estimate of the time left on a fake clock, plain lines off a terminal (never a
carriage return), silence under quiet, and the CLI's -q on every command."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.progress import Progress, format_seconds, is_quiet, progress, set_quiet

ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_eta_leaves_out_a_slow_first_step():
    """A 100-step job whose first step pays 20 s of one-time work and whose steps then take 0.1 s: the
    estimate after ten steps is the 9 s that are left (counting the first step in would say ~3 min)."""
    clock = FakeClock()
    bar = Progress(100, "job", enabled=False, clock=clock)
    assert bar.eta() is None
    clock.t = 20.0
    bar.update(1)
    assert bar.eta() is None  # one update says nothing about the rate
    for _ in range(9):
        clock.t += 0.1
        bar.update(1)
    assert bar.eta() == pytest.approx(90 * 0.1)
    truth = 90 * 0.1
    assert truth / 2 <= bar.eta() <= 2 * truth


def test_eta_counts_pauses_between_updates_such_as_validation():
    """Training: 10 steps of 1 s, then 5 s of validation, per epoch; the estimate for the whole run
    after the first epoch includes the validation share, within 2x of the truth."""
    clock = FakeClock()
    bar = Progress(30, "training", "step", enabled=False, clock=clock)
    for _epoch in range(1):
        for _ in range(10):
            clock.t += 1.0
            bar.update(1)
        clock.t += 5.0
    truth = 2 * (10 * 1.0 + 5.0)  # two epochs left
    assert truth / 2 <= bar.eta() <= 2 * truth
    bar.drop(10)  # the job ends one epoch early
    assert bar.total == 20 and bar.eta() < truth


def test_off_a_terminal_plain_lines_every_interval_and_no_carriage_return():
    clock, out = FakeClock(), io.StringIO()
    with Progress(50, "eval", "img", clock=clock, file=out, interval=10.0) as bar:
        assert bar.mode == "lines"
        for _ in range(50):
            clock.t += 1.0
            bar.update(1, loss=0.5)
        bar.write("epoch 1  loss 0.5")
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 5 + 1 + 1  # one every 10 s (at 10, 20, ... 50 s), the written line, the last line
    assert lines[0].startswith("eval: 10/50 img (20%)") and "loss 0.5" in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("eval: 50 img in 50 s")


def test_short_jobs_print_nothing_off_a_terminal():
    out = io.StringIO()
    for _ in progress(range(3), desc="quick", file=out):
        pass
    assert out.getvalue() == ""


def test_quiet_silences_everything(monkeypatch):
    clock, out = FakeClock(), io.StringIO()
    set_quiet(True)
    try:
        assert is_quiet()
        with Progress(5, "job", clock=clock, file=out, interval=0.0) as bar:
            for _ in range(5):
                clock.t += 100
                bar.update(1)
            bar.write("epoch line")
        assert bar.mode == "off" and out.getvalue() == ""
    finally:
        set_quiet(False)
    monkeypatch.setenv("CNNLAB_QUIET", "1")
    assert is_quiet()


def test_iterating_counts_every_item():
    items = list(progress(iter(range(7)), desc="x", enabled=False))
    assert items == list(range(7))


def test_format_seconds():
    assert format_seconds(42) == "42 s" and format_seconds(210) == "3.5 min" and format_seconds(7200) == "2.0 h"


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(ROOT), "CNNLAB_PROGRESS_INTERVAL": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, timeout=300,
                          env=e, cwd=ROOT)


@pytest.mark.slow
def test_piped_progress_is_plain_lines_and_dash_q_silences_it(tmp_path):
    """`cnnlab dream` with its output piped: progress lines with the time left, no '\\r'; with -q (before or
    after the command name) nothing on stderr but the result."""
    from tests.conftest import shared
    weights = str(shared("weights/akamaster_cifar10_resnet20-12fca82f.th"))
    args = ["dream", "--model", "cifar_resnet20", "--weights", weights, "--steps", "6", "--objective", "layer3:3"]
    r = _cli(*args, "--out", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "\r" not in r.stdout
    assert "optimizing" in r.stderr and "left" in r.stderr
    for quiet in (["-q", *args], [*args, "--quiet"]):
        out = tmp_path / f"q{len(list(tmp_path.iterdir()))}"
        r = _cli(*quiet, "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert "optimizing" not in r.stderr and "\r" not in r.stderr
