"""Which format a file holds, and one sentence naming the file for anything cnnlab cannot read; labels
files; the error that names the extra to install."""
from __future__ import annotations

import sys

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.interop import model_format


def test_formats_by_name_and_content(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    (tmp_path / "g.meta").write_bytes(b"\x0a\x00")
    (tmp_path / "noext").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(8))
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\x00")
    assert [model_format(tmp_path / n) for n in ("m.onnx", "g.meta", "noext", "saved")] == ["onnx", "tf1", "h5",
                                                                                           "savedmodel"]
    assert model_format(saved / "saved_model.pb") == "savedmodel"


@pytest.mark.parametrize("name, content, words", [
    ("notes.txt", b"hello, not a model", ["is not a model file", ".onnx", "--weights"]),
    ("empty.onnx", b"", ["is empty"]),
    ("broken.keras", b"garbage bytes", ["truncated or not a Keras file"]),
    ("missing.onnx", None, ["does not exist"]),
])
def test_none_of_these_is_one_sentence_naming_the_file(tmp_path, name, content, words):
    from cnnlab.interop import load_model_file
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CnnlabError) as e:
        load_model_file(path)
    msg = str(e.value)
    assert str(path) in msg and all(w in msg for w in words) and "\n" not in msg, msg


def test_a_pytorch_checkpoint_is_sent_to_weights(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CnnlabError, match="--weights"):
        model_format(path)


def test_a_directory_that_is_no_savedmodel(tmp_path):
    with pytest.raises(CnnlabError, match="no saved_model.pb"):
        model_format(tmp_path)


def test_a_missing_extra_is_named(monkeypatch, tmp_path):
    from cnnlab.interop.extras import require
    monkeypatch.setitem(sys.modules, "onnx2torch", None)  # as if not installed
    with pytest.raises(CnnlabError, match=r"pip install 'cnnlab\[onnx\]'"):
        require("onnx2torch", "Converting 'm.onnx' to PyTorch")
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(CnnlabError, match=r"pip install 'cnnlab\[tensorflow\]'"):
        require("tf2onnx", "Converting 'm.keras'")


def test_input_range_names():
    from cnnlab.interop.conventions import input_convention, range_name
    assert range_name("[0,1]") == "0-1" and range_name("0..255") == "0-255" and range_name("[-1, 1]") == "-1-1"
    caffe = input_convention("caffe")
    assert caffe.bgr and caffe.std[0] == pytest.approx(1 / 255)
    with pytest.raises(CnnlabError, match="Unknown input range"):
        range_name("0-100")
    with pytest.raises(CnnlabError, match="not both"):
        input_convention("0-1", "imagenet")
