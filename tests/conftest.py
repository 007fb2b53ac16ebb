"""Shared fixtures: real data from ../shared/data (beside the clone) and small real models.

`pytest --device cuda` (or cuda:N, mps) runs the suite with the networks on that device: the model
fixtures are built there, the `device` fixture names it, and every `auto` in cnnlab means it
($CNNLAB_DEVICE is set for the session, subprocesses included). The default is the CPU, also on a GPU
machine. `-m device` selects the tests that exercise device placement (benchmarks/device_check.sh).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: see cnnlab/__init__.py

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CNNLAB_SHARED", ROOT.parent / "shared")) / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


def corrupt_tiff_bytes() -> bytes:
    """A real TIFF whose second page has no dimensions: Pillow raises TypeError ('Missing dimensions'),
    not OSError, when it counts the pages."""
    import io
    import struct

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="TIFF")
    d = bytearray(buf.getvalue())
    ifd = struct.unpack("<I", d[4:8])[0]
    n = struct.unpack("<H", d[ifd:ifd + 2])[0]
    nxt = ifd + 2 + 12 * n  # where the first page says the next one starts
    d[nxt:nxt + 4] = struct.pack("<I", len(d))
    d += struct.pack("<H", 1) + struct.pack("<HHII", 0x9999, 3, 1, 0) + struct.pack("<I", 0)
    return bytes(d)


def child_peak_rss_mb(code: str, timeout: float = 600) -> tuple[int, str, float]:
    """Run Python `code` in a fresh process (this checkout first on its path) and return its exit status,
    its output (stdout + stderr) and its peak resident memory in MB, measured by the child itself: VmHWM of
    its own address space where Linux has it, since ru_maxrss keeps the peak of the forking pytest process."""
    import subprocess
    import sys
    probe = ("import atexit, resource, sys\n"
             "def _peak():\n"
             "    try:\n"
             "        return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
             "    except (OSError, StopIteration):\n"
             "        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "atexit.register(lambda: print(f'PEAK_RSS_KB={_peak()}', file=sys.stderr))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", probe + code], check=False, capture_output=True, text=True,
                       timeout=timeout, env=env, cwd=ROOT)
    out = p.stdout + p.stderr
    peak = [line for line in out.splitlines() if line.startswith("PEAK_RSS_KB=")]
    assert peak, f"the child printed no peak memory (exit {p.returncode}): {out[-2000:]}"
    return p.returncode, out, int(peak[-1].split("=")[1]) / 1024


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="Run the networks on this device: cpu (default), cuda, "
                                                     "cuda:N or mps.")


def pytest_configure(config: pytest.Config) -> None:
    from cnnlab.devices import DEVICE_ENV, resolve_device
    from cnnlab.errors import CnnlabError
    try:
        device = resolve_device(config.getoption("--device"))
    except CnnlabError as e:
        raise pytest.UsageError(str(e)) from None
    os.environ[DEVICE_ENV] = str(device)  # every 'auto' of the session, in this process and its subprocesses


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> torch.device:
    """The device the networks of this session run on (`pytest --device ...`, default cpu)."""
    from cnnlab.devices import resolve_device
    return resolve_device(pytestconfig.getoption("--device"))


def shared(name: str) -> Path:
    """A file in ../shared/data; the tests that need it skip with a clear reason when it is absent."""
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} is not available (the real test data lives in ../shared/data)")
    return path


@pytest.fixture(scope="session")
def lite0(device):
    """The bundled ImageNet EfficientNet-Lite0 (offline), on the session's device."""
    import cnnlab
    return cnnlab.create_model("efficientnet_lite0", pretrained=True, device=device)


@pytest.fixture(scope="session")
def resnet20(device):
    """The real pretrained CIFAR-10 ResNet-20 (akamaster checkpoint in ../shared/data/weights), on the
    session's device."""
    import cnnlab
    return cnnlab.create_model("cifar_resnet20", weights=shared("weights/akamaster_cifar10_resnet20-12fca82f.th"),
                               device=device)


@pytest.fixture(scope="session")
def cifar_test_small():
    """A shuffled, seeded 256-image subset of the CIFAR-10 test set: (float [N,3,32,32] in [0,1], labels)."""
    d = np.load(shared("cifar10_test.npz"))
    idx = np.random.default_rng(0).permutation(len(d["y"]))[:256]
    x = torch.from_numpy(d["x"][idx]).permute(0, 3, 1, 2).float() / 255
    return x, torch.from_numpy(d["y"][idx].astype(np.int64))


@pytest.fixture(scope="session")
def cifar_lossless():
    """The 200 lossless CIFAR-10 training images: (float [200,3,32,32], labels)."""
    d = np.load(shared("cifar10_train_first200_lossless.npz"))
    return torch.from_numpy(d["x"]).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(d["y"].astype(np.int64))


@pytest.fixture(scope="session")
def chelsea(lite0):
    """scikit-image's chelsea the cat, preprocessed for EfficientNet-Lite0: [1,3,224,224]."""
    import cnnlab
    return cnnlab.load_images(cnnlab.bundled_photo("chelsea"), lite0)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module (`pytestmark = pytest.mark.usefixtures("one_thread")`): on a
    busy 2-core machine two threads wait on each other; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def resnet20_correct(resnet20, cifar_test_small):
    """Up to 32 images of `cifar_test_small` that the pretrained ResNet-20 classifies correctly."""
    x, y = cifar_test_small
    with torch.no_grad():
        ok = resnet20(x).argmax(1).cpu() == y
    return x[ok][:32], y[ok][:32]


@pytest.fixture(autouse=True)
def figures_without_overlapping_text(monkeypatch, request):
    """Every figure a test saves is checked (cnnlab.figures.text_overlaps, at its real size): a test whose
    figure has two overlapping texts, or a text on another panel's image, fails and names them."""
    from matplotlib.figure import Figure

    from cnnlab.figures import text_overlaps
    found: list[str] = []
    save = Figure.savefig

    def checked(fig, fname, *args, **kwargs):
        for a, b in text_overlaps(fig):
            found.append(f"{fname if isinstance(fname, (str, os.PathLike)) else 'figure'}: {a} overlaps {b}")
        return save(fig, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", checked)
    yield
    report = os.environ.get("CNNLAB_FIGURE_REPORT")
    if report:  # survey mode: collect, do not fail
        with open(report, "a") as f:
            f.writelines(f"{request.node.nodeid}: {line}\n" for line in found)
    elif found:
        pytest.fail("overlapping text in a figure:\n" + "\n".join(found[:20]), pytrace=False)


def wait_until(condition: Callable[[], bool], what: str, limit: float = 300.0) -> None:
    """Poll `condition` until it holds: a safety net against hanging, not a timing assertion."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)
