"""The shared figure helpers: a Figure that ends a Jupyter cell draws as a PNG even though cnnlab never
loads pyplot (IPython learns to draw figures only from pyplot's inline backend), and the overlapping-text
check that every saved figure in the tests goes through."""
from __future__ import annotations

import subprocess
import sys

import torch

from cnnlab.figures import new_figure, text_overlaps
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


def test_text_overlaps_finds_colliding_titles_and_text_on_images():
    fig, axes = new_figure(2, 1, figsize=(3, 3))
    for ax in axes[:, 0]:
        ax.imshow(torch.rand(8, 8, 3).numpy())
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1, 0].set_title("a long title\nof\nfive\nlines\nhere", fontsize=14)  # reaches into the panel above
    axes[0, 0].set_xlabel("an x label")
    found = text_overlaps(fig)
    assert ("'an x label'", "'a long title of five lines here'") in found
    assert ("'a long title of five lines here'", "the image of panel 0") in found


def test_constrained_layout_keeps_the_same_panels_clear():
    fig, axes = new_figure(2, 1, figsize=(3, 5), layout="constrained")
    for ax in axes[:, 0]:
        ax.imshow(torch.rand(8, 8, 3).numpy())
    axes[1, 0].set_title("a long title\nof three\nlines", fontsize=10)
    axes[0, 0].set_xlabel("an x label")
    fig.suptitle("a suptitle")
    assert text_overlaps(fig) == []


def test_dollar_signs_print_as_written_and_log_ticks_still_render_as_powers(tmp_path) -> None:
    """User texts ('$x_$' would be broken math) print literally; a log axis keeps its 10^k tick labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from cnnlab.figures import new_figure
    fig, axes = new_figure(1, 2, figsize=(6, 2.5))
    axes[0][0].set_title("$x_$ run")
    axes[0][0].bar([0, 1], [1, 2])
    axes[0][0].set_xticks([0, 1], ["$a_$", "b$^"])
    axes[0][1].semilogy([1, 10, 100])
    fig.savefig(tmp_path / "f.png")  # no ParseException
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    assert axes[0][0].title.get_text() == r"\$x_\$ run" and not axes[0][0].title._preprocess_math(r"\$x_\$ run")[1]
    assert [t._preprocess_math(t.get_text())[0] for t in axes[0][0].get_xticklabels()] == ["$a_$", "b$^"]
    logs = [t for t in axes[0][1].get_yticklabels() if t.get_text()]
    assert logs and all(t._preprocess_math(t.get_text())[1] is True for t in logs)  # drawn as 10^k
