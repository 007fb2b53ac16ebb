"""Peak memory of one training step, measured in a fresh process (python -m cnnlab.reference.memprobe).

tracemalloc does not see torch's allocations, and a process's peak RSS only grows, so each variant
runs alone: build the model and a batch, reset the peak (Linux: /proc/self/clear_refs), run one
forward+backward step, and report the peak resident memory above what was resident before the step.
"""
from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
from pathlib import Path


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Make VmHWM (the peak) equal to the current RSS, so the peak of what follows can be read."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(variant: str, model: str, batch: int, size: int, threads: int, chunk_bytes: int | None,
            channels_last: bool = False) -> dict:
    """Peak RSS (bytes) of one training step of `model` with native or unfold convolutions."""
    import torch
    import torch.nn.functional as F

    import cnnlab
    from cnnlab.models.layout import to_channels_last
    from cnnlab.reference import unfold_conv
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = cnnlab.create_model(model, device="cpu").train()
    if variant == "unfold":
        unfold_conv.convert_to_unfold(net.net)
        if chunk_bytes is not None:
            unfold_conv.CHUNK_BYTES = unfold_conv.NCHW_CHUNK_BYTES = chunk_bytes
    elif variant != "native":
        raise SystemExit(f"unknown variant {variant!r}")
    x, y = torch.rand(batch, 3, size, size), torch.randint(0, net.num_classes, (batch,))
    if channels_last:
        net = to_channels_last(net)
        x = x.contiguous(memory_format=torch.channels_last)
    gc.collect()
    exact = _reset_peak()
    before = _status_kib("VmRSS") or 0
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    peak = (_status_kib("VmHWM") if exact else None) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": variant, "model": model, "batch": batch, "rss_before": before * 1024,
            "peak_rss": peak * 1024, "step_peak": (peak - before) * 1024, "exact_reset": exact}


def run_probe(variant: str, model: str, batch: int, size: int = 32, threads: int = 2,
              chunk_bytes: int | None = None, channels_last: bool = False, timeout: float = 600) -> dict:
    """Run `measure` in a fresh Python process and return its result."""
    import subprocess
    cmd = [sys.executable, "-m", "cnnlab.reference.memprobe", variant, "--model", model, "--batch", str(batch),
           "--size", str(size), "--threads", str(threads)]
    if chunk_bytes is not None:
        cmd += ["--chunk-bytes", str(chunk_bytes)]
    if channels_last:
        cmd.append("--channels-last")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("variant", choices=["native", "unfold"])
    p.add_argument("--model", default="cifar_resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--chunk-bytes", type=int, default=None)
    p.add_argument("--channels-last", action="store_true")
    a = p.parse_args(argv)
    print(json.dumps(measure(a.variant, a.model, a.batch, a.size, a.threads, a.chunk_bytes, a.channels_last)))


if __name__ == "__main__":
    main()
