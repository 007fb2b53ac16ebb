"""The explain commands end to end through click: figures in --out, JSON summaries, one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cnnlab.cli import main


@pytest.fixture(scope="module")
def r20_args():
    from tests.conftest import shared
    return ["--model", "cifar_resnet20", "--weights", str(shared("weights/akamaster_cifar10_resnet20-12fca82f.th"))]


def _run(args):
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    return res


@pytest.mark.slow
def test_featmaps_filters_saliency(r20_args, tmp_path):
    from tests.conftest import shared
    cat = str(shared("seed_images/glow_imagenet_cat_285.png"))
    res = _run(["featmaps", cat, *r20_args, "--out", str(tmp_path / "fm"), "-k", "4", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["layers"] == ["act", "layer2", "layer3"] and all(len(c) == 4 for c in d["channels"].values())
    assert (tmp_path / "fm" / "featmaps_glow_imagenet_cat_285.png").exists()

    res = _run(["filters", *r20_args, "--out", str(tmp_path / "f")])
    assert res.exit_code == 0 and "16 filters" in res.output
    assert (tmp_path / "f" / "filters.png").exists()

    res = _run(["saliency", cat, *r20_args, "--method", "gradient,gradcam,ig", "--steps", "8",
                "--out", str(tmp_path / "s"), "--tensorboard", str(tmp_path / "tb")])
    assert res.exit_code == 0, res.output
    assert "gradcam: cat" in res.output and "completeness error" in res.output
    for name in ("saliency_methods.png", "saliency_gradient.png", "saliency_gradcam.png", "saliency_ig.png", "saliency.json"):
        assert (tmp_path / "s" / name).exists()
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_dream_and_top_activations(r20_args, tmp_path):
    from tests.conftest import shared
    res = _run(["dream", *r20_args, "--objective", "layer2:5*2 + layer2:16", "--steps", "5", "--compare",
                "--out", str(tmp_path / "d"), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["steps"] == 5 and d["unregularized"]["regularizers"] == {}
    assert (tmp_path / "d" / "dream_compare.png").exists() and (tmp_path / "d" / "dream.png").exists()

    npz = str(shared("cifar10_train_first200_lossless.npz"))
    res = _run(["top-activations", "--data", npz, *r20_args, "--layer", "layer3", "--channel", "7", "-k", "4",
                "--limit", "100", "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    assert "scanned 100 images" in res.output and (tmp_path / "t" / "top_activations.png").exists()


def test_errors_are_one_line(r20_args, tmp_path):
    cases = [
        (["featmaps", *r20_args, "--layer", "layer9"], "Unknown layer 'layer9'"),
        (["featmaps", *r20_args, "--layer", "early", "--channels", "40"], "Channel 40 is out of range"),
        (["saliency", *r20_args, "--method", "gradcam", "--layer", "linear"], "no spatial map"),
        (["saliency", *r20_args, "--target", "unicorn"], "Unknown class 'unicorn'"),
        (["saliency", *r20_args, "--method", "lime"], "Unknown --method 'lime'"),
        (["dream", *r20_args, "--objective", "layer3:99", "--steps", "1"], "Channel 99 is out of range"),
    ]
    for args, msg in cases:
        res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "x")])
        assert res.exit_code == 1, (args, res.output)
        assert "error: " in res.output and msg in res.output
        assert "Traceback" not in res.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    res = CliRunner().invoke(main, ["filters", *r20_args, "--out", str(tmp_path / "full")])
    assert res.exit_code == 1 and "not empty" in res.output
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep"


def test_top_activations_reads_every_dataset_and_reports_labels(r20_args, tmp_path):
    """A class-sorted file with --limit scans a seeded random subset (not the first N: all airplanes), a
    file of mixed-size photos goes through the model's preprocessing, and the shown images' labels are
    reported."""
    from tests.conftest import shared
    res = _run(["top-activations", "--data", str(shared("cifar10_test.npz")), *r20_args, "--layer", "layer3", "--channel",
                "7", "-k", "6", "--limit", "300", "--out", str(tmp_path / "c"), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["scanned"] == 300 and len(d["labels"]) == 6 and len(set(d["labels"])) > 1
    assert max(d["indices"]) >= 1000  # indices of the file itself, beyond its first class
    photos = _run(["top-activations", "--data", str(shared("oxford_pets_subset.npz")), *r20_args, "-k", "3", "--limit", "12",
                   "--split", "test", "--out", str(tmp_path / "p")])
    assert photos.exit_code == 0, photos.output
    assert "scanned 12 images" in photos.output
    doc = json.loads((tmp_path / "p" / "top_activations.json").read_text())
    pets = np.load(shared("oxford_pets_subset.npz"))
    test_idx = np.flatnonzero(pets["split"] == "test")
    assert doc["labels"] == [str(pets["breed"][test_idx[i]]) for i in doc["indices"]]


def test_saliency_skips_unreadable_files_and_fails_only_when_none_is_read(r20_args, tmp_path):
    from tests.conftest import corrupt_tiff_bytes, shared
    cat = str(shared("seed_images/glow_imagenet_cat_285.png"))
    tiff = tmp_path / "scan.tiff"
    tiff.write_bytes(corrupt_tiff_bytes())
    res = CliRunner().invoke(main, ["saliency", cat, str(tiff), *r20_args, "--out", str(tmp_path / "s"), "--json"])
    assert res.exit_code == 0, res.output
    assert "scan.tiff" in res.output and "skipped 1 of 2 images" in res.output and "Traceback" not in res.output
    summary = json.loads((tmp_path / "s" / "saliency.json").read_text())
    assert summary["images"] == [cat] and summary["skipped"] == 1
    res = CliRunner().invoke(main, ["saliency", str(tiff), *r20_args, "--out", str(tmp_path / "t")])
    assert res.exit_code == 1 and "None of the 1 images could be read" in res.output


def test_a_nan_sigma_is_refused_where_it_is_parsed_and_in_python(r20_args, tmp_path):
    import math

    import cnnlab
    from cnnlab.errors import CnnlabError
    res = CliRunner().invoke(main, ["saliency", *r20_args, "--method", "smoothgrad", "--sigma", "nan",
                                    "--out", str(tmp_path / "s")])
    assert res.exit_code == 1 and "--sigma must be a finite number" in res.output and "Traceback" not in res.output
    model = cnnlab.create_model("cifar_resnet20")
    with pytest.raises(CnnlabError, match="finite sigma"):
        cnnlab.explain.attribute(model, __import__("torch").rand(1, 3, 32, 32), method="smoothgrad", sigma=math.nan)
