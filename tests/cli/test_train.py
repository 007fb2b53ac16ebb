"""`cnnlab train / eval / predict-set / compare` end to end on real CIFAR-10 files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cnnlab.cli import main
from tests.conftest import shared


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny course ResNet (course_resnet) trained for 2 epochs on 600 real CIFAR-10 images, plus a 2nd run without shortcuts."""
    root = tmp_path_factory.mktemp("cli")
    d = np.load(shared("cifar10_test.npz"))
    idx = np.random.default_rng(0).permutation(len(d["y"]))[:600]
    np.save(root / "hw-train-data.npy", d["x"][idx])
    np.save(root / "hw-train-labels.npy", d["y"][idx].astype(np.int64))
    np.save(root / "hw-test-data.npy", d["x"][idx[:37]])
    common = ["--data", root / "hw-train-data.npy", "--epochs", "2", "--batch-size", "100", "--quiet",
              "--model", "course_resnet", "--model-arg", "strides=1,2", "--model-arg", "width=8",
              "--num-classes", "10"]
    r = cli("train", *common, "--out", root / "skip")
    assert r.exit_code == 0, r.output
    r2 = cli("train", *common, "--model-arg", "shortcut=false", "--out", root / "noskip")
    assert r2.exit_code == 0, r2.output
    return root


def test_train_prints_the_run_and_writes_it(trained):
    conf = json.loads((trained / "skip" / "config.json").read_text())
    assert conf["config"]["model_kwargs"] == {"strides": "1,2", "width": 8}
    assert conf["config"]["optimizer"] == "adam"  # the course nets' recommended default
    assert conf["model"]["num_classes"] == 10
    conf2 = json.loads((trained / "noskip" / "config.json").read_text())
    assert conf2["config"]["model_kwargs"]["shortcut"] is False


def test_eval_json_and_confusion(trained):
    r = cli("eval", trained / "skip" / "checkpoints" / "best.pt", "--data", shared("cifar10_train_first200_lossless.npz"),
            "--split", "all", "--json", "--out", trained / "eval")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["n"] == 200 and 0 <= res["top1"] <= res["top5"] <= 1
    assert len(res["per_class"]) == 10 and sum(sum(row) for row in res["confusion"]) == 200
    correct = sum(res["confusion"][i][i] for i in range(10))
    assert abs(correct / 200 - res["top1"]) < 1e-9
    assert (trained / "eval" / "confusion.png").stat().st_size > 1000
    text = cli("eval", trained / "skip", "--data", shared("cifar10_train_first200_lossless.npz"), "--split", "all")
    # the training files named no classes, so the model's are 'class 0', ... (never guessed as CIFAR-10's)
    assert "mean per-class accuracy" in text.output and "class 0" in text.output and "airplane" not in text.output


