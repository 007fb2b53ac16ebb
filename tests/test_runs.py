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
    from PIL import Image

    import cnnlab
    net = cnnlab.create_model("cnn11").net
    path = save_filters(net, tmp_path / "f.png")
    w, h = Image.open(path).size
    assert w > 3 * h  # 64 filters as 4 rows of 16
    assert save_filters(cnnlab.create_model("mlp").net, tmp_path / "none.png") is None


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB file system (tmpfs), where the machine lets this process mount one (root)."""
    import subprocess
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=False,
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a small tmpfs here ({e}); the fake full disk tests cover the same code")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'mount failed'}, it needs root); "
                    "the fake full disk tests cover the same code")
    yield disk
    subprocess.run(["umount", str(disk)], check=False, capture_output=True, timeout=30)


def test_torch_save_failing_like_on_a_full_disk_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    """torch's zip writer reports a full disk as RuntimeError, not OSError: still one sentence, no temp file."""
    path = tmp_path / "last.pt"
    atomic_save({"a": torch.ones(3)}, path)

    def zip_writer_fails(obj, f, *a, **k):
        f.write(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")
    monkeypatch.setattr(torch, "save", zip_writer_fails)
    with pytest.raises(CnnlabError, match=r"Could not write .*last\.pt.*previous checkpoint there is intact") as e:
        atomic_save({"a": torch.zeros(3)}, path)
    assert "\n" not in str(e.value)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_text_write_failing_with_enospc_is_one_sentence(tmp_path, monkeypatch):
    import errno

    from cnnlab import runs
    run = Run.create(tmp_path / "r", {"config": {}})
    run.write_final({"status": "finished"})
    real_open = open

    def full(path, mode="r", *a, **k):
        if "w" in mode or "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *a, **k)
    monkeypatch.setattr(runs, "open", full, raising=False)
    with pytest.raises(CnnlabError, match="no space left on the disk.*previous file there is intact"):
        run.write_final({"status": "diverged"})
    with pytest.raises(CnnlabError, match="metrics.jsonl.*no space left"):
        run.append_metrics({"epoch": 1})
    monkeypatch.undo()
    assert run.final() == {"status": "finished"} and not list(run.path.glob(".*tmp*"))


def test_a_real_full_disk_keeps_the_last_checkpoint(small_disk):
    path = small_disk / "checkpoints" / "last.pt"
    atomic_save({"w": torch.ones(64, 1024)}, path)  # 256 KB
    with pytest.raises(CnnlabError, match="no space left on the disk.*previous checkpoint there is intact") as e:
        atomic_save({"w": torch.zeros(1024, 1024)}, path)  # 4 MB on a 2 MB disk
    assert "\n" not in str(e.value)
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(64, 1024))


def test_report_on_a_real_full_disk_is_one_sentence(small_disk):
    from click.testing import CliRunner

    from cnnlab.cli import main
    run = Run.create(small_disk / "run", {"config": {"model": "m"}})
    for e in (1, 2):
        run.append_metrics({"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2, "val_error": 0.5, "lr": 0.1})
    with open(small_disk / "filler", "wb", buffering=0) as f:  # fill the disk to its last bytes
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    r = CliRunner().invoke(main, ["report", str(run.path)])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("error: Could not write") and "no space left on the disk" in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert not (run.path / "report.html").exists() and not list(run.path.glob(".*tmp*"))


def test_force_removes_only_the_runs_own_files(tmp_path):
    run = Run.create(tmp_path / "r", {"config": {"model": "m"}})
    run.append_metrics({"epoch": 1, "train_loss": 1.0})
    atomic_save({"a": torch.ones(1)}, run.path / "checkpoints" / "last.pt")
    (run.path / "figures" / "curves.png").write_bytes(b"png")
    (run.path / "tb").mkdir()
    (run.path / "tb" / "events.out.tfevents.1.host").write_bytes(b"ev")
    mine = {"notes.txt": "my notes", "figures/my_plot.png": "mine", "checkpoints/keep.pt": "mine too"}
    for rel, text in mine.items():
        (run.path / rel).write_text(text)
    with pytest.raises(CnnlabError, match="already holds a run; continue it with --resume.*--force"):
        Run.create(run.path, {"config": {"model": "n"}})
    again = Run.create(run.path, {"config": {"model": "n"}}, force=True)
    assert again.config == {"config": {"model": "n"}} and again.metrics() == []
    assert not (run.path / "checkpoints" / "last.pt").exists() and not (run.path / "figures" / "curves.png").exists()
    assert not list((run.path / "tb").iterdir())
    assert all((run.path / rel).read_text() == text for rel, text in mine.items())


def test_force_never_replaces_a_users_file_of_a_run_files_name(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.json").write_text('{"learning": "my own settings"}')
    for force in (False, True):
        with pytest.raises(CnnlabError, match="holds 'config.json', which cnnlab did not write"):
            Run.create(folder, {"config": {}}, force=force)
    assert (folder / "config.json").read_text() == '{"learning": "my own settings"}'
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"jpeg")
    with pytest.raises(CnnlabError, match="already holds files.*--force"):
        Run.create(tmp_path / "photos", {"config": {}})
    Run.create(tmp_path / "photos", {"config": {}}, force=True)
    assert (tmp_path / "photos" / "cat.jpg").read_bytes() == b"jpeg"


def test_a_run_has_one_writer(tmp_path):
    run = Run.create(tmp_path / "r", {"config": {}})
    with run.locked(), pytest.raises(CnnlabError, match=r"being written by another cnnlab process \(pid \d+\)"), \
            Run(run.path).locked():
        pass
    with Run(run.path).locked():  # released
        pass


def test_compare_takes_rows_without_a_value_odd_lines_and_dollar_signs(tmp_path):
    from click.testing import CliRunner

    from cnnlab.cli import main
    run = Run.create(tmp_path / "$x_$ run", {"config": {"model": "m"}})
    with open(run.path / "metrics.jsonl", "w") as f:
        f.write(json.dumps({"epoch": 1, "val_loss": 1.0, "val_error": 0.5, "lr": 0.1}) + "\n")  # no train_loss
        f.write("[1, 2, 3]\n")  # not an object
        f.write("7\n")
        f.write("[" * 5000 + "]" * 5000 + "\n")  # nested deeper than any parser should recurse
        f.write(json.dumps({"epoch": 2, "train_loss": "n/a", "val_loss": 0.9, "val_error": 0.4, "lr": 0.05,
                            "val_top1": "high"}) + "\n")
        f.write(json.dumps({"epoch": 3, "train_loss": 0.8, "val_loss": 0.8, "val_error": 0.3, "lr": 0.01,
                            "val_top1": 0.7}) + "\n")
    assert [r["epoch"] for r in run.metrics()] == [1, 2, 3]
    r = CliRunner().invoke(main, ["compare", str(run.path), "--out", str(tmp_path / "c"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["runs"][0]["best_epoch"] == 3 and doc["runs"][0]["best_val_top1"] == 0.7
    assert (tmp_path / "c" / "curves.png").stat().st_size > 5000
