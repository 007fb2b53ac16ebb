"""Small HTML builders for the report's sections: escaped text, tables from any JSON value, embedded
images. The page around them is the Jinja2 template templates/page.html.

Every string that came from a file passes through `esc` (html.escape), so a class name or config
value can never inject markup into the report. (These builders stay Python rather than template
macros: rendering any JSON value is a recursive choice by type, which reads better as code.)
"""
from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Iterable, Sequence

MAX_ROWS = 200
MAX_COLS = 16
MAX_PRE = 4000


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(v: object) -> str:
    """A scalar as short text: floats to 4 significant digits, None as an em dash."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def is_scalar(v: object) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


#: Keys whose values are accuracies (or errors, rates, precisions): shown in percent, as the CLI prints them.
PERCENT_KEY = re.compile(r"(top[-_]?[15]|acc|accuracy|error|success_rate|precision|recall|f1|prec1|prob)(_raw)?$")


def is_percent_key(key: object) -> bool:
    return isinstance(key, str) and bool(PERCENT_KEY.search(key.lower()))


def percent(v: float, fraction: bool = True) -> str:
    """An accuracy as '42.00%': a fraction (0.42) is multiplied by 100, a value logged in percent is not."""
    return f"{100 * v if fraction else v:.2f}%"


def fmt_key(key: object, v: object, fraction: bool | None = None) -> str:
    """`fmt`, except that accuracy-like keys (top1, val_error, mean_class_accuracy, prob ...) show their float
    values in percent; `fraction` says whether the value is a fraction (default: when it is at most 1)."""
    if is_percent_key(key) and isinstance(v, float) and math.isfinite(v):
        return percent(v, v <= 1.0 if fraction is None else fraction)
    return fmt(v)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure(data: bytes, caption: str, mime: str = "image/png", width: int | None = None, small: bool = False,
           alt: str | None = None) -> str:
    """An embedded image with its caption. A figure takes the page's width (never more than its own pixels,
    never squeezed in height); `small` ones (single images) sit side by side; `width` enlarges a tiny
    image by a whole factor, pixels kept sharp."""
    cls = "small" if small or width else "sheet"
    if width:
        cls += " pixelated"
    size = f' width="{int(width)}"' if width else ""
    return (f'<figure class="{cls}"><img src="{data_uri(data, mime)}" alt="{esc(alt or caption)}"{size}>'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def kv_table(items: Iterable[tuple[str, object]], cls: str = "kv") -> str:
    """A two-column key/value table; values may be any JSON (rendered recursively)."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{render_value(v, depth=1, key=k)}</td></tr>" for k, v in items)
    return f'<table class="{cls}">{rows}</table>'


def records_table(records: Sequence[dict], columns: Sequence[str] | None = None, caption: str | None = None) -> str:
    """A table with one row per dict (columns: the union of keys, first-seen order)."""
    cols = list(columns or dict.fromkeys(k for r in records for k in r))
    hidden = len(cols) - MAX_COLS
    cols = cols[:MAX_COLS]
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    fraction = {c: all(not isinstance(v, float) or v <= 1.0 for r in records if isinstance(v := r.get(c), float))
                for c in cols}  # a column logged in percent stays as it is
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c), c, fraction[c])}</td>" for c in cols) + "</tr>"
                   for r in records[:MAX_ROWS])
    more = []
    if len(records) > MAX_ROWS:
        more.append(f"{len(records) - MAX_ROWS} more rows not shown")
    if hidden > 0:
        more.append(f"{hidden} more columns not shown")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    note = f'<p class="note">{esc("; ".join(more))}</p>' if more else ""
    return f'<table class="grid">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}'


def matrix_table(m: Sequence[Sequence[object]], labels: Sequence[str] | None = None) -> str:
    n_cols = len(m[0]) if m else 0
    head = "<tr><th></th>" + "".join(f"<th>{esc(labels[j] if labels and j < len(labels) else j)}</th>"
                                     for j in range(n_cols)) + "</tr>"
    body = "".join("<tr><th>" + esc(labels[i] if labels and i < len(labels) else i) + "</th>" +
                   "".join(f"<td>{esc(fmt(v))}</td>" for v in row) + "</tr>" for i, row in enumerate(m))
    return f'<table class="grid matrix"><thead>{head}</thead><tbody>{body}</tbody></table>'


