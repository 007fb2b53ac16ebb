"""Data-parallel training: 2 CPU processes under torchrun (gloo) agree with one process."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import shared

ARGS = ["train", "--model", "simple_cnn", "--epochs", "2", "--batch-size", "40", "--val-split", "0.2",
        "--optimizer", "sgd", "--lr", "0.01", "--augment", "crop2,flip", "--no-channels-last", "--quiet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], env: dict) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_agree_with_one(tmp_path):
    data = str(shared("cifar10_train_first200_lossless.npz"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CNNLAB_DDP_BACKEND": "gloo"}
    env.pop("WORLD_SIZE", None)
    _run([sys.executable, "-m", "cnnlab", *ARGS, "--data", data, "--out", str(tmp_path / "one")], env)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port())]
    _run([*torchrun, "-m", "cnnlab", *ARGS, "--data", data, "--out", str(tmp_path / "two")], env)
    one = torch.load(tmp_path / "one/checkpoints/last.pt", weights_only=True)
    two = torch.load(tmp_path / "two/checkpoints/last.pt", weights_only=True)
    for k, v in one["state_dict"].items():  # same global batches, averaged gradients: same steps
        assert torch.allclose(v, two["state_dict"][k], atol=2e-5, rtol=1e-4), k
    assert abs(one["metrics"]["val_top1"] - two["metrics"]["val_top1"]) < 1e-9
    assert abs(one["metrics"]["train_loss"] - two["metrics"]["train_loss"]) < 1e-4
    assert two["loader"] == one["loader"]
    # rank 0 alone wrote the run directory
    assert len(Path(tmp_path / "two/metrics.jsonl").read_text().splitlines()) == 2
