"""The benchmarks in bench/ still start: each one's --help, as a user would first run it.

They import the package's internals (a hub, the classifier, the history store), so a change that
moves a name breaks a benchmark without breaking any test of the package itself; this is that
test. Running them for real is for a quiet machine, not CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_starts_and_explains_itself(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=BENCH.parent,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
