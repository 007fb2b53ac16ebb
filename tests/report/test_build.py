"""The HTML report: built from run directories made here (a real short training run, real matplotlib
figures, JSON results shaped like the trainer's, the attack's and the tour's), parsed back with
html.parser to check sections, tables, embedded images, escaping and the no-overwrite rules."""
from __future__ import annotations

import base64
import io
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.errors import CnnlabError
from cnnlab.report import build_report, discover
from tests.conftest import shared

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Page(HTMLParser):
    """What a report contains: sections (id -> h2 title), every table (nested ones too) as rows of cell
    texts, images with their section, figcaptions, meta tags, scripts and any non-embedded link."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, str] = {}
        self.section_of_img: list[tuple[str | None, dict]] = []
        self.tables: list[tuple[str | None, list[list[str]]]] = []
        self.captions: list[tuple[str | None, str]] = []
        self.meta: list[dict] = []
        self.scripts = 0
        self.external: list[str] = []
        self._section: str | None = None
        self._open_tables: list[int] = []
        self._buffers: list[list[str]] = []  # open h2/figcaption/td/th texts (outer cells include inner text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            v = a.get(key)
            if v and not v.startswith(("data:", "#")):
                self.external.append(v)
        if tag == "section":
            self._section = a.get("id")
        elif tag == "script":
            self.scripts += 1
        elif tag == "meta":
            self.meta.append(a)
        elif tag == "img":
            self.section_of_img.append((self._section, a))
        elif tag == "table":
            self.tables.append((self._section, []))
            self._open_tables.append(len(self.tables) - 1)
        elif tag == "tr" and self._open_tables:
            self.tables[self._open_tables[-1]][1].append([])
        if tag in ("h2", "figcaption", "td", "th"):
            self._buffers.append([])

    def handle_endtag(self, tag):
        if tag in ("h2", "figcaption", "td", "th") and self._buffers:
            text = "".join(self._buffers.pop()).strip()
            if tag == "h2" and self._section:
                self.sections[self._section] = text
            elif tag == "figcaption":
                self.captions.append((self._section, text))
            elif self._open_tables and self.tables[self._open_tables[-1]][1]:
                self.tables[self._open_tables[-1]][1][-1].append(text)
        elif tag == "table" and self._open_tables:
            self._open_tables.pop()

    def handle_data(self, data):
        for buf in self._buffers:
            buf.append(data)


def parse(path: Path) -> Page:
    p = Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def decode_img(src: str) -> Image.Image:
    head, b64 = src.split(",", 1)
    assert head.startswith("data:image/") and head.endswith(";base64")
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def cell(page: Page, section: str, key: str) -> str:
    """The value beside `key` in the key/value tables of a section."""
    for sec, rows in page.tables:
        if sec == section:
            for row in rows:
                if len(row) >= 2 and row[0] == key:
                    return row[1]
    raise AssertionError(f"no row '{key}' in section {section}")


def savefig(path: Path, kind: str = "image") -> None:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(3, 2), dpi=80)
    ax = fig.subplots()
    ax.imshow(np.random.default_rng(len(path.name)).random((8, 8)))
    ax.set_title(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def epoch_rows(n: int = 12, percent: bool = False) -> list[dict]:
    """Rows with the trainer's keys (cnnlab.runs) following a cosine schedule."""
    rows, elapsed = [], 0.0
    for e in range(1, n + 1):
        lr = 0.05 * (1 + math.cos(math.pi * e / n))
        top1 = 0.93 - 0.6 * math.exp(-e / 3)
        elapsed += 31.5
        rows.append({"epoch": e, "train_loss": 2.1 * math.exp(-e / 4) + 0.15, "train_top1": top1 + 0.03,
                     "val_loss": 2.0 * math.exp(-e / 4) + 0.25, "val_top1": top1 * (100 if percent else 1),
                     "val_top5": min(1.0, top1 + 0.06), "val_error": 1 - top1, "lr": lr,
                     "images_per_s": 281.0, "epoch_s": 31.5, "elapsed_s": elapsed})
    if percent:
        for r in rows:
            del r["val_error"]
    return rows


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path / "run")


