"""`cnnlab transfer`: penultimate features of a pretrained model + a linear probe on a photo dataset."""
from __future__ import annotations

import click

from .common import (
    ModelChoice,
    echo_json,
    fresh_out_dir,
    join_processes,
    model_options,
    warn,
)


@click.command("transfer")
@model_options
@click.option("--data", required=True, help="pets, miniplaces, cifar10, cifar100, a folder of class folders (or "
              "with train/ and test/ or val/ inside), or an .npz/.npy of labelled images.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="The folder of a named dataset (default: $CNNLAB_DATA/pets, $CNNLAB_DATA/miniplaces; "
                   "$CNNLAB_DATA defaults to ~/.cache/cnnlab/datasets).")
@click.option("--download", is_flag=True, help="Download Oxford-IIIT Pets (about 800 MB) if it is not in --data-dir.")
@click.option("--classifier", type=click.Choice(["logreg", "svm"]), default="logreg", show_default=True,
              help="Multinomial logistic regression or a linear SVM; L2 strength chosen by 5-fold CV on train.")
@click.option("--C", "C", type=float, default=None, help="Fix the inverse L2 strength instead of cross-validating.")
@click.option("--no-l2", is_flag=True, help="Do not L2-normalize the features.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Feature cache folder (default: $CNNLAB_CACHE/features, $CNNLAB_CACHE defaulting to "
                   "~/.cache/cnnlab).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the feature cache.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Held-out fraction per class for a folder without train/test (or a file without 'split').")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of that split and of the CV folds.")
@click.option("--batch-size", type=click.IntRange(1, None), default=64, show_default=True,
              help="Images per forward pass of the feature extraction.")
@click.option("--workers", type=click.IntRange(0, None), default=None, help="Decoding threads [2-4].")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write result.json and confusion.png into this (new or empty) folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON (keys: top1, top5, "
              "mean_class_accuracy, mean_average_precision, per_class, n_train, n_test, feature_dim, seconds, ...).")
def transfer_cmd(model_choice: ModelChoice, data: str, data_dir: str | None,
                 download: bool, classifier: str, C: float | None, no_l2: bool, cache_dir: str | None,
                 no_cache: bool, test_fraction: float, seed: int, batch_size: int, workers: int | None,
                 out: str | None, as_json: bool) -> None:
    """Linear probe on a model's penultimate features: accuracy, mean class accuracy, per class.

    Features are cached, so a second probe (another --classifier, --C or --no-l2) costs seconds.
    Images that fail to decode are skipped and counted. Under `torchrun --nproc-per-node N -m cnnlab
    transfer ...` each process extracts the features of its share of the batches (one GPU each, or CPU
    processes) and the first fits the probe and prints.
    """
    from ..transfer import run_probe
    ctx = join_processes(model_choice.device)
    out_dir = fresh_out_dir(out) if out and ctx.is_main else None
    model = model_choice.load()
    result = run_probe(model, data, classifier, data_dir=data_dir, download=download or None, l2=not no_l2,
                       cache_dir=False if no_cache else cache_dir, batch_size=batch_size, workers=workers,
                       seed=seed, test_fraction=test_fraction, C=C, log=warn)
    if not ctx.is_main:
        return
    if result.skipped:
        first = result.skipped[0]
        warn(f"skipped {len(result.skipped)} images that could not be decoded (first: {first[1]})")
    files = result.save(out_dir) if out_dir is not None else {}
    if as_json:
        echo_json(result.to_dict())
        return
    p = result.probe
    click.echo(f"model {result.model}  data {result.data}  features {p.feature_dim}-d"
               f"{' L2-normalized' if result.train.l2 else ''}  cache {result.train.cache_status}/{result.test.cache_status}")
    click.echo(f"train {p.n_train}  test {p.n_test}  classes {len(p.classes)}  skipped {len(result.skipped)}")
    cv = f"chosen by {p.cv_folds}-fold CV" if p.cv_folds else "fixed"
    click.echo(f"{p.classifier}: C={p.C:g} ({cv})" + "".join(f"; note: {n}" for n in p.notes))
    click.echo("")
    click.echo(p.table())
    click.echo("")
    click.echo(f"top-1 accuracy           {100 * p.top1:6.2f}%")
    click.echo(f"mean per-class accuracy  {100 * p.mean_class_accuracy:6.2f}%")
    click.echo(f"mean average precision   {100 * p.metrics.mean_average_precision:6.2f}%")
    click.echo(f"seconds                  {result.seconds:6.1f}  (features {result.train.seconds + result.test.seconds:.1f}, "
               f"probe {p.seconds:.1f})")
    if files:
        click.echo(f"wrote {files['json']} and {files['confusion']}")
