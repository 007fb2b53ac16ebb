"""`cnnlab attack` and `cnnlab attack-eval` end to end on the real ResNet-20, and their bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnlab.cli import main
from tests.conftest import shared

WEIGHTS = "weights/akamaster_cifar10_resnet20-12fca82f.th"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 40-image .npz in the cifar10_test layout and two CIFAR test images as PNG files."""
    d = np.load(shared("cifar10_test.npz"))
    idx = np.random.default_rng(0).permutation(len(d["y"]))[:40]
    tmp = tmp_path_factory.mktemp("attack_cli")
    np.savez(tmp / "small.npz", x=d["x"][idx], y=d["y"][idx])
    pngs = []
    for k in range(2):
        p = tmp / f"img{k}.png"
        Image.fromarray(d["x"][idx[k]]).save(p)
        pngs.append(str(p))
    (tmp / "notes.png").write_text("not an image")
    return {"npz": str(tmp / "small.npz"), "pngs": pngs, "bad": str(tmp / "notes.png"), "tmp": tmp,
            "weights": str(shared(WEIGHTS))}


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_attack_eval_json(files):
    r = _run("attack-eval", "--model", "cifar_resnet20", "--weights", files["weights"], "--data", files["npz"],
             "--method", "pgd", "--eps", "2/255", "--steps", "5", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert {"top1", "robust_top1", "success_rate", "linf", "l2", "images_per_s"} <= set(d)
    assert d["n"] == 40 and 0.5 < d["top1"] <= 1
    assert d["robust_top1"] < d["top1"] and d["success_rate"] > 0.5
    assert 0 < d["linf"] <= 2 / 255 + 1e-6 and d["images_per_s"] > 0


def test_attack_eval_text_with_limit(files):
    r = _run("attack-eval", "--model", "cifar_resnet20", "--weights", files["weights"], "--data", files["npz"],
             "--method", "fgsm", "--eps", "0.5/255", "--limit", "16")
    assert r.exit_code == 0, r.output
    assert "on 16 images" in r.output and "robust accuracy" in r.output and "images/s" in r.output
    assert "eps 0.5/255" in r.output


def test_attack_writes_json_pngs_and_figures(files):
    out = files["tmp"] / "out1"
    r = _run("attack", *files["pngs"], "--model", "cifar_resnet20", "--weights", files["weights"],
             "--method", "pgd", "--target", "least-likely", "--eps", "8/255", "--steps", "20", "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "attack.json").read_text())
    assert doc["n"] == 2 and doc["targeted"]
    for row in doc["images"]:
        assert {"success", "steps", "original", "final", "linf", "trajectory", "png_still_adversarial"} <= set(row)
        assert row["success"] and row["final"]["index"] == row["target"]["index"]
        assert row["linf"] <= 8 / 255 + 1e-6
    for name in ("attack", "difference", "robustness"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    assert set(doc["robustness"]["transforms"]) >= {"hflip", "crop80", "rotate30", "grayscale", "jpeg75", "blur"}
    assert (out / "img0_adversarial.png").exists()


def test_logit_descent_reports_the_classes_it_passes(files):
    out = files["tmp"] / "out2"
    r = _run("attack", files["pngs"][0], "--model", "cifar_resnet20", "--weights", files["weights"],
             "--method", "logit-descent", "--steps", "8", "--no-early-stop", "--no-robustness", "--out", str(out))
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "attack.json").read_text())
    assert doc["steps"] == 8 and len(doc["trajectory"]) == 9
    assert (out / "figures" / "trajectory.png").exists()


@pytest.mark.parametrize("args,message", [
    (["--eps", "2"], "outside [0, 1]"),
    (["--eps", "8/0"], "not a number or fraction"),
    (["--eps", "eight"], "not a number or fraction"),
    (["--eps", "1e400"], "not a number or fraction"),  # once an OverflowError traceback
    (["--eps", "4/255/2"], "not a number or fraction"),  # once read as 4/(255/2) = 8/255
    (["--eps", "nan"], "not a number or fraction"),
    (["--steps", "0"], "positive whole number"),
    (["--target", "caat"], "did you mean: cat"),
    (["--method", "pgdd"], "did you mean: pgd"),
    (["--method", "logit-ascent"], "give --target"),
])
def test_attack_bad_options(files, args, message):
    out = files["tmp"] / "never"
    r = CliRunner().invoke(main, ["attack", files["pngs"][0], "--model", "cifar_resnet20", "--weights",
                                  files["weights"], "--out", str(out), *args])
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output


def test_attack_refuses_target_equal_to_current_class_and_bad_images(files):
    r0 = _run("attack", files["pngs"][0], "--model", "cifar_resnet20", "--weights", files["weights"],
              "--method", "fgsm", "--out", str(files["tmp"] / "o3"), "--json", "--no-robustness")
    current = json.loads(r0.stdout)["original"]["label"]
    r = CliRunner().invoke(main, ["attack", files["pngs"][0], "--model", "cifar_resnet20", "--weights",
                                  files["weights"], "--target", current, "--out", str(files["tmp"] / "o4")])
    assert r.exit_code == 1 and "already classified as" in r.output
    r = CliRunner().invoke(main, ["attack", files["bad"], "--model", "cifar_resnet20", "--weights",
                                  files["weights"], "--out", str(files["tmp"] / "o5")])
    assert r.exit_code == 1 and "notes.png" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["attack", files["pngs"][0], "--model", "cifar_resnet20", "--weights",
                                  files["weights"], "--method", "fgsm", "--out", str(files["tmp"] / "o3")])
    assert r.exit_code == 1 and "already exists" in r.output    # nothing the user made is overwritten