def make_run_dir(d: Path) -> Path:
    """A run directory such as train + eval + attack + explain would leave behind."""
    (d / "checkpoints").mkdir(parents=True)
    (d / "checkpoints" / "last.pt").write_bytes(b"\0" * 2048)
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in epoch_rows()))
    (d / "config.json").write_text(json.dumps({
        "config": {"model": "cifar_resnet20", "data": "cifar10", "epochs": 12, "batch_size": 128,
                   "optimizer": "sgd", "lr": 0.1, "milestones": [6, 9], "note": "<script>alert('x')</script>"},
        "model": {"name": "cifar_resnet20", "num_classes": 10, "input_size": [32, 32]}}))
    cm = np.random.default_rng(0).integers(0, 12, (10, 10))
    np.fill_diagonal(cm, 88)
    (d / "eval.json").write_text(json.dumps({
        "loss": 0.31, "top1": 0.912, "top5": 0.995, "mean_per_class_accuracy": 0.911, "labels": CIFAR,
        "confusion": cm.tolist(), "per_class": [{"class": c, "accuracy": 0.9, "n": 100} for c in CIFAR]}))
    (d / "attack.json").write_text(json.dumps({
        "method": "pgd", "success": True, "steps": 7, "linf": 4 / 255,
        "original": {"index": 285, "label": "Egyptian cat", "prob": 0.81},
        "final": {"index": 859, "label": "toaster", "prob": 0.93},
        "robustness": [{"transform": "flip", "label": "toaster", "prob": 0.41},
                       {"transform": "jpeg75", "label": "Egyptian cat", "prob": 0.66}]}))
    for name in ("filters", "featmaps_layer1", "gradcam_chelsea", "saliency_chelsea", "attack_rows",
                 "dream_channel5", "mystery"):
        savefig(d / "figures" / f"{name}.png", name)
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
        d / "figures" / "sample_cifar.png")
    return d


def test_report_has_every_section_the_run_produced(run_dir: Path) -> None:
    out = build_report(run_dir)
    assert out == run_dir / "report.html"
    page = parse(out)
    for sid in ("results", "curves", "confusion", "filters", "featmaps", "attribution", "featvis", "adversarial",
                "other", "details", "config", "files"):
        assert sid in page.sections, f"missing section {sid}: {page.sections}"
    assert page.sections["attribution"] == "Saliency and Grad-CAM"
    # self-contained: no script, nothing loaded from anywhere, a CSP that forbids the network
    assert page.scripts == 0 and page.external == []
    csp = [m for m in page.meta if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]
    # every image is a decodable embedded PNG; figure files land in the section their name says
    assert len(page.section_of_img) == 8 + 2  # 8 figure files + curves + confusion drawn by the report
    placed = {}
    for section, attrs in page.section_of_img:
        img = decode_img(attrs["src"])
        assert img.size[0] > 0
        placed[attrs["alt"]] = section
    assert placed["Gradcam chelsea"] == "attribution" and placed["Saliency chelsea"] == "attribution"
    assert placed["Filters"] == "filters" and placed["Featmaps layer1"] == "featmaps"
    assert placed["Attack rows"] == "adversarial" and placed["Dream channel5"] == "featvis"
    assert placed["Mystery"] == "other"
    assert placed["Training curves drawn from metrics.jsonl"] == "curves"
    assert placed["Confusion matrix drawn from eval.json"] == "confusion"


def test_report_reads_as_a_write_up(run_dir: Path) -> None:
    """Results first, then figures with captions that say what they show, then details, the configuration
    (folded) and the files last."""
    out = build_report(run_dir)
    page = parse(out)
    order = list(page.sections)
    assert order[0] == "results" and order[-3:] == ["details", "config", "files"]
    figures_at = [order.index(s) for s in ("curves", "confusion", "filters", "attribution", "adversarial")]
    assert figures_at == sorted(figures_at) and min(figures_at) > 0
    text = out.read_text()
    config = text[text.index('<section id="config">'):text.index("</section>", text.index('<section id="config">'))]
    assert "<details>" in config and config.index("<details>") < config.index("config.lr")
    captions = dict((c, s) for s, c in page.captions)
    assert any(c.startswith("The first convolution's filters") for c in captions)
    assert any("validation error from the validation accuracy" in c for c in captions)


def test_accuracies_are_in_percent(run_dir: Path) -> None:
    page = parse(build_report(run_dir))
    rows = epoch_rows()
    last = rows[-1]["val_top1"]
    assert cell(page, "results", "validation top-1 (last epoch)") == f"{100 * last:.2f}%"
    assert cell(page, "results", "validation error (last epoch)") == f"{100 * (1 - last):.2f}%"
    assert cell(page, "results", "best validation top-1") == f"{100 * last:.2f}% (epoch 12)"
    assert cell(page, "results", "top-1") == "91.20%" and cell(page, "results", "top-5") == "99.50%"
    every_epoch = [t for s, t in page.tables if s == "curves"][0]
    header = every_epoch[0]
    col = header.index("val_top1")
    assert [r[col] for r in every_epoch[1:]] == [f"{100 * r['val_top1']:.2f}%" for r in rows]
    assert every_epoch[1][header.index("lr")] == f"{rows[0]['lr']:.4g}"  # not an accuracy: as logged
    # a run that logged percent is not multiplied again
    d = run_dir.parent / "pct"
    d.mkdir()
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in epoch_rows(3, percent=True)))
    page = parse(build_report(d))
    assert cell(page, "results", "validation top-1 (last epoch)") == f"{epoch_rows(3, True)[-1]['val_top1']:.2f}%"


