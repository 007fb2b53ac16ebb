"""`cnnlab report RUN_DIR`: one self-contained HTML report of a run directory (thin: parse, call
cnnlab.report.build_report, print)."""
from __future__ import annotations

import click

from pathlib import Path

from .common import echo_json, out_file, warn


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(), default=None,
              help="Directory to write report.html into [default: RUN_DIR].")
@click.option("--force", is_flag=True, help="Replace an existing report.html in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print what went into the report as JSON.")
def report_cmd(run_dir: str, out: str | None, force: bool, as_json: bool) -> None:
    """Write one self-contained HTML report (images embedded, no network) of a run directory."""
    from ..report import build_report, discover
    elsewhere = out is not None and Path(out).resolve() != Path(run_dir).resolve()
    path = build_report(run_dir, out=out_file(out, "report.html", force, named=False) if elsewhere else None,
                        force=force)
    run = discover(run_dir, exclude=(path,))
    if as_json:
        echo_json({"report": str(path), "bytes": path.stat().st_size, **run.to_dict()})
        return
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {len(run.figures)} figures, "
               f"{len(run.metrics)} epochs of metrics, {len(run.docs)} JSON files")
    for note in run.notes + run.metrics_errors:
        warn(note)