def test_attack_eval_bad_data(files):
    r = CliRunner().invoke(main, ["attack-eval", "--model", "cifar_resnet20", "--weights", files["weights"],
                                  "--data", str(files["tmp"] / "missing.npz")])
    assert r.exit_code == 1 and "does not exist" in r.output


def test_attack_eval_eps_list_prints_one_line_per_eps_and_the_curve(files):
    args = ["attack-eval", "--model", "cifar_resnet20", "--weights", files["weights"], "--data", files["npz"],
            "--method", "fgsm", "--eps", "2/255,0.5/255,1/255"]
    r = _run(*args)
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 4 and "clean accuracy" in lines[0]
    assert [line.split()[1] for line in lines[1:]] == ["0.5/255", "1/255", "2/255"]
    d = json.loads(_run(*args, "--json").stdout)
    assert d["eps"] == pytest.approx([0.5 / 255, 1 / 255, 2 / 255]) and len(d["points"]) == 3
    assert d["robust_top1"] == sorted(d["robust_top1"], reverse=True) and d["n"] == 40
    bad = CliRunner().invoke(main, [*args[:-1], "2/255,two"])
    assert bad.exit_code != 0 and "not a number or fraction" in bad.output


def test_two_inputs_of_one_name_get_their_own_files_and_checks(files, resnet20):
    """a/x.png and b/x.png once wrote one x_adversarial.png, and the second image's PNG check was the
    first's; each input now has its own files (x_*, x-2_*) and its own check."""
    import torch

    import cnnlab
    d = np.load(shared("cifar10_test.npz"))
    paths = []
    for folder, i in (("a", 3), ("b", 4)):
        (files["tmp"] / folder).mkdir(exist_ok=True)
        paths.append(files["tmp"] / folder / "x.png")
        Image.fromarray(d["x"][i]).save(paths[-1])
    out = files["tmp"] / "same_names"
    r = _run("attack", *map(str, paths), "--model", "cifar_resnet20", "--weights", files["weights"],
             "--method", "fgsm", "--eps", "8/255", "--no-robustness", "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "attack.json").read_text())
    rows = doc["images"]
    assert [row["file"] for row in rows] == [str(p) for p in paths]
    assert [row["adversarial_png"] for row in rows] == [str(out / "x_adversarial.png"), str(out / "x-2_adversarial.png")]
    for row, src in zip(rows, paths):
        saved = cnnlab.load_images(row["adversarial_png"], resnet20)
        assert resnet20.predict(saved, k=1)[0][0].index == row["png_class"]["index"]
        original = cnnlab.load_images(str(out / Path(row["adversarial_png"]).name.replace("adversarial", "original")),
                                      resnet20)
        assert torch.equal(original, cnnlab.load_images(str(src), resnet20))


def test_attack_skips_unreadable_files_and_fails_only_when_none_is_read(files):
    from tests.conftest import corrupt_tiff_bytes
    tiff = files["tmp"] / "scan.tiff"
    tiff.write_bytes(corrupt_tiff_bytes())
    out = files["tmp"] / "skipping"
    r = CliRunner().invoke(main, ["attack", files["pngs"][0], str(tiff), files["bad"], "--model", "cifar_resnet20",
                                  "--weights", files["weights"], "--method", "fgsm", "--no-robustness",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "scan.tiff" in r.output and "notes.png" in r.output and "skipped 2 of 3 images" in r.output
    assert json.loads((out / "attack.json").read_text())["n"] == 1 and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["attack", str(tiff), files["bad"], "--model", "cifar_resnet20",
                                  "--weights", files["weights"], "--out", str(files["tmp"] / "none_read")])
    assert r.exit_code == 1 and "None of the 2 images could be read" in r.output and "Traceback" not in r.output
