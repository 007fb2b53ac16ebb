"""`cnnlab scratch-check` end to end, and the fresh-process memory probe behind its memory ratio."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cnnlab.cli import main
from cnnlab.reference.memprobe import run_probe


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_scratch_check_json_reports_every_error_and_the_speed_ratios():
    r = run("scratch-check", "--batch-size", "8", "--repeats", "1", "--no-memory", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["passed"] is True and out["model"] == "simple_cnn"
    names = [row["name"] for row in out["rows"]]
    for part in ("conv forward", "conv dX", "conv dW", "conv db", "gradcheck", "model logits, float64",
                 "model dX", "model dW", "model db", "numpy forward vs torch (float32", "numpy forward vs torch (float64"):
        assert any(n.startswith(part) for n in names), (part, names)
    for row in out["rows"]:
        assert row["ok"] and row["max_abs_error"] <= row["tolerance"] * max(1.0, row["scale"]), row
    assert out["speed"]["step_ratio"] > 0 and out["speed"]["numpy_ratio"] > 0
    assert out["memory"] == {}


def test_scratch_check_table_and_errors():
    r = run("scratch-check", "--model", "cnn11", "--batch-size", "4", "--repeats", "1", "--no-memory")
    assert r.exit_code == 0, r.output
    assert "max |error|" in r.stdout and "ratio" in r.stdout and "all checks passed" in r.stdout
    r = run("scratch-check", "--model", "simple_cn")
    assert r.exit_code == 1 and "error: Unknown model 'simple_cn'" in r.output and "simple_cnn" in r.output


def test_memory_probe_measures_one_training_step_in_a_fresh_process():
    native = run_probe("native", "simple_cnn", 64)
    ours = run_probe("unfold", "simple_cnn", 64)
    assert native["exact_reset"] and native["step_peak"] > 4 * 2**20  # activations of 64 images are several MiB
    # the unfolded 64x27x1024 and 64x576x256 matrices (7 and 38 MiB) come on top, but not much more
    assert native["step_peak"] < ours["step_peak"] < 3 * native["step_peak"]
