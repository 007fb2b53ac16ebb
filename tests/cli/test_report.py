"""`cnnlab report` end to end: the JSON it prints, no silent overwrite, a missing run as one error."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.report.test_build import make_run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path / "run")


def test_cli_report(run_dir: Path, tmp_path: Path) -> None:
    from cnnlab.cli import main
    r = CliRunner().invoke(main, ["report", str(run_dir), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["report"] == str(run_dir / "report.html") and len(info["figures"]) == 8
    r = CliRunner().invoke(main, ["report", str(run_dir), "--out", str(tmp_path / "elsewhere")])
    assert r.exit_code == 0 and (tmp_path / "elsewhere" / "report.html").is_file(), r.output
    r = CliRunner().invoke(main, ["report", str(run_dir), "--out", str(tmp_path / "elsewhere")])
    assert r.exit_code == 1 and "already exists" in r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path / "nope")])
    assert r.exit_code == 1 and r.output.startswith("error: Run directory")
