"""`cnnlab export`: a model as an ONNX file that runs anywhere (onnxruntime, TensorRT, browsers, ...)."""
from __future__ import annotations


import click

from .common import echo_json, load_cli_model, model_options, out_file


@click.command("export")
@model_options
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True,
              help="The file format to write.")
@click.option("--out", required=True, type=click.Path(), help="Directory to write the model file into (made if missing).")
@click.option("--filename", default=None, help="Name of the file in --out [default: the model's name, e.g. "
              "cifar_resnet20.onnx].")
@click.option("--opset", type=click.IntRange(9, None), default=17, show_default=True, help="ONNX opset version.")
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
@click.option("--json", "as_json", is_flag=True,
              help="Print path, opset, nodes, inputs, outputs, max_abs_diff (onnxruntime vs PyTorch) as JSON.")
def export_cmd(model_name: str | None, weights: str | None, normalize: str | None, fmt: str, out: str,
               filename: str | None, opset: int, force: bool, as_json: bool) -> None:
    """Write the model as ONNX: any batch size, [0,1] RGB images in, logits out, the normalization
    inside the graph, class names and preprocessing in the file's metadata. onnxruntime's outputs are
    checked against PyTorch's before the command succeeds; `--model-file` reads the file back."""
    from ..interop import export_onnx
    if filename is not None:
        path = out_file(out, filename, force)  # refuse before any work
    model = load_cli_model(model_name, weights, normalize)
    if filename is None:
        path = out_file(out, f"{model.name.replace('/', '_')}.{fmt}", force)
    result = export_onnx(model, path, opset=opset)
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(f"wrote {result.path}: {model.name}, ONNX opset {result.opset}, {result.nodes} nodes")
    click.echo(f"  input  {result.inputs}")
    click.echo(f"  output {result.outputs}")
    click.echo(f"  onnxruntime vs PyTorch on {result.batch_checked} random images: max |difference| "
               f"{result.max_abs_diff:.2g}")
