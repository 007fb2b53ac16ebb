"""The same EfficientNet-Lite0 forward (1 image, 224 px, inference mode) timed from the main thread
and from a worker thread (where the explorer's requests run), in one process, interleaved.

On this shared 2-core machine under heavy load, torch's 2-thread OpenMP kernels called from the main
thread were measured far slower than from a worker thread; OMP_WAIT_POLICY=passive (set before
torch loads) removed the gap. Run it with and without that variable to see it:

    .venv/bin/python benchmarks/bench_serve_thread_kind.py
    OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/bench_serve_thread_kind.py
"""
from __future__ import annotations

import os
import statistics
import threading
import time

import torch

import cnnlab


def timed(fn, repeat: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main(repeat: int = 7, rounds: int = 3) -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = cnnlab.create_model("efficientnet_lite0", pretrained=True).eval()
    x = torch.rand(1, 3, 224, 224)

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    forward()
    main_ms, worker_ms = [], []
    for _ in range(rounds):  # interleave so both see the same background load
        main_ms += timed(forward, repeat)
        box: list[list[float]] = []
        t = threading.Thread(target=lambda: box.append(timed(forward, repeat)))
        t.start()
        t.join()
        worker_ms += box[0]
    m, w = statistics.median(main_ms), statistics.median(worker_ms)
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"main thread   median {m:8.1f} ms  (min {min(main_ms):.1f}, max {max(main_ms):.1f})")
    print(f"worker thread median {w:8.1f} ms  (min {min(worker_ms):.1f}, max {max(worker_ms):.1f})")
    print(f"main / worker: {m / w:.1f}x")


if __name__ == "__main__":
    main()
