"""`cnnlab report RUN_DIR` (one self-contained HTML file) and `cnnlab serve` (the local explorer page)."""
from __future__ import annotations

import click

from .common import echo_json, load_cli_model, model_options, warn


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output HTML file (default RUN_DIR/report.html).")
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@click.option("--json", "as_json", is_flag=True, help="Print what went into the report as JSON.")
def report_cmd(run_dir: str, out: str | None, force: bool, as_json: bool) -> None:
    """Write one self-contained HTML report (images embedded, no network) of a run directory."""
    from ..report import build_report, discover
    path = build_report(run_dir, out=out, force=force)
    run = discover(run_dir, exclude=(path,))
    if as_json:
        echo_json({"report": str(path), "bytes": path.stat().st_size, **run.to_dict()})
        return
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {len(run.figures)} figures, "
               f"{len(run.metrics)} epochs of metrics, {len(run.docs)} JSON files")
    for note in run.notes + run.metrics_errors:
        warn(note)


@click.command("serve")
@model_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback: only this computer can connect).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--max-upload-mb", type=click.FloatRange(0.1, 200), default=16, show_default=True,
              help="Largest image upload accepted.")
def serve_cmd(model_name: str | None, weights: str | None, normalize: str | None, host: str, port: int,
              max_upload_mb: float) -> None:
    """A local web page to explore a model: top-5, saliency, Grad-CAM, feature maps, attacks."""
    from ..serve import is_loopback, serve
    if not is_loopback(host):
        warn(f"binding to {host} makes the explorer reachable from other computers; it has no "
             "authentication. Use --host 127.0.0.1 unless you mean it.")
    model = load_cli_model(model_name, weights, normalize)
    serve(model, host=host, port=port, max_upload_mb=max_upload_mb,
          announce=lambda url: click.echo(f"cnnlab explorer for '{model.name}' at {url}  (Ctrl+C stops it)"))
