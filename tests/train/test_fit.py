"""The trainer on real CIFAR-10 subsets: learning, resume, checkpoints, bad input, schedules."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.data import ImageArrays, load_dataset
from cnnlab.errors import CnnlabError
from cnnlab.runs import Run
from cnnlab.train import TrainConfig, TrainingDiverged, evaluate, fit, resume
from cnnlab.train.optim import lr_factor, parameter_groups
from tests.conftest import shared

TINY_RESNET = {"strides": "1,2", "width": 8, "bn": True}  # has BN and dropout: both must resume exactly


@pytest.fixture(scope="module")
def cifar_train_small():
    """1000 real CIFAR-10 images (seeded, all classes) from the test file."""
    d = load_dataset(str(shared("cifar10_test.npz")))
    idx = torch.randperm(len(d), generator=torch.Generator().manual_seed(0))[:1000]
    return d.subset(idx.sort().values)


@pytest.mark.slow
def test_training_learns_and_writes_the_run_directory(cifar_train_small, tmp_path):
    run = cnnlab.train("simple_cnn_gap", data=cifar_train_small, epochs=3, out=tmp_path / "run", batch_size=100,
                       lr=3e-3, progress=False)
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] < 2.31
    assert rows[-1]["val_top1"] > 0.2  # 100 held-out real images, 10 classes: well above chance
    for key in ("train_loss", "val_loss", "val_top1", "val_top5", "val_error", "lr", "images_per_s", "elapsed_s"):
        assert key in rows[-1]
    conf = run.config
    assert conf["config"]["model"] == "simple_cnn_gap" and abs(conf["data"]["train"]["n"] - 900) <= 5
    assert conf["data"]["train"]["n"] + conf["data"]["val"]["n"] == 1000
    for f in ("checkpoints/last.pt", "checkpoints/best.pt", "figures/curves.png", "figures/filters.png", "final.json"):
        assert (run.path / f).exists(), f
    _check_tensorboard(run)
    ckpt = torch.load(run.path / "checkpoints" / "last.pt", weights_only=True)  # plain data only
    assert ckpt["epoch"] == 3 and set(ckpt) >= {"cnnlab", "state_dict", "optimizer", "scheduler", "rng", "loader"}
    model = cnnlab.create_model(weights=run.path / "checkpoints" / "best.pt")
    best = max(rows, key=lambda r: r["val_top1"])
    from cnnlab.data import train_val_split  # evaluate reproduces the logged number
    held = train_val_split(cifar_train_small, None, 0.1, 0).test
    assert abs(evaluate(model, held).top1 - best["val_top1"]) < 1e-9
    with pytest.raises(CnnlabError, match="already holds a run"):
        cnnlab.train("simple_cnn_gap", data=cifar_train_small, epochs=1, out=run.path, progress=False)


def _check_tensorboard(run: Run) -> None:
    """TensorBoard as Keras writes it, read back with tensorboard's EventAccumulator: train/ and validation/
    share the epoch_loss/top1/top5 tags with the numbers of metrics.jsonl; learning rate, every step's loss,
    sample images, and the hyperparameters with the final metrics."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cnnlab.runs import tensorboard_scalars
    rows = run.metrics()
    acc = {part: EventAccumulator(str(run.path / "tb" / part), size_guidance={"scalars": 0, "images": 0}).Reload()
           for part in ("train", "validation")}
    for tag in ("epoch_loss", "epoch_top1", "epoch_top5"):
        for part in ("train", "validation"):
            assert tag in acc[part].Tags()["scalars"], (part, tag)
    for part, tag, value in (t for row in rows for t in tensorboard_scalars(row)):
        events = acc[part].Scalars(tag)
        assert any(abs(e.value - value) <= 1e-6 * max(1.0, abs(value)) for e in events), (part, tag, value)
    assert [e.step for e in acc["validation"].Scalars("epoch_top1")] == [r["epoch"] for r in rows]
    assert acc["train"].Scalars("epoch_learning_rate")[-1].value == pytest.approx(rows[-1]["lr"], rel=1e-6)
    steps = [e.step for e in acc["train"].Scalars("batch_loss")]
    assert steps == sorted(steps) and len(steps) >= len(rows) * 2
    assert acc["train"].Tags()["images"] == ["samples"]
    root = EventAccumulator(str(run.path / "tb"), size_guidance={"scalars": 0}).Reload()
    assert root.Scalars("hparam/best_val_top1")[0].value == pytest.approx(run.final()["best_val_top1"], rel=1e-6)
    from tensorboard.plugins.hparams import plugin_data_pb2
    content = root.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["model"].string_value == run.config["config"]["model"]


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.slow
def test_resume_equals_uninterrupted_training(cifar_train_small, tmp_path):
    data = cifar_train_small.subset(range(400))
    opts = {"data": data, "epochs": 3, "batch_size": 100, "lr": 0.05, "optimizer": "sgd", "schedule": "cosine",
                "model_kwargs": TINY_RESNET, "ema": 0.9, "augment": "crop4,flip,cutout4", "progress": False, "seed": 3}
    straight = cnnlab.train("course_resnet", out=tmp_path / "straight", **opts)
    cnnlab.train("course_resnet", out=tmp_path / "killed", stop_after=1, **opts)
    assert len(Run.open(tmp_path / "killed").metrics()) == 1
    resumed = resume(tmp_path / "killed", progress=False, data=data)
    a, b = _weights(straight.path / "checkpoints/last.pt"), _weights(resumed.path / "checkpoints/last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = straight.metrics(), resumed.metrics()
    assert [r["train_loss"] for r in ra] == [r["train_loss"] for r in rb]
    assert [r["val_top1"] for r in ra] == [r["val_top1"] for r in rb]
    with pytest.raises(CnnlabError, match="already finished"):
        resume(tmp_path / "killed", progress=False, data=data)


def test_nan_loss_stops_clearly_and_keeps_last_good_checkpoint(cifar_train_small, tmp_path):
    run_dir = tmp_path / "nan"
    cnnlab.train("mlp", data=cifar_train_small, epochs=1, out=run_dir, progress=False, model_kwargs={"widths": "64"})
    good = _weights(run_dir / "checkpoints/last.pt")
    ckpt = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    cfg = TrainConfig.from_dict({**Run.open(run_dir).config["config"], "epochs": 3, "lr": 1e30})
    model = cnnlab.create_model(weights=run_dir / "checkpoints/last.pt")
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf).*last good checkpoint is .*last.pt \(epoch 1\)"):
        fit(model, cifar_train_small, None, cfg, Run.open(run_dir), resume=ckpt, progress=False)
    after = _weights(run_dir / "checkpoints/last.pt")
    assert all(torch.equal(good[k], after[k]) for k in good)
    assert json.loads((run_dir / "final.json").read_text())["status"] == "diverged"


