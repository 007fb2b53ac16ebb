"""Test-time augmentation (none / flip / flip-translate) in cnnlab.train.evaluate, the config and the CLI,
on the real pretrained CIFAR-10 ResNet-20 and real CIFAR-10 test images."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cnnlab.cli import main
from cnnlab.data.base import ImageArrays
from cnnlab.errors import CnnlabError
from cnnlab.models import recipe
from cnnlab.train import TrainConfig, evaluate, predict_labels
from cnnlab.train.config import tta_mode
from cnnlab.train.evaluate import tta_logits, tta_views

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def small_set(cifar_test_small) -> ImageArrays:
    x, y = cifar_test_small
    return ImageArrays((x * 255).round().to(torch.uint8), y, CLASSES, "cifar10-test-256")


def test_modes_and_backward_compatible_values():
    assert tta_mode(True) == tta_mode("flip") == tta_mode("FLIP") == "flip"
    assert tta_mode(False) == tta_mode(None) == tta_mode("none") == "none"
    assert tta_mode("flip-translate") == tta_mode("flip_translate") == "flip-translate"
    assert TrainConfig(tta=True).tta == "flip"  # configs and checkpoints written with tta: true
    assert TrainConfig.from_dict({"tta": False}).tta == "none"
    assert recipe("airbench")["tta"] == "flip-translate"


@pytest.mark.parametrize("bad", ["mirror-crop", "flip-translate-5", 3])
def test_bad_mode_is_one_sentence(bad):
    with pytest.raises(CnnlabError) as e:
        tta_mode(bad)
    msg = str(e.value)
    assert str(bad) in msg and "flip-translate" in msg and msg.count(". ") == 0 and msg.endswith(".")
    with pytest.raises(CnnlabError):
        TrainConfig(tta=bad)


def test_translate_views_are_real_one_pixel_shifts(cifar_test_small):
    x = cifar_test_small[0][:8]
    views = tta_views(x, "flip-translate")
    assert len(views) == 6
    assert sum(w for w, _ in views) == pytest.approx(1.0)
    weights = [w for w, _ in views]
    assert weights[:2] == [0.25, 0.25] and sum(weights[:2]) == pytest.approx(0.5)  # the unshifted pair: half
    assert torch.equal(views[0][1], x) and torch.equal(views[1][1], x.flip(3))
    mirror = x.flip(3)
    for (_, v), src, d in zip(views[2:], [x, mirror, x, mirror], [1, 1, -1, -1]):
        assert v.shape == x.shape and not torch.equal(v, src)
        if d == 1:  # moved down-right: pixel (i, j) of the view is (i-1, j-1) of the source
            assert torch.equal(v[..., 1:, 1:], src[..., :-1, :-1])
            assert torch.equal(v[..., 0, 1:], src[..., 1, :-1])  # reflected border row
        else:  # moved up-left
            assert torch.equal(v[..., :-1, :-1], src[..., 1:, 1:])
            assert torch.equal(v[..., -1, :-1], src[..., -2, 1:])
    assert [w for w, _ in tta_views(x, True)] == [0.5, 0.5] and len(tta_views(x, "none")) == 1


def test_tta_logits_is_the_weighted_mean_of_the_views(resnet20, cifar_test_small):
    x = cifar_test_small[0][:16]
    with torch.inference_mode():
        expect = sum(w * resnet20(v) for w, v in tta_views(x, "flip-translate"))
        got = tta_logits(resnet20, x, "flip-translate")
        plain = resnet20(x)
    assert torch.allclose(got, expect, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-3)


def test_evaluate_and_predict_with_each_mode_on_real_data(resnet20, small_set):
    res = {m: evaluate(resnet20, small_set, batch_size=100, tta=m, workers=0)
           for m in ("none", "flip", "flip-translate")}
    assert evaluate(resnet20, small_set, batch_size=100, tta=True, workers=0).top1 == res["flip"].top1
    assert evaluate(resnet20, small_set, batch_size=100, tta=False, workers=0).top1 == res["none"].top1
    n = len(small_set)
    for r in res.values():
        assert r.n == n and 0.6 < r.top1 <= r.top5 <= 1  # ResNet-20 scores ~81% on the JPEG-75 test set
    # averaging over views does not hurt this model by more than a few images of 256
    assert res["flip-translate"].top1 >= res["none"].top1 - 3 / n
    assert res["flip-translate"].loss != res["flip"].loss != res["none"].loss
    pred = predict_labels(resnet20, small_set, batch_size=100, tta="flip-translate", workers=0)
    correct = sum(r[i] for i, r in enumerate(res["flip-translate"].confusion))
    assert pred.shape == (n,) and int((pred == small_set.y).sum()) == correct
    with pytest.raises(CnnlabError, match="unknown"):
        evaluate(resnet20, small_set, tta="sideways")


def test_cli_eval_and_predict_set_take_the_mode(resnet20, small_set, tmp_path):
    ckpt = tmp_path / "r20.pt"
    torch.save({"cnnlab": resnet20.checkpoint_meta(), "state_dict": resnet20.net.state_dict()}, ckpt)
    npz = tmp_path / "test256.npz"
    np.savez(npz, x=small_set.x.permute(0, 2, 3, 1).numpy(), y=small_set.y.numpy())
    run = CliRunner()
    out = {}
    for args in (["--tta", "flip-translate"], ["--tta"], ["--no-tta"], []):
        r = run.invoke(main, ["eval", str(ckpt), "--data", str(npz), "--split", "all", "--json", *args])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        out[" ".join(args)] = doc
    assert out["--tta"]["tta"] == "flip" and out[""]["tta"] == out["--no-tta"]["tta"] == "none"
    assert out["--tta flip-translate"]["tta"] == "flip-translate"
    lib = evaluate(resnet20, small_set, batch_size=256, tta="flip-translate", workers=0)
    assert out["--tta flip-translate"]["top1"] == pytest.approx(lib.top1)
    r = run.invoke(main, ["eval", str(ckpt), "--data", str(npz), "--tta", "sideways"])
    assert r.exit_code != 0 and "flip-translate" in r.output
    r = run.invoke(main, ["predict-set", str(ckpt), "--data", str(npz), "--tta", "flip-translate",
                          "--out", str(tmp_path), "--filename", "labels.txt"])
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "labels.txt").read_text().split()
    pred = predict_labels(resnet20, small_set, batch_size=256, tta="flip-translate", workers=0)
    assert lines == [str(int(p)) for p in pred]


def test_cli_train_records_the_mode(small_set, tmp_path):
    npz = tmp_path / "train.npz"
    np.savez(npz, x=small_set.x.permute(0, 2, 3, 1).numpy(), y=small_set.y.numpy())
    common = ["train", "--data", str(npz), "--epochs", "1", "--batch-size", "64", "--quiet", "--model", "course_resnet",
              "--model-arg", "strides=1,2", "--model-arg", "width=8", "--num-classes", "10"]
    r = CliRunner().invoke(main, [*common, "--tta", "flip-translate", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    conf = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert conf["tta"] == "flip-translate"
    r = CliRunner().invoke(main, [*common, "--tta", "flip", "--no-tta", "--out", str(tmp_path / "run2")])
    assert r.exit_code != 0 and "--no-tta" in r.output


def test_evaluation_reports_map_and_per_class_precision_recall(resnet20, small_set):
    """Beside top-1/top-5 and mean class accuracy: mean average precision from the probabilities, and
    per-class precision/recall, each checked against scikit-learn on the model's own probabilities."""
    from sklearn.metrics import average_precision_score, precision_score, recall_score
    res = evaluate(resnet20, small_set, batch_size=100, workers=0)
    with torch.inference_mode():
        probs = torch.softmax(resnet20(small_set.floats()), 1).numpy()
    y = small_set.y.numpy()
    expect_map = np.mean([average_precision_score(y == c, probs[:, c]) for c in np.unique(y)])
    assert res.mean_average_precision == pytest.approx(expect_map, abs=1e-6)
    assert res.top1 < res.mean_average_precision <= 1  # ranking is easier than deciding
    pred = probs.argmax(1)
    rows = {r["index"]: r for r in res.per_class if r["n"]}
    assert [rows[c]["recall"] for c in sorted(rows)] == pytest.approx(
        recall_score(y, pred, labels=sorted(rows), average=None).tolist())
    assert [rows[c]["precision"] for c in sorted(rows)] == pytest.approx(
        precision_score(y, pred, labels=sorted(rows), average=None).tolist())
    assert np.mean([r["recall"] for r in rows.values()]) == pytest.approx(res.mean_class_accuracy)
    doc = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert doc["mean_average_precision"] == res.mean_average_precision and "precision" in doc["per_class"][0]
    assert "precision" in res.table() and "AP" in res.table()


