"""The `cnnlab` group: --help lists every command and each command's --help works, `python -m cnnlab`
runs, a command whose module is broken fails loudly, and the model options are declared once."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import cnnlab.cli as cli
from cnnlab.cli import COMMANDS, main
from cnnlab.cli.common import MODEL_OPTIONS, ModelChoice, model_options


#: What a help text must not cite: course documents and their sections, issue numbers.
COURSE_CITATION = re.compile(r"\bseed[- ]?0\d\d\b|§|\b0\d\d §|\bissue \d+|\bhw\d|homework", re.IGNORECASE)


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


def test_every_option_of_every_command_has_help_citing_no_course_document():
    ctx = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert not COURSE_CITATION.search(command.help or ""), name
        names = [p.name for p in command.params]
        assert names.count("quiet") == 1, name  # the one -q/--quiet, on every command
        for param in command.params:
            if isinstance(param, click.Option):
                help_from = getattr(param, "help_from", None)  # help read from the library when shown
                help_text = param.help or (help_from() if help_from else "")
                assert help_text.strip(), f"{name} {param.opts[0]} has no help text"
                assert not COURSE_CITATION.search(help_text), f"{name} {param.opts[0]}: {help_text}"


def test_one_convention_for_out_top_k_and_data():
    """--out is a directory everywhere; 'how many of the best' is -k/--top-k; a dataset is --data."""
    ctx = click.Context(main)
    for name in COMMANDS:
        for param in main.get_command(ctx, name).params:
            if param.name == "out":
                assert not (isinstance(param.type, click.Path) and param.type.dir_okay is False), name
            if param.name == "k":
                assert {"-k", "--top-k"} <= set(param.opts), name
            if isinstance(param, click.Argument):
                assert param.name != "data", name


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


def test_shell_completion_as_the_readme_documents_it():
    """`eval "$(_CNNLAB_COMPLETE=bash_source cnnlab)"` completes commands and their options."""
    import os
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "_CNNLAB_COMPLETE": "bash_complete"}
    code = "from cnnlab.cli import main; main(prog_name='cnnlab')"
    for words, cword, want in (("cnnlab predict-", "1", "predict-set"), ("cnnlab top-activations --to", "2", "--top-k")):
        r = subprocess.run([sys.executable, "-c", code], env={**env, "COMP_WORDS": words, "COMP_CWORD": cword},
                           capture_output=True, text=True, timeout=120)
        assert want in r.stdout, (words, r.stdout, r.stderr[-500:])
    assert "_CNNLAB_COMPLETE=bash_source cnnlab" in (root / "README.md").read_text()
