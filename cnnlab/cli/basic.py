"""`cnnlab models`: the registered networks (thin: parse, call cnnlab.list_models, print)."""
from __future__ import annotations

import click

from .common import echo_json


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def models_cmd(as_json: bool) -> None:
    """List the registered models and whether their weights are available offline."""
    from ..models import list_models
    rows = [{"name": e.name, "family": e.family, "description": e.description, "pretrained": e.pretrained,
             "offline": e.weights_available_offline(), "classes": e.default_classes} for e in list_models()]
    if as_json:
        echo_json(rows)
        return
    width = max(len(r["name"]) for r in rows) + 2
    click.echo(f"{'name':<{width}}{'family':<10}{'weights':<18}description")
    for r in rows:
        weights = {"bundled": "bundled (offline)", "none": "none"}.get(r["pretrained"]) or (
            "cached (offline)" if r["offline"] else "download")
        click.echo(f"{r['name']:<{width}}{r['family']:<10}{weights:<18}{r['description']}")
    click.echo(f"\n{len(rows)} models; 'download' weights are fetched into the torch hub cache on first use "
               "(offline: copy the file there, or pass --weights PATH).")
