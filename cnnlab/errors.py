"""User-facing errors: one clear sentence naming the input and the fix; the CLI exits non-zero."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class CnnlabError(Exception):
    """An error the user caused (a bad file, name or option); its message is one sentence."""


class ImageError(CnnlabError):
    """An image file that cannot be read as an image."""


class WeightsError(CnnlabError):
    """A weights/checkpoint file that is missing, unsafe, corrupt or for another architecture."""


def close_matches(name: str, choices: Iterable[str], n: int = 5) -> str:
    """Return ' (did you mean: a, b?)' for the choices closest to `name`, or ''."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    hits += [c for c in lowered if name.lower() in c and c not in hits][: max(0, n - len(hits))]
    return f" (did you mean: {', '.join(lowered[h] for h in hits)}?)" if hits else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> CnnlabError:
    """An error for an unknown name of some kind, listing the closest valid names."""
    choices = list(choices)
    hint = close_matches(name, choices)
    if not hint:
        shown = ", ".join(sorted(choices)[:20]) + (" ..." if len(choices) > 20 else "")
        hint = f"; choose one of: {shown}"
    return CnnlabError(f"Unknown {kind} '{name}'{hint}")


def brief(e: BaseException, limit: int = 150) -> str:
    """An exception's first line for a one-sentence error, shortened at a word boundary (never mid-word)."""
    import textwrap
    text = str(e).strip()
    return textwrap.shorten(text.splitlines()[0], limit, placeholder=" ...") if text else type(e).__name__