def test_full_disk_leaves_previous_checkpoint_intact(cifar_train_small, tmp_path, monkeypatch):
    run_dir = tmp_path / "disk"
    cnnlab.train("softmax_regression", data=cifar_train_small, epochs=1, out=run_dir, progress=False)
    before = (run_dir / "checkpoints/last.pt").read_bytes()

    def full_disk(obj, f, *a, **k):
        f.write(b"partial bytes")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CnnlabError, match="no space left on the disk.*previous checkpoint there is intact"):
        resume(run_dir, epochs=2, progress=False, data=cifar_train_small)
    monkeypatch.undo()
    assert (run_dir / "checkpoints/last.pt").read_bytes() == before
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
    assert cnnlab.create_model(weights=run_dir / "checkpoints/last.pt").num_classes == 10


def test_bad_inputs_get_one_sentence(cifar_train_small, tmp_path):
    with pytest.raises(CnnlabError, match=r"Unknown model 'cifar_resnet21' \(did you mean: .*cifar_resnet20"):
        cnnlab.train("cifar_resnet21", data=cifar_train_small, epochs=1, out=tmp_path / "a", progress=False)
    with pytest.raises(CnnlabError, match="labels up to 9 but the model has num_classes=5"):
        cnnlab.train("softmax_regression", data=cifar_train_small, epochs=1, num_classes=5, out=tmp_path / "b",
                     progress=False)
    with pytest.raises(CnnlabError, match="did you mean: cosine"):
        TrainConfig(schedule="cosin")
    other = tmp_path / "other.pt"
    m = cnnlab.create_model("simple_cnn")
    torch.save({"state_dict": m.net.state_dict()}, other)
    with pytest.raises(CnnlabError, match="do not fit architecture 'cnn11'.*missing keys"):
        cnnlab.create_model("cnn11", weights=other)
    bad = tmp_path / "trunc.pt"
    run = cnnlab.train("softmax_regression", data=cifar_train_small, epochs=1, out=tmp_path / "c", progress=False)
    bad.write_bytes((run.path / "checkpoints/last.pt").read_bytes()[:2000])
    with pytest.raises(CnnlabError, match="truncated or corrupt"):
        cnnlab.create_model(weights=bad)


