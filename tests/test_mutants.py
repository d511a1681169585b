"""The conformance vectors catch every mutant of the catalogue (tests/mutants.py): each broken
variant of the reference fails at least one of the vectors named for it, which the unbroken
reference passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from obscura_ref.conformance.results import FAILED, PASSED, CaseResult
from obscura_ref.conformance.runner import replay_reference

from .mutants import MUTANTS, MUTANTS_MD, ROOT, Mutant, regenerate

VECTORS = ROOT / "conformance" / "vectors"
NAMED = sorted({vector for m in MUTANTS for vector in m.vectors})


def outcomes(results: list[CaseResult]) -> str:
    lines = []
    for r in results:
        detail = r.detail.splitlines()[0] if r.detail else ""
        lines.append(f"  {r.file}#{r.tc_id} {r.outcome} ({r.seconds:.1f} s) {detail}".rstrip())
    return "\n".join(lines)


def replay(vectors: list[str]) -> list[CaseResult]:
    results = replay_reference(VECTORS, vectors)
    replayed = sorted(f"{r.file}#{r.tc_id}" for r in results)
    assert replayed == sorted(vectors), (
        f"the catalogue names vectors that do not exist (renumbered?): replayed {replayed}"
    )
    return results


def test_the_catalogue_is_well_formed() -> None:
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names)) >= 30
    chapters = {"wire", "handshake", "connection", "node", "manager", "privacy"}
    assert {m.chapter for m in MUTANTS} == chapters
    for m in MUTANTS:
        assert m.breaks and m.requirements and 1 <= len(m.vectors) <= 3, m.name


def test_mutants_md_is_current() -> None:
    text = MUTANTS_MD.read_text(encoding="utf-8")
    assert text == regenerate(text), (
        f"{Path('conformance') / MUTANTS_MD.name} is stale: run `.venv/bin/python -m tests.mutants`"
    )


def test_the_reference_passes_every_vector_the_catalogue_names() -> None:
    results = replay(NAMED)
    assert all(r.outcome == PASSED for r in results), (
        "the unmutated reference must pass every vector a mutant is caught by:\n"
        + outcomes(results)
    )


# An exception on the reference's thread would fail the vectors for the wrong reason.
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_the_vectors_catch_the_mutant(mutant: Mutant, monkeypatch: pytest.MonkeyPatch) -> None:
    mutant.apply(monkeypatch)
    results = replay(list(mutant.vectors))
    assert any(r.outcome == FAILED for r in results), (
        f"mutant {mutant.name} ({', '.join(mutant.requirements)}: {mutant.breaks}) survived; "
        f"the vectors that should catch it:\n{outcomes(results)}"
    )
