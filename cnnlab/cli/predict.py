"""`cnnlab predict`: the top-k classes of image files (thin: parse, call cnnlab.predict_files, print).

`predict` is on the cold-start path: import nothing heavy here."""
from __future__ import annotations

import click

from .common import ModelChoice, echo_json, model_options, warn


@click.command("predict")
@click.argument("images", nargs=-1, required=True)
@model_options
@click.option("-k", "--top-k", "k", default=3, show_default=True, type=click.IntRange(1, None),
              help="How many classes to show per image.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, None),
              help="Images loaded and classified at once.")
@click.option("--json", "as_json", is_flag=True, help='Print [{"image", "top": [{"index", "label", "prob"}]}].')
def predict_cmd(images: tuple[str, ...], model_choice: ModelChoice, k: int, batch_size: int, as_json: bool) -> None:
    """Top-k classes with probabilities for each IMAGE (files or directories of images).

    Unreadable files are skipped and counted; the exit status is non-zero only if none succeeded.
    """
    from ..errors import CnnlabError
    from ..predictions import predict_files
    result = predict_files(model_choice.load(), images, k=k, batch_size=batch_size)
    for _, reason in result.skipped:
        warn(reason)
    if as_json:
        echo_json([p.to_dict() for p in result.predictions])
    else:
        for p in result.predictions:
            click.echo(p.image)
            for rank, top in enumerate(p.top, 1):
                click.echo(f"  {rank}. {top.label:<28} {top.prob:7.2%}  (class {top.index})")
    if result.skipped:
        warn(f"skipped {len(result.skipped)} of {result.files} images that could not be read")
    if not result.predictions:
        raise CnnlabError(f"None of the {result.files} images could be read; see the warnings above.")
