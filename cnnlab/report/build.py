"""Build one self-contained HTML report (inline CSS, images as data URIs, no network) from a run directory.

    from cnnlab.report import build_report
    build_report("runs/r20")            # -> runs/r20/report.html
"""
from __future__ import annotations

import datetime as _dt
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CnnlabError
from ..runs import atomic_write_text
from . import charts, headline
from .discover import Figure, JsonDoc, RunContents, discover, figure_order
from .html import esc, figure, flatten, fmt, is_scalar, kv_table, records_table, render_value

if TYPE_CHECKING:
    import jinja2

GENERATOR = "cnnlab report"
#: The page (templates/page.html, Jinja2) and its style sheet, inlined so the file needs no network.
TEMPLATES = Path(__file__).with_name("templates")
#: The report reads as a write-up: results first, then the figures (each with what it shows), then the
#: details (every JSON file, every epoch), the configuration and the files, folded.
SECTIONS = [  # id, title (the order of the report)
    ("results", "Results"), ("curves", "Training curves"), ("confusion", "Confusion matrix"),
    ("predictions", "Predictions"), ("filters", "Filters"), ("featmaps", "Feature maps"),
    ("attribution", "Saliency and Grad-CAM"), ("featvis", "Feature visualization"),
    ("adversarial", "Adversarial examples"), ("other", "Other figures"), ("details", "Details"),
    ("config", "Configuration"), ("files", "Files"),
]
CONFUSION_KEYS = ("confusion", "confusion_matrix", "cm")
LABEL_KEYS = ("labels", "classes", "class_names")
#: Figures narrower than this many pixels (single images) sit side by side; wider ones take a row each.
SMALL_FIGURE_PX = 300
#: Figures the report draws itself from metrics.jsonl, so the file is not shown a second time.
REDRAWN = ("figures/curves.png",)


@dataclass
class ReportPage:
    """The sections of a report being assembled (section id -> HTML parts)."""

    title: str
    parts: dict[str, list[str]] = field(default_factory=dict)

    def add(self, section: str, html_text: str) -> None:
        self.parts.setdefault(section, []).append(html_text)

    def render(self, subtitle: str) -> str:
        """The whole page: the sections that have content, in the report's order, with a link bar.
        Every part was built escaped (cnnlab.report.html); text given here is escaped by the template."""
        from markupsafe import Markup

        from .. import __version__
        sections = [{"id": sid, "title": title, "parts": [Markup(part) for part in self.parts[sid]]}
                    for sid, title in SECTIONS if self.parts.get(sid)]
        return _template().render(generator=GENERATOR, version=__version__, title=self.title, subtitle=subtitle,
                                  css=Markup((TEMPLATES / "report.css").read_text(encoding="utf-8").strip()),
                                  sections=sections)


@functools.cache
def _template() -> jinja2.Template:
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template("page.html")


def render_report(run: RunContents) -> str:
    """The report of a discovered run as one HTML string."""
    found = headline.results(run)
    name = run.run_dir.resolve().name
    page = ReportPage(f"{found[0].title} ({name})" if found else f"cnnlab results: {name}")
    _results(page, run, found)
    _curves(page, run)
    _confusion(page, run)
    shown = [f for f in run.figures if not (run.metrics and f.rel in REDRAWN)]
    for sid, _ in SECTIONS:
        figs = sorted((f for f in shown if f.section == sid), key=lambda f: (figure_order(f.rel), f.rel))
        if figs:
            page.add(sid, _figures_html(figs))
    for doc in run.docs:
        if doc.rel != "config.json":
            _json_doc(page, doc)
    _config(page, run)
    _files(page, run)
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return page.render(f"{run.run_dir} · generated {stamp}")


