"""The `cnnlab` command: a thin shell over the library (parse, call, print; no logic of its own).

Commands live in small modules named for what they run, and are imported only when invoked, so
`cnnlab predict` does not pay for importing the training, report or attack code. (`import cnnlab`,
which runs first, keeps idle OpenMP threads from spinning: see cnnlab/__init__.py.)

One convention for every command:
- What a command acts on is an argument: image files (`predict`, `attack`, `saliency`, `featmaps`,
  `dream`), a checkpoint or run directory (`eval`, `predict-set`, `report`, `compare`), a model
  file (`inspect`). A dataset is always `--data` (a name, an .npz/.npy file or a folder), and the
  model always comes from the model options (`--model`, `--weights`, `--model-file`, ...).
- `--out DIR` is the directory the command writes (refused when it already holds files, unless
  `--force`); a command writing a single file names it inside DIR (`--filename` where it matters).
- `-k/--top-k` is "how many of the best"; `--json` prints the result as JSON with the same key for
  the same quantity everywhere: `top1`, `top5`, `mean_class_accuracy`, `mean_average_precision`,
  `robust_top1` (accuracy under attack), `success_rate`, `loss`; a training run prefixes them with
  `train_`/`val_` (and `best_`).
- `-q/--quiet`, accepted by every command (and by `cnnlab` itself), silences the progress bars.
"""
from __future__ import annotations

import errno
import importlib
import sys

import click

from ..errors import CnnlabError
from ..progress import set_quiet

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


def _quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        set_quiet(True)
    return value


def quiet_option() -> click.Option:
    """-q/--quiet: every command has it (added by LazyGroup), so it may come before or after the command name."""
    return click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, is_eager=True, callback=_quiet,
                        help="No progress bars or progress lines.")


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs (or --help lists it).

    A command whose module fails to import fails loudly with its traceback: nothing is hidden."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        command = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        if not getattr(command, "takes_quiet", False):
            command.takes_quiet = True
            # a command whose options are built lazily (train's) takes it without building them now
            add = getattr(command, "add_shared_option", None)
            (add if add is not None else command.params.append)(quiet_option())
        return command

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
        finally:
            set_quiet(False)  # a caller in the same process (a test, a notebook) gets its progress back


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cnnlab")
@click.option("-q", "--quiet", is_flag=True, expose_value=False, is_eager=True, callback=_quiet,
              help="No progress bars or progress lines (every command also takes -q).")
def main() -> None:
    """cnnlab: predict with, look inside, attack, train and transfer convolutional image classifiers."""