def test_schedules_and_warmup():
    spe = 10
    cos = TrainConfig(epochs=10, schedule="cosine")
    assert lr_factor(0, cos, spe) == pytest.approx(1.0) and lr_factor(99, cos, spe) < 0.01
    step = TrainConfig(epochs=10, schedule="step", step_every=3, gamma=0.1)
    assert [round(lr_factor(e * spe, step, spe), 6) for e in (0, 2, 3, 6, 9)] == [1, 1, 0.1, 0.01, 0.001]
    multi = TrainConfig(epochs=10, schedule="multistep", milestones=[5, 8])
    assert [round(lr_factor(e * spe, multi, spe), 6) for e in (4, 5, 8)] == [1, 0.1, 0.01]
    warm = TrainConfig(epochs=10, schedule="cosine", warmup_epochs=1)
    assert lr_factor(0, warm, spe) == pytest.approx(0.1) and lr_factor(9, warm, spe) == pytest.approx(1.0)
    one = TrainConfig(epochs=10, schedule="onecycle")
    f = [lr_factor(s, one, spe) for s in range(100)]
    assert f[0] < 0.05 and max(f) == pytest.approx(1.0, abs=1e-3) and f[-1] < 1e-2 and np.argmax(f) == 30
    tri = TrainConfig(epochs=10, schedule="triangle")
    t = [lr_factor(s, tri, spe) for s in range(100)]
    assert np.argmax(t) in (22, 23) and t[-1] < 0.02


def test_no_weight_decay_on_norm_and_bias():
    m = cnnlab.create_model("simple_cnn_bn")
    groups = parameter_groups(m.net, TrainConfig(weight_decay=5e-4))
    by_decay = {g["weight_decay"]: sum(p.numel() for p in g["params"]) for g in groups}
    bn_and_bias = sum(p.numel() for n, p in m.net.named_parameters() if p.dim() == 1)
    assert by_decay[0.0] == bn_and_bias and by_decay[5e-4] == sum(p.numel() for p in m.parameters()) - bn_and_bias
    all_groups = parameter_groups(m.net, TrainConfig(weight_decay=5e-4, decay_norm_and_bias=True))
    assert [g["weight_decay"] for g in all_groups] == [5e-4]


@pytest.mark.slow
def test_finetune_new_head_with_frozen_backbone(cifar_train_small, tmp_path, resnet20):
    weights = shared("weights/akamaster_cifar10_resnet20-12fca82f.th")
    five = cifar_train_small.subset(torch.nonzero(cifar_train_small.y < 5).flatten())
    five = ImageArrays(five.x[:300], five.y[:300], ["airplane", "automobile", "bird", "cat", "deer"], "five")
    run = cnnlab.train("cifar_resnet20", data=five, weights=str(weights), epochs=2, freeze_epochs=1,
                       backbone_lr_mult=0.1, lr=0.05, out=tmp_path / "ft", progress=False, batch_size=50)
    first = torch.load(run.path / "checkpoints/last.pt", weights_only=True)
    model = cnnlab.create_model(weights=run.path / "checkpoints/last.pt")
    assert model.num_classes == 5 and model.labels[4] == "deer"
    assert run.metrics()[0]["val_top1"] > 0.5  # pretrained features: a linear head alone is far above chance
    orig = resnet20.net.state_dict()
    assert not torch.equal(first["state_dict"]["layer1.0.conv1.weight"], orig["layer1.0.conv1.weight"])  # unfrozen in epoch 2
    lrs = {round(g["lr"] / run.metrics()[-1]["lr"], 6) for g in first["optimizer"]["param_groups"]}
    assert lrs == {1.0, 0.1}


