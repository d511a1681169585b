"""The benchmarks still run, end to end, and print every table (their figures are not judged
here: machines are noisy, and bench/RESULTS.md records a full run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_quick_run_prints_every_table_with_its_ratios() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in ("### Round trips", "### Handshakes", "### Idle", "### Decoding", "### Targets"):
        assert heading in out, f"{heading!r} missing from:\n{out}"
    assert "vs selectors: CPU" in out  # the ratios, beside the figures
    # Every target row has a verdict.
    targets = out.split("### Targets", 1)[1]
    rows = [row for row in targets.splitlines() if row.startswith("| ") and "verdict" not in row]
    assert rows and all(row.rstrip(" |").endswith(("met", "**missed**")) for row in rows)
