"""Rebuild benchmarks/RESULTS.md from the per-area files in benchmarks/results/ (run after a benchmark).

    .venv/bin/python benchmarks/assemble_results.py
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["foundation", "training", "device", "attacks", "attacks_catalogue", "explain", "transfer", "reference", "report"]
HEADER = """# Benchmark results

The latest figures for every performance claim, one section per area, each with the command that
made it. The per-area sources are in `benchmarks/results/`; this file is assembled from them by
`benchmarks/assemble_results.py`. Machine: 2 cores, AMD EPYC, torch 2.14.1, no GPU. The host changes
from day to day: on most days an AVX-512 Zen 5, where oneDNN, which runs PyTorch's convolutions, reaches
~450 GFLOP/s on a fp32 matmul and MKL's sgemm behind `torch.mm` runs its AVX2 code (~200; ANCHORS.md's
"~108" was that); on 2026-11-30 and 12-01 an AVX2-only host, up to 3.5x slower. Each section names its host.
**Figures of the first session were mostly taken while several engineers shared these 2 cores
(load average 3-24); each file says which figures come from a quiet machine. Quote the side-by-side
ratios and medians, not absolute times.**

"""


def main() -> None:
    parts = [HEADER, "## Contents\n"]
    files = [HERE / "results" / f"{name}.md" for name in ORDER]
    files = [f for f in files if f.exists()] + sorted(
        f for f in (HERE / "results").glob("*.md") if f.stem not in ORDER)
    for f in files:
        title = f.read_text().splitlines()[0].lstrip("# ").strip()
        parts.append(f"- [{title}](results/{f.name})\n")
    for f in files:
        text = f.read_text()
        # demote headings by one level so each area is a section of this page
        lines = [("#" + line) if line.startswith("#") else line for line in text.splitlines()]
        parts.append("\n---\n\n" + "\n".join(lines) + "\n")
    (HERE / "RESULTS.md").write_text("".join(parts))
    print(f"wrote {HERE / 'RESULTS.md'} from {len(files)} files")


if __name__ == "__main__":
    main()
