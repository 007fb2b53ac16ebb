"""The `cnnlab` group: --help lists every command and each command's --help works, `python -m cnnlab`
runs, a command whose module is broken fails loudly, and the model options are declared once."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import cnnlab.cli as cli
from cnnlab.cli import COMMANDS, main
from cnnlab.cli.common import MODEL_OPTIONS, ModelChoice, model_options


#: Command modules whose every option is checked for help text here (the others: their own tests).
DOCUMENTED = {"predict", "graph", "serve", "report", "tour", "scratch", "models"}


def test_help_lists_every_command_and_every_command_has_help():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0, r.output
    listed = r.output.split("Commands:", 1)[1]
    for name in COMMANDS:
        assert f"  {name} " in listed, name
    for name, (module, _) in COMMANDS.items():
        r = CliRunner().invoke(main, [name, "--help"])
        assert r.exit_code == 0 and f"Usage: main {name}" in r.output, (name, r.output)
        command = main.get_command(click.Context(main), name)
        assert command.help, name
        if module in DOCUMENTED:
            for param in command.params:
                if isinstance(param, click.Option):
                    assert param.help, f"{name} {param.opts[0]} has no help text"


def test_python_dash_m_cnnlab():
    r = subprocess.run([sys.executable, "-m", "cnnlab", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "predict" in r.stdout and "inspect" in r.stdout, r.stderr[-2000:]


def test_a_broken_command_module_fails_loudly(monkeypatch):
    monkeypatch.setitem(COMMANDS, "broken", ("no_such_module", "broken_cmd"))
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        main.get_command(click.Context(main), "broken")
    r = CliRunner().invoke(main, ["--help"])
    assert isinstance(r.exception, ModuleNotFoundError)  # never a listing that quietly leaves it out
    assert cli.LazyGroup.list_commands(main, click.Context(main))[-1] == "broken"


def test_model_options_are_one_declaration_and_arrive_as_one_choice():
    assert [o(lambda: None).__click_params__[0].name for o in MODEL_OPTIONS] == \
        [f.name for f in dataclasses.fields(ModelChoice)]
    seen = []

    @click.command()
    @model_options
    @click.option("--k", default=1, help="A number.")
    def cmd(model_choice: ModelChoice, k: int) -> None:
        seen.append((model_choice, k))

    @click.command()
    @model_options
    def legacy(model_name: str | None, weights: str | None, normalize: str | None) -> None:
        seen.append((model_name, weights, normalize))

    assert CliRunner().invoke(cmd, ["--model", "cifar_resnet20", "--normalize", "none", "--k", "2"]).exit_code == 0
    assert seen[-1] == (ModelChoice("cifar_resnet20", None, "none"), 2)
    assert CliRunner().invoke(legacy, ["--weights", __file__]).exit_code == 0
    assert seen[-1] == (None, __file__, None)
    names = [p.name for p in cmd.params]
    assert names == [f.name for f in dataclasses.fields(ModelChoice)] + ["k"]  # --help order: the model first


def test_a_full_disk_anywhere_in_a_command_is_one_sentence(tmp_path, monkeypatch):
    """Whatever write a full disk strikes (here a command's first), the user reads one sentence naming
    the file, not an OSError traceback."""
    import errno

    import click
    from click.testing import CliRunner

    from cnnlab.cli import COMMANDS, main

    @click.command("fill")
    def fill() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "summary.json"))

    import sys
    import types
    monkeypatch.setitem(COMMANDS, "fill", ("fill_disk", "fill"))
    monkeypatch.setitem(sys.modules, "cnnlab.cli.fill_disk", types.SimpleNamespace(fill=fill))
    r = CliRunner().invoke(main, ["fill"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.strip() == f"error: Could not write '{tmp_path / 'out' / 'summary.json'}' (no space left on the " \
                               "disk); free disk space and try again."