def test_a_bare_module_evaluates_like_the_wrapped_one(small_set):
    import torchvision

    import cnnlab
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    data = small_set.subset(range(48))
    bare = evaluate(net, data, batch_size=16, workers=0)
    wrapped = evaluate(cnnlab.wrap(net), data, batch_size=16, workers=0)
    assert bare.to_dict() == wrapped.to_dict()
    assert torch.equal(predict_labels(net, data, workers=0), predict_labels(cnnlab.wrap(net), data, workers=0))


@pytest.mark.device
def test_evaluation_on_the_device_agrees_with_the_cpu(resnet20, cifar_test_small, device):
    import copy
    x, y = cifar_test_small
    data = ImageArrays((x[:200] * 255).round().to(torch.uint8), y[:200], CLASSES, "cifar10-test")
    on = evaluate(resnet20, data, batch_size=64, tta="flip")
    assert resnet20.device == device
    ref = evaluate(copy.deepcopy(resnet20).cpu(), data, batch_size=64, tta="flip")
    assert abs(on.top1 - ref.top1) <= 0.01 and on.loss == pytest.approx(ref.loss, rel=1e-3)
    if device.type == "cpu":
        assert on.to_dict() == ref.to_dict()
        return
    mixed = evaluate(resnet20, data, batch_size=64, tta="flip", precision="auto")  # bf16 or fp16 on a GPU
    assert abs(mixed.top1 - ref.top1) <= 0.02
