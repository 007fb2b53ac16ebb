"""Several processes under torchrun (gloo, on the CPU): training, evaluation, attack evaluation and feature
extraction agree with one process, on one node and with a multi-node rendezvous on localhost."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.distributed import DistContext, batch_items, gather_in_order, my_batches
from tests.conftest import shared

ROOT = Path(__file__).resolve().parents[1]
JOB = str(ROOT / "tests" / "sharded_job.py")
ARGS = ["train", "--model", "simple_cnn", "--epochs", "2", "--batch-size", "40", "--val-split", "0.2",
        "--optimizer", "sgd", "--lr", "0.01", "--augment", "crop2,flip", "--no-channels-last", "--quiet",
        "--device", "cpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _run(cmd: list[str], env: dict) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def test_batches_are_dealt_round_robin_and_gathered_in_order():
    ranks = [DistContext(r, 3) for r in range(3)]
    assert [list(my_batches(7, c)) for c in ranks] == [[0, 3, 6], [1, 4], [2, 5]]
    assert list(my_batches(7, DistContext())) == list(range(7))
    assert batch_items([1, 3], 4, 14) == [4, 5, 6, 7, 12, 13]
    assert gather_in_order([(2, "c"), (0, "a"), (1, "b")], DistContext()) == ["a", "b", "c"]


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
    data = str(shared("cifar10_train_first200_lossless.npz"))
    env = _env()
    _run([sys.executable, "-m", "cnnlab", *ARGS, "--data", data, "--out", str(tmp_path / "one")], env)
    _run([*_torchrun("--nproc-per-node", "2", "--master-port", str(_free_port())), "-m", "cnnlab", *ARGS,
          "--data", data, "--out", str(tmp_path / "two")], env)
    one = torch.load(tmp_path / "one/checkpoints/last.pt", weights_only=True)
    two = torch.load(tmp_path / "two/checkpoints/last.pt", weights_only=True)
    for k, v in one["state_dict"].items():  # same global batches, averaged gradients: same steps
        assert torch.allclose(v, two["state_dict"][k], atol=2e-5, rtol=1e-4), k
    assert abs(one["metrics"]["val_top1"] - two["metrics"]["val_top1"]) < 1e-9
    assert abs(one["metrics"]["train_loss"] - two["metrics"]["train_loss"]) < 1e-4
    assert two["loader"] == one["loader"]
    # rank 0 alone wrote the run directory
    assert len(Path(tmp_path / "two/metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((tmp_path / "two/config.json").read_text())["world_size"] == 2


def _same_results(a: Path, b: Path) -> None:
    ra, rb = json.loads((a / "result.json").read_text()), json.loads((b / "result.json").read_text())
    assert ra.pop("world_size") == 1 and rb.pop("world_size") > 1
    assert ra == rb  # evaluation metrics, attack results per eps, feature order: exactly equal
    assert np.array_equal(np.load(a / "features.npy"), np.load(b / "features.npy"))


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The sharded job's results from one process."""
    shared("cifar10_train_first200_lossless.npz")
    out = tmp_path_factory.mktemp("alone")
    _run([sys.executable, JOB, str(out), "cpu"], _env())
    return out


@pytest.mark.slow
def test_two_processes_evaluate_attack_and_extract_exactly_like_one(alone, tmp_path):
    _run([*_torchrun("--nproc-per-node", "2", "--master-port", str(_free_port())), JOB, str(tmp_path), "cpu"],
         _env())
    _same_results(alone, tmp_path)


@pytest.mark.slow
def test_multi_node_rendezvous_on_localhost(alone, tmp_path):
    """The README's multi-node recipe with two 'nodes' of one process each on this machine."""
    endpoint = f"127.0.0.1:{_free_port()}"
    cmd = _torchrun("--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
                    "--rdzv-id", "cnnlab-test", JOB, str(tmp_path), "cpu")
    nodes = [subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in nodes:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
    _same_results(alone, tmp_path)
