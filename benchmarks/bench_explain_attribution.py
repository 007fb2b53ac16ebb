"""Integrated Gradients and Grad-CAM on EfficientNet-Lite0 at 224 px: cnnlab vs Captum, side by side.

Each measurement runs in a fresh worker process (so peak memory is that run's own): wall time of the
attribution, and the peak resident memory above the loaded model (sampled every 2 ms from /proc).
Both libraries get the same images, targets, steps, quadrature rule and interpolation batch size.
Order alternates between libraries on every repeat; medians are printed with cnnlab/Captum ratios.

    .venv/bin/python benchmarks/bench_explain_attribution.py --images 4 --steps 50 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRSS:
    """Samples this process's resident memory in a thread; .peak is the maximum seen."""

    def __enter__(self):
        self.base = _rss()
        self.peak = self.base
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, _rss())
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        self._stop = True
        self._t.join()
        self.peak = max(self.peak, _rss())


def worker(lib: str, method: str, n: int, steps: int, batch: int) -> dict:
    import torch
    torch.set_num_threads(2)
    import cnnlab
    from cnnlab import explain
    model = cnnlab.create_model("efficientnet_lite0", pretrained=True).eval()
    names = list(cnnlab.images.BUNDLED_PHOTOS)
    x = cnnlab.load_images([cnnlab.bundled_photo(names[i % len(names)]) for i in range(n)], model)
    with torch.no_grad():
        target = model(x).argmax(1)
    layer = list(model.layers())[-1]
    if lib == "cnnlab":
        run = {"ig": lambda: explain.attribute(model, x, target, method="ig", steps=steps, batch_size=batch,
                                               integration="gausslegendre").attributions,
               "gradcam": lambda: explain.attribute(model, x, target, method="gradcam", layer=layer).layer_maps}[method]
    else:
        from captum.attr import IntegratedGradients, LayerGradCam
        run = {"ig": lambda: IntegratedGradients(model).attribute(x, target=target, n_steps=steps,
                                                                  method="gausslegendre", internal_batch_size=batch),
               "gradcam": lambda: LayerGradCam(model, model.layer(layer)).attribute(
                   x, target=target, relu_attributions=True)[:, 0]}[method]
    with torch.no_grad():
        model(x[:1])  # warm up kernels for this shape
    with PeakRSS() as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        out = run()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_mb": (mem.peak - mem.base) / 2 ** 20,
            "checksum": float(out.detach().double().abs().sum())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=16, help="interpolation points per forward, both libraries")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="gradcam,ig")
    ap.add_argument("--worker", nargs=2, metavar=("LIB", "METHOD"))
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], a.worker[1], a.images, a.steps, a.batch)))
        return
    print(f"EfficientNet-Lite0, {a.images} images at 224 px, IG {a.steps} steps (Gauss-Legendre, {a.batch} points "
          f"per pass), Grad-CAM on the last feature layer; torch threads 2; load avg {os.getloadavg()[0]:.1f} "
          "(shared machine: timings are noisy)")
    for method in a.methods.split(","):
        res: dict[str, list[dict]] = {"cnnlab": [], "captum": []}
        for r in range(a.repeats):
            for lib in (["cnnlab", "captum"] if r % 2 == 0 else ["captum", "cnnlab"]):
                cmd = [sys.executable, __file__, "--worker", lib, method, "--images", str(a.images),
                       "--steps", str(a.steps), "--batch", str(a.batch)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
                res[lib].append(json.loads(out))
                print(f"  run {r + 1} {lib:7s} {method}: {res[lib][-1]['seconds']:.2f} s wall, "
                      f"{res[lib][-1]['cpu_seconds']:.2f} s cpu, {res[lib][-1]['peak_mb']:.0f} MB", flush=True)
        med = {lib: {k: statistics.median(v.get(k, float("nan")) for v in runs) for k in ("seconds", "cpu_seconds", "peak_mb")}
               for lib, runs in res.items()}
        agree = abs(res["cnnlab"][0]["checksum"] - res["captum"][0]["checksum"]) / abs(res["captum"][0]["checksum"])
        print(f"{method:8s} cnnlab {med['cnnlab']['seconds']:7.2f} s {med['cnnlab']['peak_mb']:7.0f} MB | "
              f"captum {med['captum']['seconds']:7.2f} s {med['captum']['peak_mb']:7.0f} MB | "
              f"speed x{med['captum']['seconds'] / med['cnnlab']['seconds']:.2f}, "
              f"memory x{med['cnnlab']['peak_mb'] / max(med['captum']['peak_mb'], 1e-9):.2f} of Captum's; "
              f"|sum| differs by {agree:.1e}")
        print(f"         CPU seconds (less sensitive to a busy machine): cnnlab {med['cnnlab']['cpu_seconds']:.2f}, "
              f"captum {med['captum']['cpu_seconds']:.2f}, ratio x{med['captum']['cpu_seconds'] / med['cnnlab']['cpu_seconds']:.2f}")
        print(f"         all runs (s): cnnlab {[round(v['seconds'], 2) for v in res['cnnlab']]}, "
              f"captum {[round(v['seconds'], 2) for v in res['captum']]}")


if __name__ == "__main__":
    main()
