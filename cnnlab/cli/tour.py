"""`cnnlab tour`: thin shell over cnnlab.tour.run_tour."""
from __future__ import annotations

import click

from .common import device_option


@click.command("tour")
@click.option("--out", default="runs/tour", show_default=True, type=click.Path(file_okay=False),
              help="Directory for summary.json, inspect.json, figures/ and report.html.")
@click.option("--force", is_flag=True, help="Write into --out even if it is not empty.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of the human summary.")
@device_option()
def tour_cmd(out: str, force: bool, as_json: bool, device: str) -> None:
    """The offline tour: the bundled EfficientNet-Lite0 on scikit-image's photos (inspect, predict, and
    every area's tour section), written to one directory with figures and a report."""
    from ..errors import CnnlabError
    from ..tour import run_tour
    from .common import echo_json
    result = run_tour(out, force=force, echo=(lambda s: None) if as_json else click.echo, device=device)
    if as_json:
        echo_json(result.summary)
    else:
        t = result.summary["timings_s"]
        click.echo(f"\nwrote {len(result.files)} files to {result.out}/ in {t['total']:.1f} s: summary.json, "
                   f"inspect.json, figures/ ({sum(f.startswith('figures') for f in result.files)} figures)"
                   + (", report.html" if "report.html" in result.files else ""))
        click.echo("times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items() if not k.startswith("total")))
    if result.failed:
        raise CnnlabError(f"Tour sections failed: {'; '.join(f'{k}: {v}' for k, v in result.failed.items())} "
                          f"(tracebacks in {result.out}/summary.json).")