def test_eval_and_predict_set_take_a_published_checkpoint_by_the_model_options(tmp_path):
    """The published CIFAR-10 ResNet-20 evaluates without a cnnlab run: --model + --weights."""
    weights = shared("weights/akamaster_cifar10_resnet20-12fca82f.th")
    data = shared("cifar10_train_first200_lossless.npz")
    r = cli("eval", "--model", "cifar_resnet20", "--weights", weights, "--data", data, "--split", "all", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["n"] == 200 and res["top1"] == 1.0 and res["model"] == "cifar_resnet20"  # it saw these in training
    r = cli("predict-set", "--model", "cifar_resnet20", "--weights", weights, "--data", data, "--out", tmp_path,
            "--names")
    assert r.exit_code == 0, r.output
    labels = (tmp_path / "predictions.txt").read_text().split()
    assert len(labels) == 200 and labels[0] == "frog"
    r = cli("eval", tmp_path, "--model", "cifar_resnet20", "--data", data)
    assert r.exit_code == 1 and "not both" in r.output
    r = cli("eval", "--data", data)
    assert r.exit_code == 1 and "Name the model" in r.output


def test_predict_set_writes_one_label_per_line_in_order(trained):
    out = trained / "hw-test-labels.txt"
    r = cli("predict-set", trained / "skip" / "checkpoints" / "best.pt", "--data", trained / "hw-test-data.npy",
            "--out", trained, "--filename", "hw-test-labels.txt")
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert len(lines) == 37 and all(line.isdigit() and 0 <= int(line) < 10 for line in lines)
    import cnnlab
    from cnnlab.data import load_dataset
    from cnnlab.train import predict_labels
    model = cnnlab.create_model(weights=trained / "skip" / "checkpoints" / "best.pt")
    expect = predict_labels(model, load_dataset(str(trained / "hw-test-data.npy"), "all"))
    assert [int(v) for v in lines] == expect.tolist()
    again = cli("predict-set", trained / "skip" / "checkpoints" / "best.pt", "--data", trained / "hw-test-data.npy",
                "--out", trained, "--filename", "hw-test-labels.txt")
    assert again.exit_code == 1 and "already exists" in again.output
    as_file = cli("predict-set", trained / "skip", "--data", trained / "hw-test-data.npy", "--out", out)
    assert as_file.exit_code == 1 and f"--filename {out.name}" in as_file.output  # --out is a directory


def test_compare_draws_both_runs(trained):
    r = cli("compare", trained / "skip", trained / "noskip", "--out", trained / "cmp", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert [x["epochs"] for x in res["runs"]] == [2, 2]
    assert (trained / "cmp" / "curves.png").stat().st_size > 5000
    assert json.loads((trained / "cmp" / "compare.json").read_text())["runs"] == res["runs"]


def test_resume_from_the_cli_extends_a_run(trained):
    r = cli("train", "--resume", trained / "skip", "--epochs", "3", "--quiet")
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (trained / "skip" / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in rows] == [1, 2, 3]
    bad = cli("train", "--resume", trained / "skip", "--lr", "0.5")
    assert bad.exit_code == 1 and "drop --lr" in bad.output


def test_cli_errors_are_one_line(trained, tmp_path):
    r = cli("train", "--model", "resnet2O", "--data", trained / "hw-train-data.npy", "--out", tmp_path / "x")
    assert r.exit_code == 1 and r.output.startswith("error: Unknown model 'resnet2O'")
    r = cli("train", "--data", "cifar-11", "--out", tmp_path / "y")
    assert r.exit_code == 1 and "did you mean: cifar10" in r.output
    r = cli("train", "--data", trained / "hw-train-data.npy", "--out", trained / "skip")
    assert r.exit_code == 1 and "already holds a run" in r.output
    r = cli("eval", trained / "skip" / "config.json", "--data", trained / "hw-train-data.npy")
    assert r.exit_code == 1 and "not a checkpoint" in r.output
    r = cli("eval", trained / "skip" / "checkpoints" / "best.pt", "--data", trained / "hw-test-data.npy")
    assert r.exit_code == 1 and "has no test split" in r.output and "--split all" in r.output
    r = cli("eval", trained / "skip" / "checkpoints" / "best.pt", "--data", trained / "hw-test-data.npy", "--split", "all")
    assert r.exit_code == 1 and "unlabelled" in r.output
    r = cli("train", "--data", trained / "hw-train-data.npy", "--val", "test", "--out", tmp_path / "v")
    assert r.exit_code == 1 and "--val test: the data 'hw-train-data' has no test split" in r.output
    assert not (tmp_path / "v").exists()
    r = cli("train", "--data", trained / "hw-train-data.npy", "--augment", "rotate30", "--out", tmp_path / "z")
    assert r.exit_code == 1 and "Unknown augmentation" in r.output


def test_every_option_has_help_text():
    import click
    for name in ("train", "eval", "predict-set", "compare", "transfer"):
        command = main.get_command(click.Context(main), name)
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts[0]} has no help text"


def test_train_options_come_from_the_config_fields():
    """Every TrainConfig field (but those kept off the command line) is an option with help text."""
    import dataclasses

    from cnnlab.train.config import TrainConfig
    help_text = CliRunner().invoke(main, ["train", "--help"]).output
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("cli", True):
            flag = (f.metadata.get("flags") or (f"--{f.name.replace('_', '-')}",))[0].split("/")[0]
            assert flag in help_text, flag
            assert f.metadata["help"], f.name
    assert "--no-tta" in help_text and "--checkpoint-every" not in help_text


def test_listing_commands_does_not_import_torch():
    import subprocess
    import sys
    code = "import sys; from click.testing import CliRunner; from cnnlab.cli import main; " \
           "r = CliRunner().invoke(main, ['--help']); assert 'train' in r.output; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_class_names_come_from_the_command_line_and_travel_in_the_checkpoint(tmp_path):
    """--classes on train names the data; the checkpoint carries the names into eval and predict; eval's
    --classes renames; a file without names gets 'class i', never CIFAR-10's."""
    d = np.load(shared("cifar10_train_first200_lossless.npz"))
    np.save(tmp_path / "hw-train-data.npy", d["x"])
    np.save(tmp_path / "hw-train-labels.npy", d["y"].astype(np.int64))
    names = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "lorry"]
    r = cli("train", "--model", "softmax_regression", "--data", tmp_path / "hw-train-data.npy", "--epochs", "1",
            "--quiet", "--classes", ",".join(names), "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["classes"] == names
    ev = cli("eval", tmp_path / "run", "--data", tmp_path / "hw-train-data.npy", "--split", "all",
             "--overlap", "exclude", "--json")
    assert json.loads(ev.output)["classes"] == names
    (tmp_path / "names.txt").write_text("\n".join(n.upper() for n in names) + "\n")
    ev = cli("eval", tmp_path / "run", "--data", tmp_path / "hw-train-data.npy", "--split", "all",
             "--overlap", "exclude", "--classes", tmp_path / "names.txt", "--json")
    assert json.loads(ev.output)["classes"][-1] == "LORRY"
    pred = cli("predict", shared("seed_images/glow_imagenet_cat_285.png"), "--weights",
               tmp_path / "run" / "checkpoints" / "best.pt", "--json")
    assert r.exit_code == 0 and json.loads(pred.output)[0]["top"][0]["label"] in names
    bad = cli("train", "--model", "softmax_regression", "--data", tmp_path / "hw-train-data.npy", "--classes",
              "a,b", "--out", tmp_path / "bad")
    assert bad.exit_code == 1 and "--classes gives 2 class names" in bad.output and "has labels up to 9" in bad.output


def test_help_says_which_defaults_the_model_recipe_sets():
    r = cli("train", "--help")
    text = " ".join(r.output.split())
    for option, default in (("--schedule", "cosine"), ("--optimizer", "sgd"), ("--augment", "crop4,flip"),
                            ("--weight-decay", "0.0001")):
        assert f"[default: the model's recipe, else {default}]" in text[text.index(option):], option
    assert "--seed INTEGER Seed of the initialization, the validation split, the data order and augmentation. " \
           "[default: 0]" in text  # no recipe sets it


def test_every_run_prints_and_records_its_effective_settings(tmp_path):
    d = np.load(shared("cifar10_train_first200_lossless.npz"))
    np.save(tmp_path / "hw-train-data.npy", d["x"])
    np.save(tmp_path / "hw-train-labels.npy", d["y"].astype(np.int64))
    r = CliRunner().invoke(main, ["train", "--model", "course_resnet", "--model-arg", "width=4", "--model-arg",
                                  "strides=1,2", "--data", str(tmp_path / "hw-train-data.npy"), "--epochs", "1",
                                  "--lr", "0.002", "--quiet", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "run" / "config.json").read_text())["settings"]
    assert s["model_args"] == {"width": 4, "strides": "1,2"} and s["parameters"] > 0
    assert s["initialization"].startswith("He-normal") and s["optimizer"] == {"name": "adam", "lr": 0.002,
                                                                                 "weight_decay": 0.0}
    assert s["schedule"] == "step: x0.1 every 10 epochs" and s["augmentation"] == "crop4,flip"
    assert set(s["from_recipe"]) == {"optimizer", "weight_decay", "schedule", "step_every"}  # lr was given
    assert s["data"]["train"] == 181 and s["data"]["val"]["n"] == 19 and s["data"]["classes"] == 10
    header = r.output  # --quiet hides the progress, never the header
    for line in ("model         course_resnet (width=4, strides=1,2):", "init          He-normal",
                 "optimizer     adam, lr 0.002, weight decay 0 (model's recipe: optimizer, weight_decay)",
                 "schedule      step: x0.1 every 10 epochs (model's recipe: schedule, step_every); 1 epoch, batch 128",
                 "augmentation  crop4,flip", "data          ", "train 181 images, validation 19"):
        assert line in header, line


@pytest.mark.parametrize("option, value, message", [
    ("--clip-grad", "-1", "--clip-grad must be above 0, got -1."),
    ("--gamma", "-1", "--gamma must be above 0, got -1."),
    ("--limit", "-5", "--limit must be at least 1, got -5."),
    ("--limit", "0", "--limit must be at least 1, got 0."),
    ("--num-classes", "0", "--num-classes must be at least 1, got 0."),
    ("--num-classes", "-1", "--num-classes must be at least 1, got -1."),
    ("--warmup", "-5", "--warmup must be at least 0, got -5."),
    ("--workers", "-1", "--workers must be at least 0, got -1."),
    ("--freeze-epochs", "-3", "--freeze-epochs must be at least 0, got -3."),
    ("--momentum", "-1", "--momentum must be at least 0 and below 1, got -1."),
    ("--lr", "nan", "--lr must be a finite number, not nan."),
    ("--milestones", "0,30", "--milestones must be at least 1, got 0."),
    ("--model-arg", "bogus=1", "has no argument 'bogus'"),
])
def test_every_numeric_option_is_checked_in_one_sentence(tmp_path, option, value, message):
    """Each was accepted (training uphill: --clip-grad -1 flipped the gradient) or a traceback."""
    r = CliRunner().invoke(main, ["train", "--model", "softmax_regression", "--data",
                                  str(shared("cifar10_train_first200_lossless.npz")), "--epochs", "1", "--quiet",
                                  "--out", str(tmp_path / "run"), option, value])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("error: ") and message in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options, message", [
    ({"clip_grad": -1}, "--clip-grad must be above 0"), ({"gamma": -1}, "--gamma must be above 0"),
    ({"limit": 0}, "--limit must be at least 1"), ({"num_classes": -1}, "--num-classes must be at least 1"),
    ({"warmup_epochs": -5}, "--warmup must be at least 0"), ({"workers": -1}, "--workers must be at least 0"),
    ({"freeze_epochs": -3}, "--freeze-epochs must be at least 0"), ({"momentum": -1}, "--momentum must be"),
    ({"epochs": 2.5}, "--epochs must be a whole number"), ({"lr": float("inf")}, "--lr must be a finite number"),
    ({"model_kwargs": {"bogus": 1}}, "has no argument 'bogus'"),
])
def test_the_python_api_checks_the_same_options(tmp_path, options, message):
    import cnnlab
    from cnnlab.errors import CnnlabError
    with pytest.raises(CnnlabError, match=message):
        cnnlab.train("softmax_regression", data=str(shared("cifar10_train_first200_lossless.npz")),
                     out=tmp_path / "run", progress=False, **{"epochs": 1, **options})


