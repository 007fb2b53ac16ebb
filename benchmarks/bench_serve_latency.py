"""Latency of each explorer endpoint over real HTTP (warm server, bundled EfficientNet-Lite0, the
chelsea photo), side by side with the same computation called directly in Python from a worker
thread (the server's overhead: upload, decoding, PNG encoding, JSON). Medians of several requests.

    .venv/bin/python benchmarks/bench_serve_latency.py [--repeat 7] [--out benchmarks/results/report.md]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import urllib.request
import uuid
from pathlib import Path

import torch

import cnnlab
from cnnlab.serve import start_server


def post(url: str, fields: dict, files: dict | None = None) -> dict:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    for k, (name, data) in (files or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    req = urllib.request.Request(url, data=b"".join(parts) + f"--{boundary}--\r\n".encode(), method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "X-Cnnlab": "1"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def median_ms(fn, repeat: int) -> tuple[float, float, float]:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times), max(times)


def in_thread(fn):  # noqa: ANN001, ANN201
    """Run fn in a worker thread, as the server runs requests. On this loaded 2-core machine torch's
    2-thread OpenMP kernels called from the *main* thread were measured 10-40x slower than the same
    calls from a worker thread (EfficientNet-Lite0 forward: ~1-4 s vs ~27 ms at load average 10), so
    direct calls are timed in a thread too, for a like-for-like comparison."""
    import threading
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", default=None, help="append a markdown table to this file")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = cnnlab.create_model("efficientnet_lite0", pretrained=True)
    photo = cnnlab.bundled_photo("chelsea")
    data = photo.read_bytes()
    from PIL import Image
    w, h = Image.open(photo).size
    import io
    buf = io.BytesIO()  # a phone-sized photo: 12 MP JPEG (decoded with JPEG draft mode by the server)
    Image.open(photo).convert("RGB").resize((4032, 3024), Image.BICUBIC).save(buf, format="JPEG", quality=90)
    big = buf.getvalue()
    srv = start_server(model, port=0)
    base = srv.url
    load_before = os.getloadavg()
    try:
        t0 = time.perf_counter()
        first = post(base + "api/predict", {}, {"image": ("chelsea.png", data)})
        first_ms = (time.perf_counter() - t0) * 1000
        iid = first["image_id"]
        x = cnnlab.load_images(photo, model)
        from cnnlab import attacks, explain
        cases = [
            # name, HTTP call, direct library call (None: no direct equivalent)
            ("GET /api/model", lambda: get(base + "api/model"), None),
            ("GET /api/classes?q=cat", lambda: get(base + "api/classes?q=cat"), None),
            (f"POST /api/predict (upload {len(data) // 1000} KB PNG, {w}x{h})", lambda: post(base + "api/predict", {}, {"image": ("c.png", data)}),
             lambda: model.predict(cnnlab.load_images(photo, model), k=5)),
            (f"POST /api/predict (upload {len(big) / 1e6:.1f} MB JPEG, 4032x3024)",
             lambda: post(base + "api/predict", {}, {"image": ("big.jpg", big)}),
             lambda: model.predict(cnnlab.load_images(big, model), k=5)),
            ("POST /api/predict (bundled photo)", lambda: post(base + "api/predict", {"photo": "chelsea"}),
             lambda: model.predict(cnnlab.load_images(photo, model), k=5)),
            ("POST /api/explain gradient", lambda: post(base + "api/explain", {"image_id": iid, "method": "gradient"}),
             lambda: explain.attribute(model, x, method="gradient")),
            ("POST /api/explain gradcam", lambda: post(base + "api/explain", {"image_id": iid, "method": "gradcam"}),
             lambda: explain.attribute(model, x, method="gradcam")),
            ("POST /api/explain guided", lambda: post(base + "api/explain", {"image_id": iid, "method": "guided"}),
             lambda: explain.attribute(model, x, method="guided")),
            ("POST /api/explain smoothgrad (12 samples)", lambda: post(base + "api/explain", {"image_id": iid, "method": "smoothgrad"}),
             lambda: explain.attribute(model, x, method="smoothgrad", samples=12)),
            ("POST /api/explain ig (24 steps)", lambda: post(base + "api/explain", {"image_id": iid, "method": "ig"}),
             lambda: explain.attribute(model, x, method="ig", steps=24)),
            ("POST /api/featmaps middle, 16 maps", lambda: post(base + "api/featmaps", {"image_id": iid, "layer": "middle", "k": "16"}), None),
            ("POST /api/attack fgsm 4/255", lambda: post(base + "api/attack", {"image_id": iid, "method": "fgsm", "eps": "4/255"}),
             lambda: attacks.fgsm(model, x, eps=4 / 255)),
            ("POST /api/attack pgd 4/255, 10 steps", lambda: post(base + "api/attack", {"image_id": iid, "method": "pgd", "eps": "4/255", "steps": "10"}),
             lambda: attacks.pgd(model, x, eps=4 / 255, steps=10)),
        ]
        rows = []
        for name, http, direct in cases:
            http()  # warm
            h = median_ms(http, args.repeat)
            d = None
            if direct is not None:
                d = in_thread(lambda: (direct(), median_ms(direct, args.repeat))[1])
            rows.append((name, h, d))
            extra = f"   direct {d[0]:8.1f} ms   overhead x{h[0] / d[0]:.2f}" if d else ""
            print(f"{name:48s} http {h[0]:8.1f} ms (min {h[1]:.1f}, max {h[2]:.1f}){extra}", flush=True)
    finally:
        srv.stop()
    load_after = os.getloadavg()
    print(f"first (cold) upload prediction after start-up warm-up: {first_ms:.0f} ms")
    print(f"load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} on {os.cpu_count()} cores")
    if args.out:
        lines = [f"\n### Explorer endpoint latency ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n",
                 f"Command: `.venv/bin/python benchmarks/bench_serve_latency.py --repeat {args.repeat} --out {args.out}`  ",
                 f"EfficientNet-Lite0 (bundled), chelsea photo, torch {torch.__version__}, {torch.get_num_threads()} threads; "
                 f"medians of {args.repeat} requests over HTTP on loopback (werkzeug threaded server). "
                 f"Shared, noisy machine: load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, on "
                 f"{os.cpu_count()} cores. First upload prediction (server warmed up at start): {first_ms:.0f} ms.\n",
                 "| endpoint | HTTP median ms (min–max) | same call in Python, median ms | HTTP / direct |",
                 "| --- | ---: | ---: | ---: |"]
        for name, h, d in rows:
            lines.append(f"| {name} | {h[0]:.0f} ({h[1]:.0f}–{h[2]:.0f}) | {f'{d[0]:.0f}' if d else '—'} | "
                         f"{f'{h[0] / d[0]:.2f}' if d else '—'} |")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
