"""`cnnlab serve` end to end: a real server in a subprocess announces its URL and answers; a bad
--weights is one error; binding beyond loopback warns."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from cnnlab.models import Classifier
from tests.conftest import shared
from tests.serve.test_app import _http_post


@pytest.mark.slow
def test_cli_serve_end_to_end(tmp_path: Path) -> None:
    """`cnnlab serve --port 0` in a subprocess: it announces its URL and answers; a bad --weights is one error."""
    weights = shared("weights/akamaster_cifar10_resnet20-12fca82f.th")
    cmd = [sys.executable, "-m", "cnnlab", "serve", "--model", "cifar_resnet20", "--weights", str(weights), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        info = json.loads(urllib.request.urlopen(m.group(1) + "api/model", timeout=30).read())
        assert info["name"] == "cifar_resnet20" and info["layers"] == ["act", "layer1", "layer2", "layer3"]
        body = _http_post(m.group(1) + "api/predict", {"photo": "chelsea"})
        assert body["top"][0]["label"] == "cat"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    r = subprocess.run([sys.executable, "-m", "cnnlab", "serve", "--model", "cifar_resnet20", "--weights",
                        str(tmp_path / "missing.pt")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1


def test_cli_serve_warns_when_binding_beyond_loopback(monkeypatch: pytest.MonkeyPatch, resnet20: Classifier) -> None:
    from click.testing import CliRunner

    import cnnlab.serve as serve_pkg
    from cnnlab.cli import main
    from cnnlab.cli.common import ModelChoice
    calls = []
    monkeypatch.setattr(ModelChoice, "load", lambda self, **k: resnet20)
    monkeypatch.setattr(serve_pkg, "serve", lambda model, **kw: calls.append(kw))
    r = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", "8123"])
    assert r.exit_code == 0 and "warning: binding to 0.0.0.0" in r.output and "no authentication" in r.output
    assert calls[0]["host"] == "0.0.0.0" and calls[0]["port"] == 8123
    r = CliRunner().invoke(main, ["serve"])
    assert "warning" not in r.output and calls[1]["host"] == "127.0.0.1" and calls[1]["port"] == 8000