def test_each_curve_once(run_dir: Path) -> None:
    """The trainer's figures/curves.png is the same curves the report draws from metrics.jsonl: shown once."""
    savefig(run_dir / "figures" / "curves.png", "curves")
    page = parse(build_report(run_dir))
    curves = [a for s, a in page.section_of_img if s == "curves"]
    assert [a["alt"] for a in curves] == ["Training curves drawn from metrics.jsonl"]


def test_report_file_is_readable_by_everyone(run_dir: Path) -> None:
    out = build_report(run_dir)
    assert out.stat().st_mode & 0o777 == 0o644


def test_figures_are_never_squeezed(run_dir: Path) -> None:
    """No height cap on images (it shrank the saliency grid until its titles were unreadable); wide figures
    take a row of their own at the page's width, single images sit side by side."""
    out = build_report(run_dir)
    text = out.read_text()
    assert "max-height:560px" not in text.replace(" ", "")
    css = text[text.index("<style>"):text.index("</style>")]
    for rule in css.split("}"):
        if "img" in rule.split("{")[0]:
            assert "max-height" not in rule, rule
    big = run_dir / "figures" / "saliency_grid.png"
    Image.new("RGB", (900, 1200), "white").save(big)
    text = build_report(run_dir).read_text()
    at = text.index('alt="Saliency grid"')
    assert text.rfind("<figure", 0, at) == text.rfind('<figure class="sheet">', 0, at)
    at = text.index('alt="Sample cifar"')  # a 32-pixel image: enlarged 8x, pixels kept sharp, beside others
    assert text.rfind("<figure", 0, at) == text.rfind('<figure class="small pixelated">', 0, at)
    assert 'width="256"' in text[at:at + 200]


def test_report_tables_hold_the_runs_numbers(run_dir: Path) -> None:
    page = parse(build_report(run_dir))
    assert cell(page, "results", "model") == "cifar_resnet20"
    assert cell(page, "results", "epochs") == "12 of 12"
    assert cell(page, "config", "config.lr") == "0.1"
    assert cell(page, "config", "config.milestones") == "6, 9"
    per_class = [r for s, t in page.tables if s == "details" for r in t if r and r[0] in CIFAR]
    assert [r[0] for r in per_class] == CIFAR
    assert cell(page, "results", "method") == "pgd"
    robustness = [r for s, t in page.tables if s == "details" for r in t if r and r[0] in ("flip", "jpeg75")]
    assert [r[1] for r in robustness] == ["toaster", "Egyptian cat"]
    every_epoch = [t for s, t in page.tables if s == "curves"][0]
    assert len(every_epoch) == 1 + len(epoch_rows())  # header + one row per epoch
    assert cell(page, "files", "checkpoints/last.pt").endswith("KB")


def test_report_escapes_text_from_files(run_dir: Path) -> None:
    out = build_report(run_dir)
    page = parse(out)
    assert page.scripts == 0
    assert cell(page, "config", "config.note") == "<script>alert('x')</script>"  # shown as text
    assert "&lt;script&gt;" in out.read_text()


@pytest.mark.slow
def test_report_from_a_real_training_run(tmp_path: Path) -> None:
    """cnnlab.train on 64 real CIFAR-10 images for 2 epochs, then the report of its directory."""
    import cnnlab
    run = cnnlab.train("cifar_resnet20", data=str(shared("cifar10_train_first200_lossless.npz")), epochs=2,
                       out=tmp_path / "r20", progress=False, batch_size=32, limit=64)
    out = build_report(run.path)
    page = parse(out)
    assert {"results", "config", "curves", "filters", "files"} <= set(page.sections)
    metrics = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert cell(page, "results", "epochs").startswith("2 of 2")
    assert cell(page, "results", "validation loss (last epoch)") == f"{metrics[-1]['val_loss']:.4g}"
    assert cell(page, "results", "validation top-1 (last epoch)") == f"{100 * metrics[-1]['val_top1']:.2f}%"
    assert [a["alt"] for s, a in page.section_of_img if s == "curves"] == ["Training curves drawn from metrics.jsonl"]
    assert page.external == []


