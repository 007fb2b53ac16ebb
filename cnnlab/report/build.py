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
from . import charts
from .discover import KNOWN_JSON, Figure, JsonDoc, RunContents, discover
from .html import compact_json, esc, figure, flatten, fmt, is_scalar, kv_table, records_table, render_value

if TYPE_CHECKING:
    import jinja2

GENERATOR = "cnnlab report"
#: The page (templates/page.html, Jinja2) and its style sheet, inlined so the file needs no network.
TEMPLATES = Path(__file__).with_name("templates")
SECTIONS = [  # id, title (the order of the report)
    ("overview", "Overview"), ("config", "Configuration"), ("curves", "Training curves"),
    ("metrics", "Metrics"), ("confusion", "Confusion matrix"), ("predictions", "Predictions"),
    ("filters", "Filters"), ("featmaps", "Feature maps"), ("attribution", "Saliency and Grad-CAM"),
    ("featvis", "Feature visualization"), ("adversarial", "Adversarial examples"),
    ("summary", "Summary"), ("other", "Other figures"), ("data", "Other data"), ("files", "Files"),
]
CONFUSION_KEYS = ("confusion", "confusion_matrix", "cm")
LABEL_KEYS = ("labels", "classes", "class_names")
FOLD_ROWS = 60


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
    title = f"cnnlab run: {run.run_dir.resolve().name}"
    page = ReportPage(title)
    _overview(page, run)
    _config(page, run)
    _curves(page, run)
    _metrics(page, run)
    handled = {"config.json", "eval.json"}
    for doc in run.docs:
        if doc.rel in handled:
            continue
        section = KNOWN_JSON.get(doc.rel, None)
        if section is None:
            section = "adversarial" if any(w in doc.rel.lower() for w in ("attack", "robust", "adv")) else "data"
        _json_doc(page, doc, section)
    for sid, _ in SECTIONS:
        figs = [f for f in run.figures if f.section == sid]
        if figs:
            page.add(sid, _figures_html(figs))
    _files(page, run)
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return page.render(f"{run.run_dir} · generated {stamp}")


