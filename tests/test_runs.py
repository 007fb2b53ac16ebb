"""The run directory: atomic writes, refusing to overwrite, reading metrics back, figures."""
from __future__ import annotations

import json

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.runs import Run, atomic_save, compare_runs, save_filters


def test_create_refuses_a_used_directory(tmp_path):
    run = Run.create(tmp_path / "r", {"config": {"model": "m"}})
    assert (run.path / "config.json").exists() and (run.path / "checkpoints").is_dir()
    with pytest.raises(CnnlabError, match="already holds a run.*--resume"):
        Run.create(tmp_path / "r", {})
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    with pytest.raises(CnnlabError, match="already holds files"):
        Run.create(tmp_path / "mine", {})
    assert (tmp_path / "mine" / "notes.txt").read_text() == "my notes"


def test_metrics_survive_a_torn_last_line_and_truncate_on_resume(tmp_path):
    run = Run.create(tmp_path / "r", {})
    for e in (1, 2, 3):
        run.append_metrics({"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.0, "val_error": 0.5, "lr": 0.1,
                            "train_top1": 0.5})
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "train_lo')  # killed while writing
    assert [r["epoch"] for r in run.metrics()] == [1, 2, 3]
    run.truncate_metrics(2)
    assert [r["epoch"] for r in run.metrics()] == [1, 2]
    assert run.plot_curves().stat().st_size > 5000


def test_atomic_save_all_or_nothing(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    atomic_save({"a": torch.ones(3)}, path)
    real = torch.save

    def crash(obj, f, *a, **k):
        real({"a": torch.zeros(3)}, f)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(CnnlabError, match="previous checkpoint there is intact"):
        atomic_save({"a": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_open_and_compare_errors(tmp_path):
    with pytest.raises(CnnlabError, match="not a cnnlab run directory"):
        Run.open(tmp_path)
    Run.create(tmp_path / "empty", {})
    with pytest.raises(CnnlabError, match="None of the runs has finished an epoch"):
        compare_runs([tmp_path / "empty"], tmp_path / "x.png")
    with pytest.raises(CnnlabError, match="no checkpoint yet"):
        Run.open(tmp_path / "empty").checkpoint("last")
    assert json.loads((tmp_path / "empty" / "config.json").read_text()) == {}


def test_first_layer_filters_image(tmp_path):
    import cnnlab
    from PIL import Image
    net = cnnlab.create_model("cnn11").net
    path = save_filters(net, tmp_path / "f.png")
    w, h = Image.open(path).size
    assert w > 3 * h  # 64 filters as 4 rows of 16
    assert save_filters(cnnlab.create_model("mlp").net, tmp_path / "none.png") is None


def strict_load(text: str):
    """json.loads that fails on a bare NaN, Infinity or -Infinity."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))


def test_the_one_json_writer_is_strict_and_says_why_a_value_is_null(tmp_path):
    import numpy as np

    from cnnlab.runs import json_text, write_json
    obj = {"loss": float("nan"), "median": float("inf"), "ok": 0.5, "per": [1.0, float("nan")],
           "arr": np.array([0.25, np.nan]), "t": torch.tensor(2.0), "path": tmp_path,
           "known": None, "known_null": "my own reason"}
    d = strict_load(json_text(obj))
    assert d["loss"] is None and d["loss_null"] == "NaN: undefined here"
    assert d["median"] is None and "inf" in d["median_null"] and d["ok"] == 0.5
    assert d["per"] == [1.0, None] and "entries [1]" in d["per_null"]
    assert d["arr"] == [0.25, None] and d["t"] == 2.0 and d["path"] == str(tmp_path)
    assert d["known_null"] == "my own reason"
    write_json(tmp_path / "x.json", [float("nan")])
    assert strict_load((tmp_path / "x.json").read_text()) == [None]
