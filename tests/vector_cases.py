"""The checked-in decision vectors of one kind, for tests that check them without the
reference (each against the spec's words, or another implementation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from obscura_ref.conformance import decision

ROOT = Path(__file__).resolve().parent.parent


def cases_of(file: str, kind: str) -> list[dict[str, Any]]:
    """The cases of ``kind`` in ``conformance/vectors/FILE``, in order."""
    return [c for name, _, c in decision.load_cases(ROOT) if name == file and c["decision"] == kind]
