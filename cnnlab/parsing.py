"""Values as people write them on a command line or in a web form: numbers and fractions such as
8/255 (pixel values are in [0, 1], so a perturbation of 8 grey levels is 8/255)."""
from __future__ import annotations

import math
from fractions import Fraction

from .errors import CnnlabError


def parse_fraction(value: str | float, what: str = "value", lo: float = 0.0, hi: float = 1.0) -> float:
    """'8/255', '0.03' or 0.03 -> a finite float in [lo, hi]; anything else (4/255/2, nan, 1e400) is one
    clear error naming `what`."""
    try:
        x = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else _fraction(str(value).strip())
    except (ValueError, ZeroDivisionError, OverflowError):
        raise CnnlabError(f"{what} '{value}' is not a number or fraction like 8/255 (finite, one '/' at most).") from None
    if not math.isfinite(x):
        raise CnnlabError(f"{what} '{value}' is not a number or fraction like 8/255 (finite, one '/' at most).")
    if not lo <= x <= hi:
        raise CnnlabError(f"{what} {value} is outside [{lo:g}, {hi:g}]; pixel values are in [0, 1] (use e.g. 8/255).")
    return x


def _fraction(text: str) -> float:
    """'8/255', '0.5/255', '0.03' -> float (Fraction alone refuses a decimal numerator such as 0.5/255);
    one slash at most ('4/255/2' is ambiguous)."""
    if text.count("/") > 1:
        raise ValueError(text)
    if "/" in text:
        num, den = text.split("/")
        return float(Fraction(num.strip())) / float(Fraction(den.strip()))
    return float(Fraction(text))
