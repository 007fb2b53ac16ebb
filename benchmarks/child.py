"""Side-by-side benchmarks run each measurement in a fresh process: the child prints one `RESULT {json}`
line, the parent reads it back."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def emit(result: dict) -> None:
    """The child's answer to its parent."""
    print("RESULT " + json.dumps(result), flush=True)


def run_child(script: str, args: list[str], env: dict, cwd: str | Path) -> tuple[dict | None, str]:
    """Run `script` with `args` in a fresh interpreter; (its RESULT, or None if it printed none; its stderr)."""
    p = subprocess.run([sys.executable, script, *args], env=env, cwd=cwd, capture_output=True, text=True)
    line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
    return (json.loads(line[7:]) if line else None), p.stderr