def _cell(v: object, key: object = None, fraction: bool | None = None) -> str:
    return esc(fmt_key(key, v, fraction)) if is_scalar(v) else render_value(v, depth=2)


def prediction_text(v: dict) -> str:
    """A {label, prob} dict as 'label (37.89%)'."""
    return f"{v['label']} ({percent(float(v['prob']))})"


def _is_records(v: object) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(r, dict) for r in v)


def is_prediction(v: object) -> bool:
    """A {label, prob, ...} dict (a class and its probability), shown as 'label (prob)'."""
    return isinstance(v, dict) and is_scalar(v.get("label")) and isinstance(v.get("prob"), (int, float))


def flatten_record(r: dict, prefix: str = "", depth: int = 0) -> dict:
    """One table row from a nested dict: predictions as 'label (p)', sub-dicts as dotted columns
    (a dict of predictions gives one column per key), long lists as their length."""
    out: dict = {}
    for k, v in r.items():
        name = f"{prefix}{k}"
        if is_prediction(v):
            out[name] = prediction_text(v)
        elif is_scalar(v):
            out[name] = v
        elif _short_list(v):
            out[name] = ", ".join(fmt(x) for x in v)
        elif isinstance(v, dict) and depth < 2:
            inner = "" if v and all(is_prediction(x) for x in v.values()) else f"{name}."
            out.update(flatten_record(v, inner, depth + 1))
        elif isinstance(v, (list, dict)):
            out[name] = f"[{len(v)} items]"
        else:
            out[name] = str(v)
    return out


def _short_list(v: object) -> bool:
    return isinstance(v, list) and len(v) <= 10 and all(is_scalar(x) for x in v)


def _is_matrix(v: object) -> bool:
    return (isinstance(v, list) and bool(v) and all(isinstance(r, list) for r in v) and
            len({len(r) for r in v}) == 1 and all(is_scalar(x) for r in v for x in r))


def _is_table_of_dicts(v: object) -> bool:
    return (isinstance(v, dict) and len(v) > 1 and all(isinstance(x, dict) for x in v.values()) and
            all(all(is_scalar(y) for y in x.values()) for x in v.values()))


def render_value(v: object, depth: int = 0, key: object = None) -> str:
    """Any JSON value as HTML: scalars as text (accuracies under their `key` in percent), dicts as
    key/value tables, lists of dicts as tables, matrices as grids, anything deeper as compact JSON."""
    if is_scalar(v):
        return esc(fmt_key(key, v))
    if _short_list(v):
        return esc(", ".join(fmt(x) for x in v)) if v else "[]"
    if isinstance(v, list) and all(is_scalar(x) for x in v):
        shown = ", ".join(fmt(x) for x in v[:12])
        return f'{esc(shown)}, … <span class="note">({len(v)} values)</span>'
    if depth > 3:
        return compact_json(v)
    if _is_records(v):
        return records_table([flatten_record(r) for r in v])
    if _is_matrix(v):
        if len(v) <= 30 and len(v[0]) <= 30:
            return matrix_table(v)
        return f'<span class="note">{len(v)}×{len(v[0])} matrix</span>'
    if _is_table_of_dicts(v):
        return records_table([{"": k, **x} for k, x in v.items()])
    if is_prediction(v) and len(v) <= 3:
        return esc(prediction_text(v))
    if isinstance(v, dict):
        return kv_table(v.items()) if v else "{}"
    return compact_json(v)


def compact_json(v: object) -> str:
    text = json.dumps(v, default=str, separators=(", ", ": "))
    if len(text) > MAX_PRE:
        text = text[:MAX_PRE] + f" … ({len(text) - MAX_PRE} more characters)"
    return f'<pre class="json">{esc(text)}</pre>'


def flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    """{'optim': {'lr': 0.1}} -> [('optim.lr', 0.1)]; lists stay whole."""
    out: list[tuple[str, object]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.extend(flatten(v, key + "."))
        else:
            out.append((key, v))
    return out
