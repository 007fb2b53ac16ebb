"""parse_fraction: numbers and fractions as people write them, and one sentence for anything else."""
from __future__ import annotations

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.parsing import parse_fraction


def test_fractions_and_decimals():
    assert parse_fraction("8/255") == 8 / 255
    assert parse_fraction(" 0.5/255 ") == 0.5 / 255
    assert parse_fraction("0.03") == 0.03 and parse_fraction(0.25) == 0.25
    assert parse_fraction("3", hi=10) == 3.0


@pytest.mark.parametrize("text, message", [("eight", "not a number"), ("1/0", "not a number"),
                                           ("2", r"outside \[0, 1\]"), ("-1/255", "outside")])
def test_bad_values_name_what(text, message):
    with pytest.raises(CnnlabError, match=f"--eps '?{text}'?.*{message}" if "outside" not in message else message):
        parse_fraction(text, "--eps")


@pytest.mark.parametrize("text", ["4/255/2", "1e400", "nan", "inf", "-inf", "1e400/1", "1/1e-400", float("nan")])
def test_ambiguous_infinite_and_nan_values_are_refused(text):
    """'4/255/2' once read as 4/(255/2) = 8/255; 1e400 overflowed into a traceback; nan compared false."""
    with pytest.raises(CnnlabError, match="--eps .*not a number or fraction"):
        parse_fraction(text, "--eps", 0.0, 1e6)
