"""The results a report opens with: the headline numbers of what made the run directory (a training run and
its evaluation, an attack, an explanation, the tour) as short tables, accuracies in percent.

Each reader takes the discovered run and returns `Results` (a title and HTML parts) or None when the
directory holds nothing of its kind; the report shows every kind it finds, in this module's order.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .discover import RunContents
from .html import esc, fmt, kv_table, percent, records_table

Row = tuple[str, object]


@dataclass
class Results:
    """What one kind of output contributes to the report's opening: a title and HTML parts."""

    title: str
    parts: list[str] = field(default_factory=list)


def _dict(run: RunContents, name: str) -> dict | None:
    doc = run.doc(name)
    return doc.data if doc is not None and isinstance(doc.data, dict) else None


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _pct(v: object) -> str | None:
    """An accuracy (a fraction, or percent when above 1) as '42.00%'."""
    x = _num(v)
    return None if x is None else percent(x, x <= 1.0)


def _table(rows: list[Row]) -> str:
    """A key/value table of the rows whose value exists (values are shown as given)."""
    return kv_table([(k, v) for k, v in rows if v is not None and v != ""], cls="kv headline")


def _eps(v: object) -> str | None:
    x = _num(v)
    return None if x is None else f"{x * 255:.3g}/255 ({x:.4g})"


def _pred(p: object) -> str:
    if isinstance(p, dict) and "label" in p:
        return f"{p['label']} ({_pct(p['prob'])})" if _num(p.get("prob")) is not None else str(p["label"])
    return "" if p is None else str(p)


# -- a training run -------------------------------------------------------------------------------
def training(run: RunContents) -> Results | None:
    """Model, data, epochs and the validation numbers of the last and best epoch (percent)."""
    cfg = run.config if isinstance(run.config, dict) else {}
    train_cfg = cfg.get("config") if isinstance(cfg.get("config"), dict) else {}
    if not run.metrics and not train_cfg:
        return None
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    name = train_cfg.get("model") or model.get("name") or "model"
    params = _num(model.get("params"))
    final = _dict(run, "final.json") or {}
    rows: list[Row] = [("model", f"{name} ({params:,.0f} parameters)" if params else name)]
    if isinstance(data.get("train"), dict):
        part = data["train"]
        text = f"{part.get('n', '?'):,} training images ({part.get('name', '')})"
        if isinstance(data.get("val"), dict):
            text += f"; {data['val'].get('n', '?'):,} validation images ({data['val'].get('name', '')})"
        rows.append(("data", text))
    elif train_cfg.get("data"):
        rows.append(("data", train_cfg["data"]))
    planned = train_cfg.get("epochs")
    done = len(run.metrics)
    status = final.get("status")
    epochs = f"{done} of {planned}" if planned else str(done)
    if status:
        epochs += f" ({status})"
    if _num(final.get("train_s")):
        epochs += f", {final['train_s'] / 60:.1f} min of training"
    rows.append(("epochs", epochs))
    last = run.metrics[-1] if run.metrics else {}
    if last:
        rows.append(("validation top-1 (last epoch)", _pct(last.get("val_top1"))))
        vals = [(r["val_top1"], r.get("epoch", i + 1)) for i, r in enumerate(run.metrics)
                if _num(r.get("val_top1")) is not None]
        if vals:
            best, epoch = max(vals, key=lambda t: t[0])
            rows.append(("best validation top-1", f"{_pct(best)} (epoch {epoch})"))
            top = _num(last.get("val_top1"))
            if top is not None:
                rows.append(("validation error (last epoch)", _pct(1.0 - top if top <= 1 else 100.0 - top)))
        rows.append(("validation top-5", _pct(last.get("val_top5"))))
        rows.append(("validation mean class accuracy", _pct(last.get("val_mean_class_accuracy"))))
        rows.append(("robust validation top-1", _pct(last.get("val_robust_top1"))))
        rows.append(("training objective (last epoch)", fmt(last["train_loss"]) if "train_loss" in last else None))
        rows.append(("validation loss (last epoch)", fmt(last["val_loss"]) if "val_loss" in last else None))
    return Results(f"Training: {name}", [_table(rows)])


def evaluation(run: RunContents) -> Results | None:
    """eval.json: top-1/top-5, mean class accuracy, mean average precision and loss on the evaluated data."""
    d = _dict(run, "eval.json")
    if d is None:
        return None
    rows: list[Row] = [("data", d.get("data")), ("checkpoint", d.get("checkpoint")), ("images", d.get("n")),
                       ("top-1", _pct(d.get("top1"))), ("top-5", _pct(d.get("top5"))),
                       ("error", _pct(d.get("error"))),
                       ("mean class accuracy", _pct(d.get("mean_class_accuracy", d.get("mean_per_class_accuracy")))),
                       ("mean average precision", _pct(d.get("mean_average_precision"))),
                       ("loss", fmt(d["loss"]) if _num(d.get("loss")) is not None else None)]
    return Results("Evaluation", [_table(rows)])


