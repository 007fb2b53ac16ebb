"""`cnnlab serve`: the local explorer page for a model (thin: parse, call cnnlab.serve.serve, print)."""
from __future__ import annotations

import click

from .common import ModelChoice, model_options, warn


@click.command("serve")
@model_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback: only this computer can connect).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--max-upload-mb", type=click.FloatRange(0.1, 200), default=16, show_default=True,
              help="Largest image upload accepted, in megabytes.")
def serve_cmd(model_choice: ModelChoice, host: str, port: int, max_upload_mb: float) -> None:
    """A local web page to explore a model: top-5, saliency, Grad-CAM, feature maps, attacks."""
    from .. import serve as explorer
    if not explorer.is_loopback(host):
        warn(f"binding to {host} makes the explorer reachable from other computers; it has no "
             "authentication. Use --host 127.0.0.1 unless you mean it.")
    model = model_choice.load()
    explorer.serve(model, host=host, port=port, max_upload_mb=max_upload_mb,
                   announce=lambda url: click.echo(f"cnnlab explorer for '{model.name}' at {url}  (Ctrl+C stops it)"))
