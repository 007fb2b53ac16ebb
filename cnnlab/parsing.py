"""Values as people write them on a command line or in a web form: numbers and fractions such as
8/255 (pixel values are in [0, 1], so a perturbation of 8 grey levels is 8/255)."""
from __future__ import annotations

from fractions import Fraction

from .errors import CnnlabError


def parse_fraction(value: str | float, what: str = "value", lo: float = 0.0, hi: float = 1.0) -> float:
    """'8/255', '0.03' or 0.03 -> float in [lo, hi]; anything else is one clear error naming `what`."""
    try:
        x = value if isinstance(value, float) else _fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        raise CnnlabError(f"{what} '{value}' is not a number or fraction like 8/255.") from None
    if not lo <= x <= hi:
        raise CnnlabError(f"{what} {value} is outside [{lo:g}, {hi:g}]; pixel values are in [0, 1] (use e.g. 8/255).")
    return x


def _fraction(text: str) -> float:
    """'8/255', '0.5/255', '0.03' -> float (Fraction alone refuses a decimal numerator such as 0.5/255)."""
    if "/" in text:
        num, den = text.split("/", 1)
        return float(Fraction(num.strip())) / float(Fraction(den.strip()))
    return float(Fraction(text))
