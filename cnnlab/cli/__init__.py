"""The `cnnlab` command: a thin shell over the library (parse, call, print; no logic of its own).

Commands live in small modules named for what they run, and are imported only when invoked, so
`cnnlab predict` does not pay for importing the training, report or attack code. (`import cnnlab`,
which runs first, keeps idle OpenMP threads from spinning: see cnnlab/__init__.py.)
"""
from __future__ import annotations

import errno
import importlib
import sys

import click

from ..errors import CnnlabError

#: Errors of the file system, not of cnnlab: no space, no quota, no permission, read-only.
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}

#: command name -> (module under cnnlab.cli, function name)
COMMANDS = {
    "models": ("models", "models_cmd"),
    "predict": ("predict", "predict_cmd"),
    "inspect": ("graph", "inspect_cmd"),
    "tour": ("tour", "tour_cmd"),
    "train": ("train", "train_cmd"),
    "eval": ("train", "eval_cmd"),
    "predict-set": ("train", "predict_set_cmd"),
    "compare": ("train", "compare_cmd"),
    "attack": ("attack", "attack_cmd"),
    "attack-eval": ("attack", "attack_eval_cmd"),
    "patch": ("patch", "patch_cmd"),
    "fool": ("fool", "fool_cmd"),
    "featmaps": ("explain", "featmaps_cmd"),
    "filters": ("explain", "filters_cmd"),
    "saliency": ("explain", "saliency_cmd"),
    "dream": ("explain", "dream_cmd"),
    "top-activations": ("explain", "top_activations_cmd"),
    "transfer": ("transfer", "transfer_cmd"),
    "scratch-check": ("scratch", "scratch_check_cmd"),
    "report": ("report", "report_cmd"),
    "serve": ("serve", "serve_cmd"),
    "export": ("export", "export_cmd"),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs (or --help lists it).

    A command whose module fails to import fails loudly with its traceback: nothing is hidden."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except CnnlabError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except OSError as e:  # a full disk or a folder one may not write, wherever it struck: one sentence too
            if e.errno not in _DISK_ERRORS:
                raise
            from ..runs import write_failed
            click.echo(f"error: {write_failed(e.filename or 'a file', e)}", err=True)
            sys.exit(1)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cnnlab")
def main() -> None:
    """cnnlab: predict with, look inside, attack, train and transfer convolutional image classifiers."""