def test_broken_files_become_warnings_not_failures(tmp_path: Path) -> None:
    d = tmp_path / "run"
    d.mkdir()
    rows = epoch_rows(3)
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 4, "trai')
    (d / "eval.json").write_text("{not json")
    (d / "notes.json").write_text(json.dumps({"deep": {"a": [{"b": {"c": [1, 2, {"d": 3}]}}]}}))
    page = parse(build_report(d))
    assert cell(page, "results", "epochs") == "3"
    text = (d / "report.html").read_text()
    assert "line 4 is not valid JSON" in text and "eval.json: not valid JSON" in text
    assert "details" in page.sections  # unknown JSON shown compactly, folded


def test_no_silent_overwrite(run_dir: Path, tmp_path: Path) -> None:
    first = build_report(run_dir)
    size = first.stat().st_size
    assert build_report(run_dir) == first  # our own report.html is rebuilt ...
    assert abs(first.stat().st_size - size) < 200  # ... without embedding the previous report
    user_file = tmp_path / "mine.html"
    user_file.write_text("my notes")
    with pytest.raises(CnnlabError, match="already exists"):
        build_report(run_dir, out=user_file)
    assert user_file.read_text() == "my notes"
    assert build_report(run_dir, out=user_file, force=True) == user_file
    assert "cnnlab report" in user_file.read_text()
    (first).write_text("a report.html the user wrote")
    with pytest.raises(CnnlabError, match="--force"):
        build_report(run_dir)
    assert first.read_text() == "a report.html the user wrote"


@pytest.mark.parametrize("make, message", [
    (lambda p: p, "does not exist"),
    (lambda p: (p.write_text("x"), p)[1], "is a file"),
    (lambda p: (p.mkdir(), p)[1], "holds no run files"),
])
def test_bad_run_directories(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        build_report(make(tmp_path / "run"))


def test_big_and_many_images_are_listed_not_embedded(run_dir: Path, monkeypatch) -> None:
    import importlib
    disc = importlib.import_module("cnnlab.report.discover")
    monkeypatch.setattr(disc, "MAX_EMBED_BYTES", 4000)
    monkeypatch.setattr(disc, "MAX_IMAGES", 1)
    run = discover(run_dir)
    assert len(run.figures) == 1 and run.figures[0].size <= 4000
    assert any("too large to embed" in n for n in run.notes)
    assert any("at most 1 images" in n for n in run.notes)
    page = parse(build_report(run_dir))
    assert len([a for s, a in page.section_of_img if s != "curves" and s != "confusion"]) == 1
    assert "too large to embed" in (run_dir / "report.html").read_text()


def test_report_of_a_real_attack_directory(resnet20, cifar_test_small, tmp_path: Path) -> None:
    """cnnlab.attacks.save_attack output (attack.json with its robustness table, figures) in the report."""
    from cnnlab import attacks
    x, y = cifar_test_small
    result = attacks.attack(resnet20, x[:2], "pgd", eps=8 / 255, steps=10)
    doc = attacks.save_attack(result, resnet20, tmp_path / "att", names=["a.png", "b.png"])
    page = parse(build_report(tmp_path / "att"))
    assert list(page.sections)[:2] == ["results", "adversarial"]
    figs = {a["alt"]: s for s, a in page.section_of_img}
    assert figs["Attack"] == figs["Difference"] == figs["Robustness"] == "adversarial"
    assert figs["A adversarial"] == figs["A original"] == "adversarial"
    assert cell(page, "results", "method") == "pgd"
    assert cell(page, "results", "budget (L-inf)").startswith("8/255")
    assert cell(page, "results", "success rate") == f"{100 * result.success_rate:.2f}%"
    # one row per image: what it was, what it became, in percent
    per_image = [t for s, t in page.tables if s == "results" and t and t[0][:2] == ["image", "original"]][0]
    first = doc["images"][0]
    assert per_image[1][:2] == ["a.png", f"{first['original']['label']} ({100 * first['original']['prob']:.2f}%)"]
    # the robustness table: one row per original/adversarial image, one 'label (p%)' column per transform
    transforms = doc["robustness"]["transforms"]
    rows = [t for s, t in page.tables if s == "results" and t and t[0][1:] == transforms]
    assert rows, "no robustness table"
    header, *body = rows[0]
    assert len(body) == 4
    cell0 = doc["robustness"]["rows"][0]["cells"][transforms[0]]
    assert body[0][1] == f"{cell0['label']} ({100 * cell0['prob']:.2f}%)"
