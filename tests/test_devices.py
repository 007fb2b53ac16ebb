"""Choosing a device and a float format: auto, $CNNLAB_DEVICE, torchrun's LOCAL_RANK, and one clear sentence
for every device or format this machine lacks (machines with GPUs played by a monkeypatched torch.cuda)."""
from __future__ import annotations

import pytest
import torch

from cnnlab.devices import (
    DEVICE_ENV,
    autocast,
    available_devices,
    grad_scaler,
    resolve_device,
    resolve_precision,
)
from cnnlab.errors import CnnlabError


@pytest.fixture()
def no_env(monkeypatch):
    """No $CNNLAB_DEVICE and no torchrun variables: `auto` chooses by the hardware."""
    for k in (DEVICE_ENV, "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)


def fake_gpus(monkeypatch, count: int, capability: tuple[int, int] = (9, 0), name: str = "NVIDIA H200") -> None:
    """This process sees `count` CUDA GPUs (0: none) of the given compute capability."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)


def no_mps(monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_prefers_cuda_then_mps_then_cpu(no_env, monkeypatch):
    no_mps(monkeypatch)
    fake_gpus(monkeypatch, 0)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device(None)
    fake_gpus(monkeypatch, 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and resolve_device("CUDA") == torch.device("cuda", 0)
    assert available_devices() == ["cpu", "cuda:0", "cuda:1"]
    monkeypatch.setenv(DEVICE_ENV, "cpu")  # a GPU machine told to stay on the CPU
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cuda:1").type == "cuda"


def test_torchrun_gives_each_process_the_gpu_of_its_local_rank(no_env, monkeypatch):
    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(CnnlabError, match=r"--device cuda:0 names one GPU, but torchrun started 2 processes"):
        resolve_device("cuda:0")
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(CnnlabError, match=r"LOCAL_RANK=2 on a node with 2 GPU\(s\).*--nproc-per-node 2"):
        resolve_device("cuda")


@pytest.mark.parametrize("spec, gpus, message", [
    ("cuda", 0, r"^--device cuda needs a CUDA GPU, and this machine has none usable by torch .*; available: cpu\.$"),
    ("cuda:3", 1, r"^--device cuda:3: this machine has 1 GPU\(s\), numbered 0\.\.0; available: cpu, cuda:0\.$"),
    ("mps", 1, r"^--device mps needs Apple's Metal backend .*; available: cpu, cuda:0\.$"),
    ("cuda:x", 1, r"^--device cuda:x is not a device; write cuda or cuda:N"),
    ("tpu", 0, r"^--device 'tpu' is unknown; choose one of auto, cpu, cuda, cuda:N, mps \(available here: cpu\)\.$"),
])
def test_a_device_this_machine_lacks_is_one_sentence(no_env, monkeypatch, spec, gpus, message):
    no_mps(monkeypatch)
    fake_gpus(monkeypatch, gpus)
    with pytest.raises(CnnlabError, match=message):
        resolve_device(spec)


def test_precision_defaults_and_what_each_device_offers(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == resolve_precision(None, cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16" and resolve_precision("float32", cpu) == "fp32"
    with pytest.raises(CnnlabError, match=r"^--precision fp16 needs a GPU \(CUDA or MPS\) and this run is on the CPU; "
                                          r"use fp32 \(the CPU's default\) or bf16\.$"):
        resolve_precision("fp16", cpu)
    with pytest.raises(CnnlabError, match=r"--precision 'fp8' is unknown; choose one of auto, fp32, bf16, fp16"):
        resolve_precision("fp8", cpu)
    gpu = torch.device("cuda", 0)
    fake_gpus(monkeypatch, 1, capability=(9, 0))
    assert resolve_precision("auto", gpu) == "bf16" and resolve_precision("fp16", gpu) == "fp16"
    fake_gpus(monkeypatch, 1, capability=(7, 5), name="Tesla T4")
    assert resolve_precision("auto", gpu) == "fp16"
    with pytest.raises(CnnlabError, match=r"this GPU \(Tesla T4\) does not compute in bf16; use fp16"):
        resolve_precision("bf16", gpu)
    assert resolve_precision("auto", torch.device("mps")) == "fp32"


@pytest.mark.device
def test_autocast_and_the_gradient_scaler_follow_the_precision(device):
    w = torch.randn(8, 8, device=device)
    x = torch.randn(4, 8, device=device)
    with autocast(device, "fp32"):
        assert (x @ w).dtype == torch.float32
    with autocast(device, "bf16"):
        assert (x @ w).dtype == torch.bfloat16
    off = grad_scaler(device, "bf16")  # disabled: every call passes through unchanged
    loss = (x @ w).sum()
    assert not off.is_enabled() and off.scale(loss) is loss
    if device.type == "cpu":
        return
    on = grad_scaler(device, "fp16")
    assert on.is_enabled() and float(on.scale(loss)) == pytest.approx(float(loss) * on.get_scale())