def _results(page: ReportPage, run: RunContents, found: list[headline.Results]) -> None:
    for r in found:
        heading = f"<h3>{esc(r.title)}</h3>" if len(found) > 1 else ""
        page.add("results", heading + "".join(r.parts))
    if not found:
        page.add("results", kv_table([("run directory", str(run.run_dir)), ("figures", len(run.figures)),
                                      ("data files", ", ".join(d.rel for d in run.docs) or "none")]))
    warnings = run.notes + run.metrics_errors + [f"{d.rel}: {d.error}" for d in run.docs if d.error]
    if warnings:
        page.add("results", "<ul class=\"warn\">" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>")


def _config(page: ReportPage, run: RunContents) -> None:
    if run.config:
        items = flatten(run.config)
        page.add("config", f"<details><summary>config.json: {len(items)} settings, click to show</summary>"
                 f"{kv_table(items)}</details>")


def _curves(page: ReportPage, run: RunContents) -> None:
    if not run.metrics:
        return
    png = charts.training_curves_png(run.metrics)
    if png:
        page.add("curves", figure(png, _curves_caption(run.metrics), alt="Training curves drawn from metrics.jsonl"))
    cols = list(dict.fromkeys(k for r in run.metrics for k in r if is_scalar(r[k])))
    page.add("curves", f"<details><summary>Every epoch ({len(run.metrics)} rows of metrics.jsonl; accuracies in "
             f"percent)</summary>{records_table(run.metrics, cols)}</details>")


def _curves_caption(rows: list[dict]) -> str:
    """What each panel of the training curves shows, in the order they are drawn."""
    said = {"objective": "the training objective (mean cross-entropy over the epoch's batches) and the validation loss",
            "error": "the error in percent, 100 minus the accuracy (the validation error from the validation "
                     "accuracy; the training error is measured on the augmented training batches)",
            "lr": "the learning rate at the end of each epoch"}
    panels = list(charts.curve_series(rows))
    where = {1: [""], 2: ["Left: ", "Right: "], 3: ["Left: ", "Middle: ", "Right: "]}[len(panels)]
    text = " ".join(f"{w}{said[p][0].upper() if not w else said[p][0]}{said[p][1:]}." for w, p in zip(where, panels))
    lr = charts.constant_lr(rows)
    return text + (f" The learning rate was {fmt(lr)} throughout." if lr is not None else "")


def _confusion(page: ReportPage, run: RunContents) -> None:
    doc = run.doc("eval.json")
    if doc is None or not isinstance(doc.data, dict) or any(f.section == "confusion" for f in run.figures):
        return
    labels = next((doc.data[k] for k in LABEL_KEYS if isinstance(doc.data.get(k), list)), None)
    matrix = next((doc.data[k] for k in CONFUSION_KEYS if isinstance(doc.data.get(k), list)), None)
    if not matrix:
        return
    try:
        png = charts.confusion_png(matrix, labels)
    except (ValueError, TypeError):
        return
    page.add("confusion", figure(png, "Confusion matrix of eval.json: one row per true class, one column per "
                                      "predicted class; colour is the fraction of the row.",
                                 alt="Confusion matrix drawn from eval.json"))


def _json_doc(page: ReportPage, doc: JsonDoc) -> None:
    """A JSON file as tables, folded (click to open): its scalars first, then one sub-heading per nested value."""
    if doc.error:
        page.add("details", f'<h3>{esc(doc.rel)}</h3><p class="warn">{esc(doc.error)}</p>')
        return
    data = doc.data
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in CONFUSION_KEYS}
        scalars = [(k, v) for k, v in data.items() if is_scalar(v) or (isinstance(v, list) and len(v) <= 10
                                                                         and all(is_scalar(x) for x in v))]
        rest = [(k, v) for k, v in data.items() if (k, v) not in scalars]
        body = kv_table(scalars) if scalars else ""
        for k, v in rest:
            body += f"<h4>{esc(doc.stem)} · {esc(k)}</h4>{render_value(v, depth=1, key=k)}"
    else:
        body = render_value(data, depth=1)
    page.add("details", f"<details><summary>{esc(doc.rel)}</summary>{body}</details>")


def _figures_html(figs: list[Figure]) -> str:
    """Wide figures one per row at the page's width; small single images side by side."""
    sheets, small = [], []
    for f in figs:
        w = _pixel_width(f.path)
        if w is not None and w < SMALL_FIGURE_PX:
            small.append(figure(f.path.read_bytes(), f.caption, f.mime, width=_enlarged(w), small=True, alt=f.name))
        else:
            sheets.append(figure(f.path.read_bytes(), f.caption, f.mime, alt=f.name))
    gallery = f'<div class="gallery">{"".join(small)}</div>' if small else ""
    return "".join(sheets) + gallery


def _pixel_width(path: Path) -> int | None:
    try:
        from PIL import Image
        with Image.open(path) as im:
            return max(im.size)
    except Exception:  # noqa: BLE001 - a figure we cannot measure is shown at its own size
        return None


def _enlarged(side: int) -> int | None:
    """Small images (CIFAR-sized) are shown enlarged by a whole factor, pixels kept sharp."""
    factor = min(8, 320 // max(1, side))
    return side * factor if factor >= 2 else None


def _files(page: ReportPage, run: RunContents) -> None:
    rows = [{"file": rel, "size": _size(n), "kind": "checkpoint"} for rel, n in run.checkpoints]
    rows += [{"file": rel, "size": _size(n), "kind": "other"} for rel, n in run.other_files]
    if rows:
        page.add("files", records_table(rows))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _is_ours(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return f'<meta name="generator" content="{GENERATOR}' in fh.read(4096)
    except OSError:
        return False


def build_report(run_dir: str | Path, out: str | Path | None = None, force: bool = False) -> Path:
    """Write RUN_DIR's report as one self-contained HTML file and return its path.

    Default output is RUN_DIR/report.html (replacing a report cnnlab made before is fine); an `out`
    that already exists, or a report.html cnnlab did not make, is replaced only with force=True.
    """
    run_dir = Path(run_dir)
    target = Path(out) if out is not None else run_dir / "report.html"
    if target.exists():
        if target.is_dir():
            raise CnnlabError(f"Report output '{target}' is a directory; give a file name such as report.html.")
        if not force and (out is not None or not _is_ours(target)):
            raise CnnlabError(f"'{target}' already exists; choose another --out or pass --force to replace it.")
    run = discover(run_dir, exclude=(target,))
    if run.empty:
        raise CnnlabError(f"'{run_dir}' holds no run files (config.json, metrics.jsonl, *.json results or "
                          "images); pass the --out folder of cnnlab train, tour or attack.")
    text = render_report(run)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, text)  # a full disk: one sentence, the previous report kept
    return target
