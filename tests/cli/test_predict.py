"""`cnnlab predict` end to end (JSON shape, bad files counted, directories, --weights, batches), and the
predict path's imports (cold start)."""
from __future__ import annotations

import json
import subprocess
import sys

import torch
from click.testing import CliRunner

import cnnlab
from cnnlab.cli import main
from tests.conftest import shared

CAT_CLASSES = set(range(281, 286))


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_predict_json_shape_and_bad_files_counted(tmp_path):
    chelsea = str(cnnlab.bundled_photo("chelsea"))
    zebra = str(shared("seed_images/glow_imagenet_zebra_340.png"))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    r = run("predict", chelsea, str(bad), zebra, "--json", "-k", "3")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [o["image"] for o in out] == [chelsea, zebra]
    for o in out:
        assert set(o) == {"image", "top"} and len(o["top"]) == 3
        assert all(set(p) == {"index", "label", "prob"} for p in o["top"])
        probs = [p["prob"] for p in o["top"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    assert CAT_CLASSES & {p["index"] for p in out[0]["top"]}
    assert out[1]["top"][0] == {"index": 340, "label": "zebra", "prob": out[1]["top"][0]["prob"]}
    assert "broken.jpg" in r.stderr and "skipped 1 of 3" in r.stderr


def test_predict_fails_only_when_nothing_succeeds(tmp_path):
    bad = tmp_path / "a.png"
    bad.write_bytes(b"")
    r = run("predict", str(bad), str(tmp_path / "missing.jpg"))
    assert r.exit_code == 1
    assert "a.png" in r.stderr and "missing.jpg" in r.stderr and "None of the 2 images" in r.stderr


def test_predict_directory_human_output_and_weights(tmp_path, resnet20):
    import shutil
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(cnnlab.bundled_photo("chelsea"), photos / "cat.png")
    shutil.copy(cnnlab.bundled_photo("coffee"), photos / "cup.png")
    (photos / "readme.txt").write_text("not an image")  # ignored: not an image suffix
    r = run("predict", str(photos), "-k", "2")
    assert r.exit_code == 0, r.output
    assert "cat.png" in r.stdout and "cup.png" in r.stdout and "espresso" in r.stdout
    assert r.stdout.count("  1. ") == 2 and r.stdout.count("  2. ") == 2
    # any registered arch + --weights PATH (a CIFAR net on a photo: resized to 32x32)
    w = tmp_path / "r20.pt"
    torch.save({"state_dict": resnet20.net.state_dict()}, w)
    r = run("predict", str(photos / "cat.png"), "--model", "cifar_resnet20", "--weights", str(w), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["top"][0]["label"].startswith("class ")  # a bare state dict names no classes


def test_predict_batches_do_not_change_results_and_an_empty_directory_is_one_error(tmp_path):
    photos = [str(cnnlab.bundled_photo(n)) for n in ("chelsea", "coffee", "rocket")]
    one = json.loads(run("predict", *photos, "--batch-size", "1", "--json").stdout)
    three = json.loads(run("predict", *photos, "--batch-size", "3", "--json").stdout)
    assert [o["image"] for o in one] == photos
    assert [[p["index"] for p in o["top"]] for o in one] == [[p["index"] for p in o["top"]] for o in three]
    (tmp_path / "empty").mkdir()
    r = run("predict", str(tmp_path / "empty"))
    assert r.exit_code == 1 and r.stderr.startswith("error: No image files found in") and r.stderr.count("\n") == 1


def test_predict_path_imports_nothing_heavy():
    """The cold-start rule: no torchvision, matplotlib, sklearn, tensorboard or skimage on predict."""
    code = (
        "import sys\n"
        "from cnnlab.cli import main\n"
        f"try:\n    main(['predict', {str(cnnlab.bundled_photo('chelsea'))!r}, '--json'])\n"
        "except SystemExit:\n    pass\n"
        "heavy = {'torchvision', 'matplotlib', 'sklearn', 'tensorboard', 'skimage', 'scipy', 'pandas'}\n"
        "print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} & heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "HEAVY []" in out.stdout, out.stdout[-500:] + out.stderr[-2000:]
    assert '"index": 28' in out.stdout  # a cat class (281..285) was printed


def test_predict_with_nan_weights_is_one_sentence_not_nan_percent(tmp_path, resnet20):
    """A diverged checkpoint printed 'nan%' for every class, and --json wrote bare NaN (invalid JSON)."""
    sd = {k: v.clone() for k, v in resnet20.net.state_dict().items()}
    sd["linear.weight"].fill_(float("nan"))
    ckpt = tmp_path / "diverged.pt"
    torch.save({"cnnlab": resnet20.checkpoint_meta(), "state_dict": sd}, ckpt)
    photo = str(shared("seed_images/glow_imagenet_cat_285.png"))
    for extra in ((), ("--json",)):
        r = run("predict", photo, "--weights", str(ckpt), *extra)
        assert r.exit_code == 1, r.output
        assert "answered NaN" in r.output and "nan%" not in r.output and "NaN," not in r.stdout
        assert r.stdout == "" and "Traceback" not in r.output


def test_predict_refuses_a_long_strip_in_bounded_memory(tmp_path):
    """A 318-byte 1 x 60,000 PNG made `cnnlab predict` peak at 16.6 GB; now it is skipped with its reason."""
    import numpy as np
    from PIL import Image

    from tests.conftest import child_peak_rss_mb
    strip = tmp_path / "tall.png"
    Image.fromarray(np.full((60000, 1, 3), 128, np.uint8)).save(strip)
    good = str(cnnlab.bundled_photo("chelsea"))
    weights = str(shared("weights/akamaster_cifar10_resnet20-12fca82f.th"))
    code = ("import sys\nfrom cnnlab.cli import main\n"
            f"sys.argv = ['cnnlab', 'predict', {good!r}, {str(strip)!r}, '--model', 'cifar_resnet20', "
            f"'--weights', {weights!r}]\nmain()\n")
    status, out, peak_mb = child_peak_rss_mb(code)
    assert status == 0, out
    assert "tall.png' is 1x60000 pixels" in out and "skipped 1 of 2" in out and "chelsea.png" in out
    assert peak_mb < 1500, f"peak memory {peak_mb:.0f} MB"