def test_frozen_epoch_changes_only_the_head(cifar_train_small, tmp_path):
    weights = shared("weights/akamaster_cifar10_resnet20-12fca82f.th")
    run = cnnlab.train("cifar_resnet20", data=cifar_train_small.subset(range(200)), weights=str(weights), epochs=1,
                       freeze_epochs=1, lr=0.05, out=tmp_path / "frz", progress=False, batch_size=50, ema=None)
    after = _weights(run.path / "checkpoints/last.pt")
    before = cnnlab.create_model("cifar_resnet20", weights=weights).net.state_dict()
    changed = {k for k in after if after[k].dtype.is_floating_point and not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith("linear") or "running" in k for k in changed)


def test_image_folder_streams_from_disk(tmp_path):
    """A class-folder tree of real Oxford Pets photos trains through the streaming loader."""
    import io

    from PIL import Image
    z = np.load(shared("oxford_pets_subset.npz"))
    for i in range(len(z["label"])):
        if int(z["label"][i]) < 2:
            img = Image.open(io.BytesIO(z["jpeg"][z["offsets"][i]:z["offsets"][i + 1]].tobytes()))
            d = tmp_path / "pets" / str(z["breed"][i])
            d.mkdir(parents=True, exist_ok=True)
            img.save(d / f"{i}.jpg")
    run = cnnlab.train("simple_cnn_gap", data=str(tmp_path / "pets"), epochs=2, batch_size=8, workers=0,
                       val_split=0.25, out=tmp_path / "run", progress=False)
    rows = run.metrics()
    assert len(rows) == 2 and rows[0]["val_top1"] is not None
    assert run.config["data"]["classes"] == sorted(run.config["data"]["classes"]) and len(run.config["data"]["classes"]) == 2
    model = cnnlab.create_model(weights=run.path / "checkpoints" / "last.pt")
    assert model.labels == run.config["data"]["classes"]


@pytest.mark.slow
def test_custom_conv_and_adversarial_training_hooks(cifar_train_small, tmp_path):
    small = cifar_train_small.subset(range(200))
    run = cnnlab.train("simple_cnn_gap", data=small, epochs=1, custom_conv=True, batch_size=50,
                       out=tmp_path / "unfold", progress=False)
    assert run.metrics()[0]["train_loss"] < 2.5
    model = cnnlab.create_model(weights=run.path / "checkpoints" / "last.pt")  # plain nn.Conv2d again
    assert isinstance(model.net.conv1, torch.nn.Conv2d)
    adv = cnnlab.train("simple_cnn_gap", data=small, epochs=1, adv="fgsm-rs", eps=4 / 255, adv_steps=2,
                       robust_eval_images=20, batch_size=50, out=tmp_path / "adv", progress=False)
    row = adv.metrics()[0]
    assert 0.0 <= row["val_robust_top1"] <= row["val_top1"] + 1e-9


