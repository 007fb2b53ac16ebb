"""Linear-probe figures on the 370 real Oxford-IIIT Pets photos of ../shared/data (37 breeds, 7 train + 3
test per breed): EfficientNet-Lite0 penultimate features (L2-normalized) with logistic regression and
a linear SVM, both with C chosen by 5-fold CV on the training part, against a raw-pixel baseline
(32x32 thumbnails, L2-normalized) with the same probe. Also times the logistic-regression CV with
scikit-learn's BLAS limited to one thread (what cnnlab does) and unlimited, side by side.

    .venv/bin/python benchmarks/bench_transfer_pets_probe.py
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def main() -> None:
    torch.set_num_threads(2)
    import cnnlab
    from cnnlab.images import Preprocessing
    from cnnlab.transfer import extract_features, linear_probe, probe_split
    from cnnlab.transfer.probe import LOGREG_CS, _cross_validate
    split = probe_split(SHARED / "oxford_pets_subset.npz")
    model = cnnlab.create_model("efficientnet_lite0", pretrained=True)
    print("machine shared with other engineers (noisy); 2 torch threads", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        tr = extract_features(model, split.train, cache_dir=cache)
        te = extract_features(model, split.test, cache_dir=cache)
        t1 = time.perf_counter()
        extract_features(model, split.train, cache_dir=cache)
        extract_features(model, split.test, cache_dir=cache)
        t2 = time.perf_counter()
    print(f"features: 370 photos in {t1 - t0:.1f} s ({370 / (t1 - t0):.1f} img/s); again from the cache in "
          f"{t2 - t1:.2f} s", flush=True)
    print(f"\n{'probe':<34}{'accuracy':>10}{'mean/class':>12}{'C':>10}{'seconds':>9}")
    for clf in ("logreg", "svm"):
        r = linear_probe(tr, te, clf)
        print(f"{'Lite0 features + ' + clf:<34}{100 * r.top1:9.1f}%{100 * r.mean_class_accuracy:11.1f}%"
              f"{r.C:10.3g}{r.seconds:9.1f}", flush=True)
    pre = Preprocessing((32, 32), resize=32)
    pix = [torch.nn.functional.normalize(
        cnnlab.load_images([p.file(i) for i in range(len(p))], pre).flatten(1), dim=1).numpy()
        for p in (split.train, split.test)]
    for clf in ("logreg", "svm"):
        r = linear_probe((pix[0], split.train.y), (pix[1], split.test.y), clf, classes=split.classes)
        print(f"{'32x32 pixels + ' + clf:<34}{100 * r.top1:9.1f}%{100 * r.mean_class_accuracy:11.1f}%"
              f"{r.C:10.3g}{r.seconds:9.1f}", flush=True)
    print(f"chance: {100 / 37:.1f}%")

    import scipy.optimize  # noqa: F401  (load scipy's own BLAS before limiting it)
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits
    x, y = tr.features.numpy().astype(np.float64), tr.labels
    times = {"1 BLAS thread": [], "default BLAS threads": []}
    for _ in range(2):
        for label in times:
            t = time.perf_counter()
            if label == "1 BLAS thread":
                with threadpool_limits(limits=1, user_api="blas"):
                    _cross_validate("logreg", x, y, list(LOGREG_CS), 5, 0)
            else:
                _cross_validate("logreg", x, y, list(LOGREG_CS), 5, 0)
            times[label].append(time.perf_counter() - t)
    one, default = np.median(times["1 BLAS thread"]), np.median(times["default BLAS threads"])
    print(f"\nlogreg 5-fold CV over {len(LOGREG_CS)} C values (259 x 1280, 37 classes): "
          f"1 BLAS thread {one:.1f} s, default threads {default:.1f} s, ratio {default / one:.1f}x")


if __name__ == "__main__":
    main()