# -- an attack --------------------------------------------------------------------------------------
def attack(run: RunContents) -> Results | None:
    """attack.json: the method and budget, one row per image (before, after, steps, size of the change) and
    the robustness of the adversarial images to simple transformations."""
    d = _dict(run, "attack.json")
    if d is None:
        return None
    params = d.get("params") if isinstance(d.get("params"), dict) else {}
    rows: list[Row] = [("method", d.get("method")), ("images", d.get("n")),
                       ("success rate", _pct(d.get("success_rate"))),
                       ("budget (L-inf)", _eps(params.get("eps"))),
                       ("steps (at most)", params.get("steps")), ("step size", _eps(params.get("step_size"))),
                       ("seconds", fmt(d["seconds"]) if _num(d.get("seconds")) is not None else None)]
    parts = [_table(rows)]
    images = d.get("images") if isinstance(d.get("images"), list) else []
    table = []
    for i, im in enumerate(x for x in images if isinstance(x, dict)):
        first = im.get("first_success_step")
        table.append({
            "image": str(im.get("file", f"image {i}")).rsplit("/", 1)[-1],
            "original": _pred(im.get("original")),
            "target": _pred(im.get("target")) or "—",
            "adversarial": _pred(im.get("final")),
            "fooled": "yes" if im.get("success") else "no",
            "steps until fooled": first if first is not None else "—",
            "L-inf (/255)": fmt(im.get("linf_255")) if im.get("linf_255") is not None else fmt(im.get("linf")),
            "L2": fmt(im.get("l2")),
            **({"still fooled as 8-bit PNG": "yes" if im["png_still_adversarial"] else "no"}
               if "png_still_adversarial" in im else {})})
    if table:
        parts.append(records_table(table, caption="Per image"))
    rob = d.get("robustness")
    if isinstance(rob, dict) and isinstance(rob.get("rows"), list) and isinstance(rob.get("transforms"), list):
        trs = rob["transforms"]
        body = [{"image": r.get("name", ""), **{t: _pred(r.get("cells", {}).get(t)) for t in trs}}
                for r in rob["rows"] if isinstance(r, dict)]
        parts.append(records_table(body, caption="Predicted class after each transformation (is the attack robust?)"))
    return Results(f"Attack: {d.get('method', '')}", parts)


# -- an explanation -----------------------------------------------------------------------------------
def explanation(run: RunContents) -> Results | None:
    """saliency.json: per attribution method, the class explained in each image and its score."""
    d = _dict(run, "saliency.json")
    if d is None or not isinstance(d.get("methods"), dict):
        return None
    images = [str(p).rsplit("/", 1)[-1] for p in d.get("images", [])]
    rows = []
    for method, m in d["methods"].items():
        if not isinstance(m, dict):
            continue
        score = m.get("score", "score")
        cells = {name: f"{lab} ({score} {fmt(s)})" for name, lab, s in
                 zip(images, m.get("labels", []), m.get("scores", []))}
        rows.append({"method": method, **({"layer": m["layer"]} if m.get("layer") else {"layer": "—"}), **cells})
    return Results("Explanation", [records_table(rows, caption="Class explained in each image, with its score")])


# -- the tour ---------------------------------------------------------------------------------------------
def tour(run: RunContents) -> Results | None:
    """summary.json of `cnnlab tour`: the model's graph, the top-3 of each photo and what the attacks did."""
    d = _dict(run, "summary.json")
    if d is None or "tour" not in d:
        return None
    model = d.get("model") if isinstance(d.get("model"), dict) else {}
    graph = d.get("inspect") if isinstance(d.get("inspect"), dict) else {}
    macs = _num(graph.get("macs"))
    rows: list[Row] = [("model", model.get("name")), ("weights", model.get("weights") or "none (random)"),
                       ("parameters", f"{graph['params']:,}" if isinstance(graph.get("params"), int) else None),
                       ("multiply-adds per image", f"{macs / 1e6:,.0f} M" if macs else None),
                       ("graph nodes", graph.get("nodes")), ("graph inputs", graph.get("placeholders")),
                       ("logits node (feeds the softmax)", graph.get("logits_node"))]
    parts = [_table(rows)]
    top = (d.get("predict") or {}).get("top") if isinstance(d.get("predict"), dict) else None
    if isinstance(top, dict):
        parts.append(records_table([{"photo": photo, **{f"top-{k + 1}": _pred(p) for k, p in enumerate(preds)}}
                                    for photo, preds in top.items() if isinstance(preds, list)],
                                   caption="Top-3 classes of each photo"))
    att = d.get("attacks") if isinstance(d.get("attacks"), dict) else {}
    labels = {"forced": f"forced to '{att.get('target', '')}' (ascent on its logit)",
              "logit_descent": "descent on its own class's logit", "prob_descent": "descent on its own class's probability"}
    rows_a = []
    for key, what in labels.items():
        a = att.get(key)
        if not isinstance(a, dict):
            continue
        seen = [s.get("label", "") for s in a.get("classes_seen", []) if isinstance(s, dict)]
        rows_a.append({"attack": what, "photo": att.get("photo", ""), "before": _pred(a.get("original")),
                       "after": _pred(a.get("final")), "steps": a.get("steps"),
                       "L-inf (/255)": fmt(_num(a.get("linf")) * 255) if _num(a.get("linf")) is not None else "",
                       "classes on the way": " → ".join(seen)})
    if rows_a:
        parts.append(records_table(rows_a, caption="Fooling the model (plain gradient steps of 0.1)"))
    if att.get("note"):
        parts.append(f'<p class="note">{esc(att["note"])}</p>')
    return Results("Tour", parts)


#: Every reader, in the order their results open the report.
READERS: list[Callable[[RunContents], Results | None]] = [tour, training, evaluation, attack, explanation]


def results(run: RunContents) -> list[Results]:
    """The headline results of every kind the run directory holds."""
    return [r for read in READERS if (r := read(run)) is not None]