def test_a_bare_module_trains(cifar_train_small, tmp_path):
    """A user's own nn.Module trains through cnnlab.train without being wrapped first."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 10))
    run = cnnlab.train(net, data=cifar_train_small.subset(range(200)), epochs=1, batch_size=50, lr=0.01,
                       out=tmp_path / "bare", progress=False)
    row = run.metrics()[0]
    assert row["train_loss"] < 2.5 and row["val_top1"] is not None
    assert run.config["model"]["num_classes"] == 10


def test_tensorboard_events_without_importing_tensorflow(tmp_path):
    """A run writes its TensorBoard events through TensorBoard's own stub: TensorFlow, when installed,
    is never imported (it cost 20-30 s before the first epoch on a loaded machine)."""
    import subprocess
    import sys
    code = ("import sys, cnnlab\n"
            "from cnnlab.data import shapes\n"
            f"cnnlab.train('softmax_regression', data=shapes(60, 32), epochs=1, out=r'{tmp_path / 'r'}', progress=False)\n"
            "print('tensorflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert list((tmp_path / "r" / "tb").rglob("events.out.tfevents.*"))


def _tensors(obj):
    """Every tensor inside a checkpoint's nested dicts and lists."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def _close(a: dict, b: dict, device: torch.device) -> bool:
    """Equal weights: bit for bit on the CPU, within a GPU's determinism (cuDNN's autotuned kernels) elsewhere."""
    if device.type == "cpu":
        return all(torch.equal(a[k], b[k]) for k in a)
    return all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-2, atol=1e-3) for k in a)


@pytest.mark.slow
@pytest.mark.device
def test_a_run_moves_between_devices_through_its_checkpoints(cifar_train_small, tmp_path, device):
    """A run stopped on the session's device resumes on the CPU, one stopped on the CPU resumes on the
    device; the checkpoints hold CPU tensors only, so each loads anywhere."""
    data = cifar_train_small.subset(range(300))
    opts = {"data": data, "epochs": 2, "batch_size": 100, "lr": 0.05, "optimizer": "sgd", "model_kwargs": TINY_RESNET, "ema": 0.9,
                "augment": "crop4,flip", "progress": False, "seed": 1}
    straight = cnnlab.train("course_resnet", out=tmp_path / "straight", device="cpu", **opts)
    for i, (first, then) in enumerate(((device, "cpu"), ("cpu", device))):
        out = tmp_path / f"leg{i}"
        cnnlab.train("course_resnet", out=out, stop_after=1, device=first, **opts)
        ckpt = torch.load(out / "checkpoints/last.pt", weights_only=True)
        assert {t.device.type for t in _tensors(ckpt)} == {"cpu"} and ckpt["device"].startswith(str(first)[:3])
        resumed = resume(out, progress=False, data=data, device=then)
        assert Run.open(resumed.path).config["device"].startswith(torch.device(then).type)
        assert _close(_weights(straight.path / "checkpoints/last.pt"), _weights(out / "checkpoints/last.pt"), device)


@pytest.mark.device
def test_mixed_precision_trains_and_fp16_needs_a_gpu(cifar_train_small, tmp_path, device):
    data = cifar_train_small.subset(range(200))
    run = cnnlab.train("simple_cnn_bn", data=data, epochs=1, batch_size=50, out=tmp_path / "bf16", precision="bf16",
                       device=device, progress=False)
    row = run.metrics()[-1]
    assert row["train_loss"] < 2.6 and 0 <= row["val_top1"] <= 1 and run.config["precision"] == "bf16"
    if device.type == "cpu":
        with pytest.raises(CnnlabError, match="--precision fp16 needs a GPU"):
            cnnlab.train("simple_cnn_bn", data=data, epochs=1, out=tmp_path / "fp16", precision="fp16",
                         device=device, progress=False)
        assert not (tmp_path / "fp16").exists()
        return
    run = cnnlab.train("simple_cnn_bn", data=data, epochs=2, batch_size=50, out=tmp_path / "fp16", precision="fp16",
                       device=device, progress=False, stop_after=1)
    assert torch.load(run.path / "checkpoints/last.pt", weights_only=True)["scaler"]["scale"] > 0
    assert len(resume(run.path, progress=False, data=data).metrics()) == 2


