"""The benchmarks still run (their figures are not judged here: machines are noisy)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("roundtrip.py", ["--seconds", "0.2", "--connections", "2", "--repeat", "1"], "vs asyncio"),
        ("handshakes.py", ["--seconds", "0.2"], "ratio"),
        ("idle.py", ["--connections", "20"], "KiB per connection"),
        ("decode.py", ["--budget", "0.01"], "ratio"),
    ],
)
def test_benchmark_runs_and_prints_its_ratios(script: str, args: list[str], expected: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