def _one_gpu(monkeypatch) -> None:
    """This process sees one CUDA GPU (a monkeypatched torch.cuda) and no Apple GPU."""
    import torch
    monkeypatch.delenv("CNNLAB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_a_device_or_precision_this_machine_lacks_stops_before_anything(trained, tmp_path, monkeypatch):
    data = trained / "hw-train-data.npy"
    checkpoint = trained / "skip" / "checkpoints" / "best.pt"
    r = cli("train", "--data", data, "--precision", "fp16", "--device", "cpu", "--out", tmp_path / "a")
    assert r.exit_code == 1 and r.output == ("error: --precision fp16 needs a GPU (CUDA or MPS) and this run is on "
                                             "the CPU; use fp32 (the CPU's default) or bf16.\n")
    r = cli("eval", checkpoint, "--data", data, "--precision", "fp16", "--device", "cpu")
    assert r.exit_code == 1 and "--precision fp16 needs a GPU" in r.output
    _one_gpu(monkeypatch)
    r = cli("train", "--data", data, "--device", "cuda:3", "--out", tmp_path / "b")
    assert r.exit_code == 1 and r.output == ("error: --device cuda:3: this machine has 1 GPU(s), numbered 0..0; "
                                             "available: cpu, cuda:0.\n")
    r = cli("train", "--data", data, "--device", "mps", "--out", tmp_path / "c")
    assert r.exit_code == 1 and r.output.startswith("error: --device mps needs Apple's Metal backend")
    r = cli("eval", checkpoint, "--data", data, "--device", "cuda:3", "--out", tmp_path / "d")
    assert r.exit_code == 1 and "--device cuda:3" in r.output
    r = cli("train", "--resume", trained / "skip", "--device", "cuda:3")
    assert r.exit_code == 1 and "--device cuda:3" in r.output
    assert not any((tmp_path / d).exists() for d in "abcd")  # nothing started, nothing written


def test_resume_may_move_a_run_to_another_device(trained):
    r = cli("train", "--resume", trained / "noskip", "--epochs", "3", "--device", "cpu", "--precision", "auto",
            "--quiet")
    assert r.exit_code == 0, r.output
    conf = json.loads((trained / "noskip" / "config.json").read_text())
    assert conf["config"]["device"] == "cpu" and conf["device"] == "cpu" and conf["precision"] == "fp32"


def test_every_repeatable_key_value_option_becomes_one_dict():
    from cnnlab.cli.train import _config_values, config_options
    values = _config_values({"freeze_after": ({"whiten.bias": 1}, {"fc.weight": 2}), "model_kwargs": (),
                             "optimizer": "muon", "no_tta": False})
    assert values == {"freeze_after": {"whiten.bias": 1, "fc.weight": 2}, "optimizer": "muon"}
    names = {o.name for o in config_options()}
    assert {"freeze_after", "lookahead", "muon_lr", "muon_momentum", "lr_end", "hard_fraction", "proxy_args",
            "proxy_every"} <= names
    out = CliRunner().invoke(main, ["train", "--help"]).output
    assert "--freeze-after NAME=EPOCHS" in out and "[sgd|adam|adamw|muon]" in out
    assert "--proxy-arg KEY=VALUE" in out and "--hard-fraction" in out


def test_no_forms_turn_off_what_the_recipe_would_set():
    from cnnlab.cli.train import _config_values
    off = _config_values({"freeze_after": (), "no_freeze_after": True, "tta": None, "no_tta": True})
    assert off == {"freeze_after": {}, "tta": "none"}  # given, so the airbench recipe's whiten.bias=3 is not used
    assert _config_values({"freeze_after": (), "no_freeze_after": False, "no_tta": False}) == {}
    r = cli("train", "--model", "airbench", "--freeze-after", "whiten.bias=1", "--no-freeze-after")
    assert r.exit_code == 1 and "--no-freeze-after contradicts --freeze-after whiten.bias=1" in r.output
