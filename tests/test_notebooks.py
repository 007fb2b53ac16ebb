"""The notebooks in notebooks/: each runs top to bottom in its smallest offline mode (CNNLAB_QUICK=1),
on this checkout's cnnlab, in a scratch folder, within its time budget; the stored copies carry the
outputs of a real run and read only what every installation has.

The stored notebooks are never written back: a test executes a copy in memory.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Wall-clock budget of one notebook in its quick mode (they take 20-60 s each on a loaded 2-core machine).
NOTEBOOK_BUDGET_S = 300


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'python3' kernelspec that runs this interpreter (the venv's), found before any other (JUPYTER_PATH)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (cnnlab tests)", "language": "python"}))
    return root


def test_there_is_a_notebook_per_assignment_and_a_first_one() -> None:
    names = {p.stem for p in NOTEBOOKS}
    assert "first_ten_minutes" in names and len(names) >= 6, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_notebook_reads_well_and_offline(path: Path) -> None:
    """Committed with the outputs of a run (no errors, cells run in order), a python3 kernel, and nothing
    read from outside what an installation has (no ../shared, no absolute paths of this machine)."""
    nb = _read(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    assert None not in counts and counts == sorted(counts), f"{path.name}: not run top to bottom before saving"
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert sum(bool(c["outputs"]) for c in code) >= len(code) // 2, f"{path.name}: stored without outputs"
    source = "\n".join("".join(c["source"]) for c in nb["cells"])
    assert "CNNLAB_QUICK" in source  # the switch this test runs it with
    for forbidden in ("../shared", "/work/", "/tmp/"):
        assert forbidden not in source, f"{path.name} mentions {forbidden}"
    text = json.dumps([c["outputs"] for c in code])
    assert "/work/" not in text and "\\u001b[" not in text, f"{path.name}: outputs hold machine paths or terminal codes"
    markdown = [c for c in nb["cells"] if c["cell_type"] == "markdown"]
    assert len(markdown) >= len(code) // 2, f"{path.name}: a sentence of why before the steps"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, kernel_dir: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("CNNLAB_QUICK", "1")
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join([str(kernel_dir), os.environ.get("JUPYTER_PATH", "")]))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    deadline = time.monotonic() + NOTEBOOK_BUDGET_S
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.timeout = max(1, int(deadline - time.monotonic()))  # what is left of the notebook's budget
            client.execute_cell(cell, index)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
