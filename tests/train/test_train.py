"""`cnnlab.train` / `resume` and `cnnlab train` against what goes wrong around a run: a process killed in
its first epoch, two processes resuming one run, a data file swapped before resuming, a last.pt that is
not a resumable checkpoint, unreadable files in an image folder."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.train import resume
from tests.conftest import ROOT, corrupt_tiff_bytes, shared, wait_until


@pytest.fixture(scope="module")
def cifar_file(tmp_path_factory) -> Path:
    """1000 real CIFAR-10 test images as an .npz file (x uint8 NHWC, y)."""
    d = np.load(shared("cifar10_test.npz"))
    idx = np.random.default_rng(0).permutation(len(d["y"]))[:1000]
    path = tmp_path_factory.mktemp("train_data") / "cifar1000.npz"
    np.savez(path, x=d["x"][idx], y=d["y"][idx])
    return path


def cnnlab_process(*args: object, **popen: object) -> subprocess.Popen:
    """`python -m cnnlab ARGS` from this checkout, stderr captured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cnnlab", *map(str, args)], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def finish(p: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out + err


@pytest.mark.slow
def test_a_run_killed_in_its_first_epoch_can_be_resumed_or_started_over(cifar_file, tmp_path, capfd):
    """kill -9 during epoch 1 left a folder that neither --resume ('no checkpoint yet') nor a fresh train
    ('already holds a run') would take. Now the messages name both ways out, and both work."""
    run = tmp_path / "run"
    common = ["--model", "simple_cnn_gap", "--data", cifar_file, "--epochs", "1", "--batch-size", "50"]
    p = cnnlab_process("train", *common, "--out", run, "--workers", "0")
    # the training loop has started (its TensorBoard writers are made just before the first step): kill it there
    wait_until(lambda: p.poll() is None and any((run / "tb" / "train").glob("events.out.tfevents.*"))
               or p.poll() is not None, "the training loop")
    assert p.poll() is None, p.communicate()[1][-2000:]
    p.send_signal(signal.SIGKILL)
    p.wait(60)
    assert (run / "config.json").exists() and not (run / "checkpoints" / "last.pt").exists()
    (run / "notes.txt").write_text("my notes on this run")

    status, out = finish(cnnlab_process("train", *common, "--out", run))
    assert status == 1 and "stopped before its first checkpoint" in out
    assert f"--resume {run}" in out and "--force" in out and "Traceback" not in out

    resumed = resume(run, progress=False)  # in this process: the kill above is what had to be real
    assert "starting it again from its recorded config" in capfd.readouterr().err
    assert [r["epoch"] for r in resumed.metrics()] == [1]
    assert (run / "checkpoints" / "last.pt").exists() and resumed.final()["epochs"] == 1

    cnnlab.train("simple_cnn_gap", data=str(cifar_file), epochs=1, batch_size=50, limit=300, out=run, force=True,
                 progress=False)
    assert json.loads((run / "config.json").read_text())["config"]["limit"] == 300
    assert (run / "notes.txt").read_text() == "my notes on this run"  # --force never touches the user's files


@pytest.mark.slow
def test_two_resume_processes_cannot_both_write_a_run(cifar_file, tmp_path):
    run = tmp_path / "run"
    cnnlab.train("softmax_regression", data=str(cifar_file), epochs=3, out=run, batch_size=100, stop_after=1,
                 progress=False)
    first = cnnlab_process("train", "--resume", run, "--quiet")
    lock = run / ".lock"
    wait_until(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), "the first process's lock")
    first.send_signal(signal.SIGSTOP)  # hold it mid-run, the lock taken
    try:
        status, out = finish(cnnlab_process("train", "--resume", run, "--quiet"))
        assert status == 1 and f"being written by another cnnlab process (pid {first.pid})" in out, out
        assert len(out.strip().splitlines()) == 1 or "Traceback" not in out
    finally:
        first.send_signal(signal.SIGCONT)
    status, out = finish(first)
    assert status == 0, out
    assert [r["epoch"] for r in cnnlab.runs.Run.open(run).metrics()] == [1, 2, 3]


def test_resume_refuses_data_other_than_the_runs(cifar_file, tmp_path):
    data = tmp_path / "data.npz"
    data.write_bytes(cifar_file.read_bytes())
    run = cnnlab.train("softmax_regression", data=str(data), epochs=2, out=tmp_path / "run", batch_size=100,
                       stop_after=1, progress=False)
    recorded = run.config["data"]
    assert len(recorded["train"]["signature"]) == 16 and recorded["val"]["signature"]
    d = np.load(cifar_file)
    np.savez(data, x=d["x"][::-1].copy(), y=d["y"][::-1].copy())  # same images and labels, other order
    with pytest.raises(CnnlabError, match="not the data run .* was trained on .*signature"):
        resume(run.path, progress=False)
    np.savez(data, x=d["x"], y=d["y"])  # the original back: resumes
    assert [r["epoch"] for r in resume(run.path, progress=False).metrics()] == [1, 2]


def test_a_last_pt_that_cannot_continue_a_run_is_one_sentence(cifar_file, tmp_path):
    run = cnnlab.train("softmax_regression", data=str(cifar_file), epochs=2, out=tmp_path / "run", batch_size=100,
                       stop_after=1, progress=False)
    last = run.path / "checkpoints" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    torch.save(ckpt["state_dict"], last)  # a plain state dict
    with pytest.raises(CnnlabError, match="cannot continue the run: it lacks state_dict, optimizer"):
        resume(run.path, progress=False)
    torch.save({k: v for k, v in ckpt.items() if k != "loader"}, last)
    with pytest.raises(CnnlabError, match="cannot continue the run: it lacks loader"):
        resume(run.path, progress=False)
    torch.save({**ckpt, "loader": {"epoch": "one"}}, last)
    with pytest.raises(CnnlabError, match="lacks loader position"):
        resume(run.path, progress=False)


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """Two classes of 20 real CIFAR-10 photos each, as PNG files in class folders."""
    with np.load(shared("cifar10_test.npz")) as d:
        x, y = d["x"], d["y"]
    root = tmp_path / "photos"
    for c, name in ((3, "cat"), (5, "dog")):
        (root / name).mkdir(parents=True)
        for k, i in enumerate(np.flatnonzero(y == c)[:20]):
            Image.fromarray(x[i]).save(root / name / f"{k:02d}.png")
    return root


def test_training_skips_and_counts_an_unreadable_file_of_an_image_folder(photo_folder, tmp_path, capfd):
    (photo_folder / "cat" / "scan.tiff").write_bytes(corrupt_tiff_bytes())
    run = cnnlab.train("softmax_regression", data=str(photo_folder), epochs=2, out=tmp_path / "run", batch_size=8,
                       val_split=0.0, workers=0, progress=False)
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["skipped_images"] == 1 for r in rows)
    err = capfd.readouterr().err
    assert err.count("scan.tiff") == 1 and "skipping an unreadable file" in err  # warned once, not every epoch


def test_training_stops_in_one_sentence_when_too_many_files_fail(photo_folder, tmp_path):
    for k in range(9):  # 9 of 49 files (some held out): more than the 10% that are skipped
        (photo_folder / "dog" / f"broken{k}.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(CnnlabError, match=r"of the \d+ image files of .* could not be read, more than the 10% .*broken"):
        cnnlab.train("softmax_regression", data=str(photo_folder), epochs=1, out=tmp_path / "run", batch_size=7,
                     val_split=0.0, workers=0, progress=False)
