"""The tour: summary.json, inspect.json and the predictions figure from the bundled model and photos;
its sections (seeing inside, fooling) are merged into the summary and a failing one surfaces."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

import cnnlab.tour as tour
from cnnlab.cli import main
from cnnlab.errors import CnnlabError


@pytest.fixture(scope="module")
def core_tour(tmp_path_factory):
    """The tour without its sections and report (each section is tested on its own below)."""
    out = tmp_path_factory.mktemp("tour") / "run"
    return tour.run_tour(out, sections=(), report=False)


def test_tour_writes_summary_and_figures(core_tour):
    out = core_tour.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["name"] == "efficientnet_lite0"
    assert set(summary["predict"]["top"]) == {"chelsea", "coffee", "rocket", "astronaut", "motorcycle_left"}
    top = summary["predict"]["top"]
    assert {p["index"] for p in top["chelsea"]} & set(range(281, 286))
    assert top["coffee"][0]["label"] == "espresso"
    assert all(len(v) == 3 for v in top.values())
    assert summary["inspect"]["params"] == 4_652_008 and summary["inspect"]["logits_node"] == "net__fc"
    inspect = json.loads((out / "inspect.json").read_text())
    assert inspect["nodes"] == summary["inspect"]["nodes"] and len(inspect["layers"]) > 100
    fig = Image.open(out / summary["predict"]["figure"])
    assert fig.size[0] > 1000 and fig.size[1] > 300
    t = summary["timings_s"]
    assert {"load_model", "load_photos", "inspect", "predict", "predictions_figure", "total"} <= set(t)
    assert t["total"] >= t["inspect"] + t["predict"]
    assert summary["failed"] == {} and core_tour.failed == {}


def test_tour_refuses_non_empty_dir_without_force(core_tour):
    with pytest.raises(CnnlabError, match="not empty.*--force"):
        tour.run_tour(core_tour.out, sections=(), report=False)
    r = CliRunner().invoke(main, ["tour", "--out", str(core_tour.out)])
    assert r.exit_code == 1 and "--force" in r.stderr


def test_sections_merged_and_failures_surface(tmp_path, monkeypatch):
    calls = []

    def good(model, photos, out):
        calls.append((model.name, sorted(photos), out))
        assert all(x.shape == (1, 3, 224, 224) for x in photos.values())
        return {"answer": 42}

    def broken(model, photos, out):
        raise RuntimeError("boom in section")

    monkeypatch.setattr(tour, "SECTIONS", {"good": good, "broken": broken})
    result = tour.run_tour(tmp_path / "t", sections=("good", "broken"), report=False)
    s = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert s["good"] == {"answer": 42} and calls[0][2] == tmp_path / "t"
    assert "boom in section" in s["broken"]["error"] and "RuntimeError" in s["broken"]["traceback"]
    assert result.failed == {"broken": "RuntimeError: boom in section"}
    assert "good" in s["timings_s"] and "broken" in s["timings_s"]


def test_seeing_inside_from_one_pass(lite0, tmp_path):
    photos = {n: tour.load_images(tour.bundled_photo(n), lite0) for n in ("chelsea", "coffee")}
    (tmp_path / "figures").mkdir()
    out = tour.seeing_inside(lite0, photos, tmp_path)
    json.dumps(out)
    assert set(out["featmaps"]) == {"chelsea", "coffee"}
    assert out["saliency"]["chelsea"]["target"] in ("tiger cat", "Egyptian cat", "tabby")
    assert out["gradcam"]["coffee"]["layer"] == list(lite0.layers())[-1]
    for f in out["figures"]:
        assert (tmp_path / f).stat().st_size > 5000


def test_fooling_forces_toaster_and_descends(lite0, chelsea, tmp_path):
    (tmp_path / "figures").mkdir()
    d = tour.fooling(lite0, {"chelsea": chelsea}, tmp_path)
    json.dumps(d)
    assert d["forced"]["success"] and d["forced"]["final"]["label"] == "toaster"
    assert d["logit_descent"]["success"]
    assert d["logit_descent"]["final"]["index"] != d["logit_descent"]["original"]["index"]
    # why the probability version moves less: its gradient is smaller at the start
    assert d["prob_descent"]["grad_norms"][0] < d["logit_descent"]["grad_norms"][0]
    for path in d["figures"].values():
        assert (tmp_path / path).stat().st_size > 1000
