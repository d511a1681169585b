"""What replaying one conformance vector gave: the record every kind of vector reports.

The runner prints these, writes them as JSON or JUnit XML, and counts them. A failed ``MUST``
case is a failure; a failed ``SHOULD`` case is reported as *non-strict* and a ``MAY`` case as
*informational*, neither counting as a failure (spec/README.md, keywords).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The outcomes a case can have, in the order reports list them.
PASSED = "passed"
FAILED = "failed"
NON_STRICT = "non-strict"  # a SHOULD case that failed: conforms, but reported
INFORMATIONAL = "informational"  # a MAY case: what was seen, never a failure
SKIPPED = "skipped"  # could not be run against this target (say why in ``detail``)
OUTCOMES = (PASSED, FAILED, NON_STRICT, INFORMATIONAL, SKIPPED)


@dataclass
class CaseResult:
    file: str  # the vector file's name, e.g. "session-handshake.json"
    group: str  # the test group's name
    tc_id: int
    comment: str
    requirements: list[str]
    outcome: str  # one of OUTCOMES
    detail: str = ""  # for anything but passed: what differed, or why it was skipped
    seconds: float = 0.0
    level: str = "MUST"  # the strongest keyword among the requirements the case checks
    log: list[str] = field(default_factory=list)  # a transcript of the steps, for reports


def outcome_for_failure(level: str) -> str:
    """How a case that did not see what it expected is counted, by its level."""
    if level in ("MUST", "MUST NOT"):
        return FAILED
    if level in ("SHOULD", "SHOULD NOT"):
        return NON_STRICT
    return INFORMATIONAL
