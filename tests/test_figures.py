"""cnnlab.figures: a Figure that ends a Jupyter cell draws as a PNG even though cnnlab never loads pyplot
(IPython learns to draw figures only from pyplot's inline backend)."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_a_figure_ending_a_cell_draws_without_pyplot() -> None:
    code = ("from IPython.core.interactiveshell import InteractiveShell\n"
            "shell = InteractiveShell.instance()\n"
            "from cnnlab.figures import new_figure\n"
            "fig, ax = new_figure(); ax[0, 0].plot([0, 1])\n"
            "data, _ = shell.display_formatter.format(fig)\n"
            "import sys\n"
            "print(sorted(data), data['image/png'][:4] == b'\\x89PNG', 'matplotlib.pyplot' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["['image/png',", "'text/plain']", "True", "False"]