def test_the_gradient_scaler_path_resumes_exactly(cifar_train_small, tmp_path, monkeypatch):
    """fp16's loss scaling (scale, unscale for clipping, step, update, its state in the checkpoint), run on the
    CPU with an enabled scaler standing in for a GPU's: resume stays exact."""
    import importlib
    fit_module = importlib.import_module("cnnlab.train.fit")  # the module (cnnlab.train.fit is also the function)
    monkeypatch.setattr(fit_module, "grad_scaler", lambda device, precision: torch.amp.GradScaler(
        device.type, init_scale=2.0 ** 10, growth_interval=2))
    data = cifar_train_small.subset(range(200))
    opts = {"data": data, "epochs": 2, "batch_size": 50, "lr": 0.05, "optimizer": "sgd", "clip_grad": 1.0, "progress": False}
    straight = cnnlab.train("simple_cnn_bn", out=tmp_path / "straight", **opts)
    killed = cnnlab.train("simple_cnn_bn", out=tmp_path / "killed", stop_after=1, **opts)
    state = torch.load(killed.path / "checkpoints/last.pt", weights_only=True)["scaler"]
    assert state["scale"] == 2.0 ** 11 and state["_growth_tracker"] == 1  # 3 finite steps: grown once, then 1
    resume(killed.path, progress=False, data=data)
    a, b = _weights(straight.path / "checkpoints/last.pt"), _weights(killed.path / "checkpoints/last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_gpu_checks_for_nan_without_waiting_every_step():
    from cnnlab.train.fit import _NonFinite
    bad = _NonFinite(torch.device("cpu"))
    for step, loss in enumerate([1.0, 0.5, float("nan"), float("inf")]):
        bad.record(torch.tensor(loss), step)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1, batch 3"):
        bad.check(0, 10, None, 0.1)


@pytest.mark.slow
@pytest.mark.device
def test_compiled_training_follows_the_eager_one(cifar_train_small, tmp_path, device):
    data = cifar_train_small.subset(range(200))
    opts = {"data": data, "epochs": 1, "batch_size": 50, "lr": 0.05, "optimizer": "sgd", "progress": False, "device": device,
                "precision": "fp32"}
    eager = cnnlab.train("simple_cnn_bn", out=tmp_path / "eager", **opts).metrics()[-1]
    compiled = cnnlab.train("simple_cnn_bn", out=tmp_path / "compiled", compile=True, **opts).metrics()[-1]
    assert compiled["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-3)
    assert compiled["val_top1"] == pytest.approx(eager["val_top1"], abs=0.05)
    state = _weights(tmp_path / "compiled" / "checkpoints/last.pt")  # the model itself is saved, not the wrapper
    assert not any(k.startswith("_orig_mod") for k in state)


@pytest.mark.slow
def test_resume_is_exact_with_every_option_of_the_airbench_recipe(cifar_train_small, tmp_path):
    from cnnlab.models.airbench import OPTIONS, option_values
    data = cifar_train_small.subset(range(400))
    every = option_values(OPTIONS)
    opts = dict(data=data, epochs=3, progress=False, seed=5, model_kwargs={"widths": "8,16,16"}, val_split=0.25,
                **{**every, "batch_size": 100, "lookahead": 2, "freeze_after": {"whiten.bias": 1.5},
                   "proxy_args": {"widths": "4,8,8"}, "proxy_every": 2,
                   "schedule": "linear", "lr_end": 0.05, "ema": 0.9})
    straight = cnnlab.train("airbench", out=tmp_path / "straight", **opts)
    cnnlab.train("airbench", out=tmp_path / "killed", stop_after=1, **opts)
    resume(tmp_path / "killed", progress=False, data=data, stop_after=2)  # crosses the bias's freezing point
    resumed = resume(tmp_path / "killed", progress=False, data=data)
    a = torch.load(straight.path / "checkpoints/last.pt", weights_only=True)
    b = torch.load(resumed.path / "checkpoints/last.pt", weights_only=True)
    for part in ("state_dict", "train_state_dict"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    proxy_a, proxy_b = a["proxy"]["state_dict"], b["proxy"]["state_dict"]  # the selecting proxy resumed too
    assert all(torch.equal(proxy_a[k], proxy_b[k]) for k in proxy_a)
    assert a["lookahead"] is not None and len(a["optimizer"]["optimizers"]) == 2
    assert [r["train_loss"] for r in straight.metrics()] == [r["train_loss"] for r in resumed.metrics()]
