"""`cnnlab models [NAME]`: the registered models, or one model's arguments, input, weights and recipe."""
from __future__ import annotations

import click

from .common import echo_json, key_values_text


@click.command("models")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the list (or the model's description) as JSON.")
def models_cmd(name: str | None, as_json: bool) -> None:
    """List the registered models and whether their weights are available offline; with NAME, describe
    that model: its arguments (--model-arg KEY=VALUE) with defaults and meanings, the images it takes,
    its published weights and the training recipe `cnnlab train` uses unless told otherwise."""
    from ..models import get_entry, list_models
    if name is not None:
        entry = get_entry(name).to_dict()
        if as_json:
            echo_json(entry)
        else:
            _describe(entry)
        return
    rows = [{k: e[k] for k in ("name", "family", "description", "pretrained", "offline", "classes")}
            for e in (entry.to_dict() for entry in list_models())]
    if as_json:
        echo_json(rows)
        return
    width = max(len(r["name"]) for r in rows) + 2
    click.echo(f"{'name':<{width}}{'family':<10}{'weights':<18}description")
    for r in rows:
        click.echo(f"{r['name']:<{width}}{r['family']:<10}{_weights_word(r):<18}{r['description']}")
    click.echo(f"\n{len(rows)} models; 'download' weights are fetched into the torch hub cache on first use "
               "(offline: copy the file there, or pass --weights PATH). `cnnlab models NAME` lists a model's "
               "arguments and recipe.")
    click.echo("\nOther models:\n"
               "  timm/NAME      any timm model (pip install timm), e.g. --model timm/resnet18 or timm/convnext_tiny; "
               "names: python -c 'import timm; print(timm.list_models(pretrained=True))'; weights come from the "
               "Hugging Face hub into its cache (offline: `hf download timm/NAME.TAG` beforehand).\n"
               "  torchvision    the torchvision names above (family imagenet) with torchvision's DEFAULT weights.\n"
               "  your own       in Python, any nn.Module: cnnlab.wrap(module, labels=..., input_size=...), or pass it "
               "to any function directly; a file from another framework: --model-file (ONNX, Keras, TF).")


def _weights_word(entry: dict) -> str:
    return {"bundled": "bundled (offline)", "none": "none"}.get(entry["pretrained"]) or (
        "cached (offline)" if entry["offline"] else "download")


def _input(cfg: dict) -> str:
    h, w = cfg["input_size"]
    resize = (f"short side {cfg['resize']}, centre crop" if cfg["resize"] else "whole image resized")
    mean = ", ".join(f"{m:.4g}" for m in cfg["mean"])
    std = ", ".join(f"{s:.4g}" for s in cfg["std"])
    return f"{h}x{w} px ({resize}, {cfg['interpolation']}); mean ({mean}), std ({std})"


def _describe(e: dict) -> None:
    click.echo(f"{e['name']}  (family {e['family']}): {e['description']}")
    click.echo(f"  input:     {_input(e['cfg'])}")
    click.echo(f"  classes:   {e['classes']} by default, named by the weights or the training data "
               "('class 0', 'class 1', ... otherwise)")
    w = e["weights"]
    if w is None:
        click.echo("  weights:   none published (train it, or pass --weights CHECKPOINT)")
    else:
        where = w["url"] or f"the Python package {w['bundled']}"
        click.echo(f"  weights:   {_weights_word(e)}: {where}")
        click.echo(f"             {w['dataset']} classes; {_input(w)}" + (f"; {w['source']}" if w["source"] else ""))
    args = e["arguments"]
    if args:
        click.echo("  arguments (--model-arg KEY=VALUE, or create_model(name, KEY=VALUE)):")
        rows = [(a["name"], _value(a["default"]), a["type"], a["help"]) for a in args]
        widths = [max(len(r[i]) for r in rows + [("name", "default", "values", "")]) + 2 for i in range(3)]
        click.echo("    " + "".join(h.ljust(wd) for h, wd in zip(("name", "default", "values"), widths)) + "meaning")
        for r in rows:
            click.echo("    " + "".join(c.ljust(wd) for c, wd in zip(r[:3], widths)) + r[3])
    else:
        click.echo("  arguments: none besides pretrained and num_classes")
    if e["recipe"]:
        click.echo("  training recipe (what `cnnlab train` uses unless told otherwise):")
        click.echo("    " + "  ".join(f"{k}={_value(v)}" for k, v in e["recipe"].items()))
    else:
        click.echo("  training recipe: cnnlab train's defaults")
    click.echo(f"  initialization (untrained): {e['weight_init']}")
    if e["init"]:
        click.echo(f"  then, from the training data: {e['init']}")


def _value(v: object) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    if isinstance(v, dict):  # as the command line takes it: --freeze-after whiten.bias=3
        return "{" + key_values_text(v) + "}"
    return str(v)
