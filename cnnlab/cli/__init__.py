"""The `cnnlab` command: a thin shell over the library (parse, call, print; no logic of its own).

Commands live in small modules and are imported only when invoked, so `cnnlab predict` does not pay
for importing the training, report or attack code.
"""
from __future__ import annotations

import importlib
import os
import sys

# Before torch loads OpenMP: idle worker threads sleep instead of spinning. On a shared or busy CPU,
# spinning threads steal the cores the working ones need: measured on the project's 2-core machine
# under load, a one-image EfficientNet-Lite0 forward took 0.7-1.4 s with the default and 0.07 s
# with PASSIVE (benchmarks/results/foundation.md). A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click  # noqa: E402

from ..errors import CnnlabError

#: command name -> (module under cnnlab.cli, function name)
COMMANDS = {
    "models": ("basic", "models_cmd"),
    "predict": ("basic", "predict_cmd"),
    "inspect": ("basic", "inspect_cmd"),
    "tour": ("tour", "tour_cmd"),
    "train": ("train", "train_cmd"),
    "eval": ("train", "eval_cmd"),
    "predict-set": ("train", "predict_set_cmd"),
    "compare": ("train", "compare_cmd"),
    "attack": ("attack", "attack_cmd"),
    "attack-eval": ("attack", "attack_eval_cmd"),
    "patch": ("attack_more", "patch_cmd"),
    "fool": ("attack_more", "fool_cmd"),
    "featmaps": ("explain", "featmaps_cmd"),
    "filters": ("explain", "filters_cmd"),
    "saliency": ("explain", "saliency_cmd"),
    "dream": ("explain", "dream_cmd"),
    "top-activations": ("explain", "top_activations_cmd"),
    "transfer": ("transfer", "transfer_cmd"),
    "scratch-check": ("scratch", "scratch_check_cmd"),
    "report": ("report", "report_cmd"),
    "serve": ("report", "serve_cmd"),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._load(name, quiet=True) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name, quiet=False)

    def _load(self, name: str, quiet: bool) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as e:
            if quiet and e.name == f"{__name__}.{module}":
                return None
            raise
        return getattr(mod, attr, None)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CnnlabError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cnnlab")
def main() -> None:
    """cnnlab: predict with, look inside, attack, train and transfer convolutional image classifiers."""


if __name__ == "__main__":
    main()
