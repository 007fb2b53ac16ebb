#!/usr/bin/env bash
# The device check for a machine with a GPU, in under 8 minutes: each result one line, in
# $OUT/device_check.txt when $OUT is set (else /tmp/device_check.txt), the whole log beside it.
#
#   1. the device tests:  pytest --device cuda -m device   (network placement, loaders, mixed precision,
#      checkpoints across devices, torch.compile, evaluation/attacks/attributions/extraction/explorer on it)
#   2. the airbench recipe to airbench94's final accuracy, airbench94 side by side on the same GPU
#      (benchmarks/bench_device_race.py)
#   3. ResNet-20 and EfficientNet-Lite0 inference and training throughput against a plain PyTorch AMP loop,
#      and PGD attack-eval throughput (benchmarks/bench_device_throughput.py)
#
# On the GPU machine, from a copy of the repo: its python3 already holds torch with CUDA; what its image
# lacks (a few wheels) and the test data come in .devbundle/ (make it here with benchmarks/device_bundle.sh
# and carry it). With ../shared/data beside the repo and the packages installed, nothing else is needed.
#
#   bash benchmarks/device_check.sh                       # DEVICE=cuda
#   DEVICE=cpu bash benchmarks/device_check.sh --dry-run  # here: every step on the CPU, on small sizes
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
RESULTS=${OUT:-/tmp}/device_check.txt
LOG=${OUT:-/tmp}/device_check.log
: >"$RESULTS"
: >"$LOG"
START=$SECONDS
line() { echo "$*" | tee -a "$RESULTS"; }

# -- environment: wheels the image lacks, the test data --------------------------------------------------
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .devbundle/wheels/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/cnnlab-site \
        .devbundle/wheels/*.whl >>"$LOG" 2>&1 && export PYTHONPATH="$PYTHONPATH:/tmp/cnnlab-site"
fi
if [ -z "${CNNLAB_SHARED:-}" ] && [ ! -d ../shared/data ] && [ -d .devbundle/data ]; then
    export CNNLAB_SHARED=/tmp/cnnlab-shared
    mkdir -p "$CNNLAB_SHARED/data"
    for f in .devbundle/data/*; do ln -sf "$PWD/$f" "$CNNLAB_SHARED/data/"; done
    "$PY" - "$CNNLAB_SHARED/data" >>"$LOG" 2>&1 <<'EOF'
import io, sys
import numpy as np
from PIL import Image
d = np.load(f"{sys.argv[1]}/cifar10_test_png.npz")
x = np.stack([np.asarray(Image.open(io.BytesIO(d["png"][a:b].tobytes())).convert("RGB"))
              for a, b in zip(d["offsets"][:-1], d["offsets"][1:])])
np.savez(f"{sys.argv[1]}/cifar10_test.npz", x=x, y=d["y"])
EOF
fi
export CNNLAB_DATA=${CNNLAB_DATA:-/tmp/cnnlab-datasets} PYTHONUNBUFFERED=1
"$PY" -c "import torch, cnnlab; from cnnlab.devices import describe_device, resolve_device; \
print(f'# device check on {describe_device(resolve_device(\"$DEVICE\"))}, torch {torch.__version__}, ' \
      f'cnnlab {cnnlab.__version__}')" 2>>"$LOG" | tee -a "$RESULTS" || { line "device $DEVICE unavailable"; exit 1; }

# -- 1. the device tests ----------------------------------------------------------------------------------
T=$SECONDS
MARK=device
[ $DRY = 1 ] && MARK="device and not slow"
PYTEST_ARGS=(-q -p no:cacheprovider --device "$DEVICE" -m "$MARK")
timeout 240 "$PY" -m pytest "${PYTEST_ARGS[@]}" tests >>"$LOG" 2>&1
rc=$?
summary=$(grep -E "[0-9]+ (passed|failed|error)" "$LOG" | tail -1)
line "device tests (pytest --device $DEVICE -m device): ${summary:-no summary, exit $rc} [exit $rc, $((SECONDS - T)) s]"

# -- 2. the airbench recipe against airbench94 on the same device ----------------------------------------------
T=$SECONDS
RACE=(--device "$DEVICE")
[ $DRY = 1 ] && RACE+=(--limit 2048 --test-limit 500 --epochs 1 --cnnlab-epochs 1)
timeout 240 "$PY" benchmarks/bench_device_race.py "${RACE[@]}" >>"$LOG" 2>&1
rc=$?
r=$(grep "^RESULT " "$LOG" | tail -1 | cut -c8-)
line "${r:-airbench race failed (exit $rc): see the log} [$((SECONDS - T)) s]"

# -- 3. throughput against a plain PyTorch AMP loop, and PGD attack-eval -------------------------------------
T=$SECONDS
THRU=(--device "$DEVICE" --json "${OUT:-/tmp}/device_throughput.json")
[ $DRY = 1 ] && THRU+=(--quick)
timeout 150 "$PY" benchmarks/bench_device_throughput.py "${THRU[@]}" >>"$LOG" 2>&1
rc=$?
n=$(grep -cE "^(resnet20|lite0|pgd)" "$LOG")
grep -E "^(resnet20|lite0|pgd)" "$LOG" >>"$RESULTS"
grep -E "^(resnet20|lite0|pgd)" "$LOG"
[ "$rc" = 0 ] || line "throughput benchmark stopped (exit $rc) after $n of 5 lines: see the log"
line "# total $((SECONDS - START)) s; log: $LOG"