def _overview(page: ReportPage, run: RunContents) -> None:
    items: list[tuple[str, object]] = [("run directory", str(run.run_dir))]
    cfg = run.config or {}
    sources = [cfg, cfg.get("config") if isinstance(cfg.get("config"), dict) else {}]
    sources += [d.data for name in ("summary.json", "attack.json", "eval.json")
                if (d := run.doc(name)) is not None and isinstance(d.data, dict)]
    for key in ("model", "arch", "data", "dataset", "checkpoint", "epochs", "batch_size", "optimizer", "lr",
                "seed", "method"):
        for source in sources:
            value = source.get(key)
            if isinstance(value, dict) and value.get("name") is not None and is_scalar(value["name"]):
                value = value["name"]
            if value is not None and is_scalar(value):
                items.append((key, value))
                break
    final = run.doc("final.json")
    if final is not None and isinstance(final.data, dict) and is_scalar(final.data.get("status")):
        items.append(("status", final.data["status"]))
    if run.metrics:
        items.append(("epochs logged", len(run.metrics)))
        last = run.metrics[-1]
        for key in ("val_top1", "val_error", "val_loss", "elapsed", "images_per_s"):
            if key in last:
                items.append((f"final {key}", last[key]))
    items.append(("figures", len(run.figures)))
    items.append(("data files", ", ".join(d.rel for d in run.docs) or "none"))
    page.add("overview", kv_table(items))
    warnings = run.notes + run.metrics_errors + [f"{d.rel}: {d.error}" for d in run.docs if d.error]
    if warnings:
        page.add("overview", "<ul class=\"warn\">" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>")


def _config(page: ReportPage, run: RunContents) -> None:
    if run.config:
        page.add("config", kv_table(flatten(run.config)))


def _curves(page: ReportPage, run: RunContents) -> None:
    if not run.metrics:
        return
    png = charts.training_curves_png(run.metrics)
    if png:
        page.add("curves", figure(png, "Training curves drawn from metrics.jsonl", wide=True))
    cols = list(dict.fromkeys(k for r in run.metrics for k in r if is_scalar(r[k])))
    page.add("curves", "<details><summary>Every epoch (metrics.jsonl)</summary>"
             + records_table(run.metrics, cols) + "</details>")


def _best(rows: list[dict]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, better in (("val_error", min), ("val_loss", min), ("val_top1", max)):
        vals = [(r[key], r) for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
        if vals:
            v, r = better(vals, key=lambda t: t[0])
            out.append((f"best {key}", f"{fmt(v)} (epoch {fmt(r.get('epoch', '?'))})"))
    return out


def _metrics(page: ReportPage, run: RunContents) -> None:
    if run.metrics:
        last = {k: v for k, v in run.metrics[-1].items() if is_scalar(v)}
        page.add("metrics", "<h3>Last epoch</h3>" + kv_table(list(last.items()) + _best(run.metrics)))
    doc = run.doc("eval.json")
    if doc is None:
        return
    if doc.error or not isinstance(doc.data, dict):
        _json_doc(page, doc, "metrics")
        return
    data = dict(doc.data)
    labels = next((data[k] for k in LABEL_KEYS if isinstance(data.get(k), list)), None)
    matrix_key = next((k for k in CONFUSION_KEYS if isinstance(data.get(k), list)), None)
    matrix = data.pop(matrix_key) if matrix_key else None
    scalars = [(k, v) for k, v in data.items() if is_scalar(v)]
    rest = {k: v for k, v in data.items() if not is_scalar(v) and k not in LABEL_KEYS}
    page.add("metrics", "<h3>Evaluation (eval.json)</h3>" + kv_table(scalars))
    for k, v in rest.items():
        page.add("metrics", f"<h3>{esc(k)}</h3>{render_value(v, depth=1)}")
    if matrix and not any(f.section == "confusion" for f in run.figures):
        try:
            png = charts.confusion_png(matrix, labels)
            page.add("confusion", figure(png, "Confusion matrix drawn from eval.json"))
        except (ValueError, TypeError):
            page.add("confusion", compact_json(matrix))


def _json_doc(page: ReportPage, doc: JsonDoc, section: str) -> None:
    """A JSON file as tables: its scalars first, then one sub-heading per nested value; a long
    rendering is folded (click to open) so the figures stay easy to find."""
    head = f"<h3>{esc(doc.rel)}</h3>"
    if doc.error:
        page.add(section, f'{head}<p class="warn">{esc(doc.error)}</p>')
        return
    data = doc.data
    if isinstance(data, dict):
        scalars = [(k, v) for k, v in data.items() if is_scalar(v) or (isinstance(v, list) and len(v) <= 10
                                                                         and all(is_scalar(x) for x in v))]
        rest = [(k, v) for k, v in data.items() if (k, v) not in scalars]
        body = kv_table(scalars) if scalars else ""
        for k, v in rest:
            body += f"<h4>{esc(doc.stem)} · {esc(k)}</h4>{render_value(v, depth=1)}"
    else:
        body = render_value(data, depth=1)
    rows = body.count("<tr>")
    if rows > FOLD_ROWS:
        body = f"<details><summary>{esc(doc.rel)}: {rows} table rows, click to show</summary>{body}</details>"
    page.add(section, head + body)


def _figures_html(figs: list[Figure]) -> str:
    parts = [figure(f.path.read_bytes(), f.caption, f.mime, width=_display_width(f.path)) for f in figs]
    return f'<div class="figs">{"".join(parts)}</div>'


def _display_width(path: Path) -> int | None:
    """Small images (CIFAR-sized) are shown enlarged by a whole factor, pixels kept sharp."""
    try:
        from PIL import Image
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001 - a figure we cannot measure is shown at its own size
        return None
    factor = min(8, 320 // max(1, w, h))
    return w * factor if factor >= 2 else None


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
