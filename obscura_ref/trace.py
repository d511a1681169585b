"""The traceability checker: spec requirements <-> code citations <-> tests and vectors.

It reads the requirements of ``spec/*.md`` (the one form ``spec/README.md`` documents), the
``# spec: ID`` citations in ``obscura_ref/``, the ``@pytest.mark.spec(ID, ...)`` marks in
``tests/`` and the ``requirements`` lists of the cases in ``conformance/vectors/``. It reports
every problem and renders ``spec/TRACE.md``, one row per requirement.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

KEYWORDS = ("MUST NOT", "MUST", "SHOULD NOT", "SHOULD", "MAY")
# Levels that fail the check when uncited or untested; the others are reported only.
ENFORCED = frozenset({"MUST", "MUST NOT"})

_ID = r"[A-Z]+-\d+"
_DEFINITION = re.compile(
    rf"^- \*\*(?P<id>{_ID})\*\* \((?P<level>{'|'.join(KEYWORDS)})\) (?P<text>\S.*)$"
)
_LOOKS_LIKE_DEFINITION = re.compile(rf"^\s*[-*+]\s+\*\*{_ID}\*\*")
_RFC2119 = re.compile(
    r"\b(MUST NOT|MUST|SHALL NOT|SHALL|SHOULD NOT|SHOULD|MAY|REQUIRED|RECOMMENDED|OPTIONAL)\b"
)
_CITATION = re.compile(rf"#\s*spec:\s*(?P<ids>{_ID}(?:\s*,\s*{_ID})*)")
TRACE_FILE = "TRACE.md"


@dataclass
class Requirement:
    id: str
    level: str
    text: str
    where: str  # spec file and line
    code: set[str] = field(default_factory=set)
    tests: set[str] = field(default_factory=set)
    vectors: set[str] = field(default_factory=set)

    @property
    def status(self) -> str:
        missing = []
        if not self.code:
            missing.append("citation")
        if not (self.tests or self.vectors):
            missing.append("test or vector")
        return "complete" if not missing else "missing " + " and ".join(missing)


@dataclass
class Report:
    requirements: dict[str, Requirement]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check(root: Path) -> Report:
    """Read the tree at ``root`` and report every traceability problem."""
    problems: list[str] = []
    spec_dir = root / "spec"
    if not spec_dir.is_dir():
        return Report({}, [f"no spec/ folder under {root}"])
    requirements = _read_spec(root, spec_dir, problems)
    cited = {
        "code": _read_code(root, root / "obscura_ref"),
        "test": _read_tests(root, root / "tests", problems),
        "vector": _read_vectors(root, root / "conformance" / "vectors", problems),
    }
    for kind, citations in cited.items():
        for location, ids in sorted(citations.items()):
            for req_id in sorted(ids):
                requirement = requirements.get(req_id)
                if requirement is None:
                    problems.append(
                        f"{location}: {kind} cites {req_id}, which spec/ does not define"
                    )
                    continue
                {
                    "code": requirement.code,
                    "test": requirement.tests,
                    "vector": requirement.vectors,
                }[kind].add(location)
    for requirement in requirements.values():
        if requirement.level in ENFORCED and requirement.status != "complete":
            problems.append(
                f"{requirement.where}: {requirement.id} ({requirement.level}) is "
                f"{requirement.status}"
            )
    return Report(requirements, problems)


def _read_spec(root: Path, spec_dir: Path, problems: list[str]) -> dict[str, Requirement]:
    requirements: dict[str, Requirement] = {}
    for path in sorted(spec_dir.glob("*.md")):
        if path.name == TRACE_FILE:
            continue
        in_code_block = False  # examples inside ``` fences define nothing
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_code_block = not in_code_block
            if in_code_block:
                continue
            where = f"{path.relative_to(root).as_posix()}:{number}"
            match = _DEFINITION.match(line)
            if match is None:
                if _LOOKS_LIKE_DEFINITION.match(line):
                    problems.append(f"{where}: malformed requirement (see spec/README.md)")
                continue
            req_id, level, text = match["id"], match["level"], match["text"]
            keywords = _RFC2119.findall(text)
            if keywords != [level]:
                problems.append(
                    f"{where}: {req_id} is marked {level} but its sentence has the keywords "
                    f"{keywords}; a requirement has exactly its one keyword"
                )
            if req_id in requirements:
                problems.append(
                    f"{where}: {req_id} is defined twice (first at {requirements[req_id].where})"
                )
                continue
            requirements[req_id] = Requirement(req_id, level, text, where)
    return requirements


def _read_code(root: Path, code_dir: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(code_dir.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = _CITATION.search(line)
            if match:
                location = f"{path.relative_to(root).as_posix()}:{number}"
                found[location] = set(re.findall(_ID, match["ids"]))
    return found


def _read_tests(root: Path, tests_dir: Path, problems: list[str]) -> dict[str, set[str]]:
    """IDs from every ``pytest.mark.spec(...)`` call, by the test function holding it."""
    found: dict[str, set[str]] = {}
    for path in sorted(tests_dir.rglob("*.py")) if tests_dir.is_dir() else []:
        relative = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
        owners: dict[int, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                for inner in ast.walk(node):
                    owners.setdefault(id(inner), f"{relative}::{node.name}")
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "spec"
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "mark"
            ):
                continue
            location = owners.get(id(node), relative)
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(location, set()).add(arg.value)
                else:
                    problems.append(f"{relative}:{node.lineno}: spec marks take literal IDs only")
    return found


def _read_vectors(root: Path, vectors_dir: Path, problems: list[str]) -> dict[str, set[str]]:
    """IDs from the ``requirements`` of every case (an object with a ``tcId``)."""
    found: dict[str, set[str]] = {}
    for path in sorted(vectors_dir.rglob("*.json")) if vectors_dir.is_dir() else []:
        relative = path.relative_to(root).as_posix()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            problems.append(f"{relative}: not JSON: {exc}")
            continue
        for case in _cases(document):
            ids = case.get("requirements", [])
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                problems.append(f"{relative}: case {case['tcId']}: requirements must be strings")
                continue
            found.setdefault(f"{relative}#{case['tcId']}", set()).update(ids)
    return found


def _cases(node: object) -> list[dict[str, object]]:
    if isinstance(node, dict):
        if "tcId" in node:
            return [node]
        return [case for value in node.values() for case in _cases(value)]
    if isinstance(node, list):
        return [case for value in node for case in _cases(value)]
    return []


def render_trace(report: Report) -> str:
    """spec/TRACE.md: one row per requirement, with its code, tests, vectors and status."""
    rows = [
        "# Traceability",
        "",
        "Generated by `obscura-ref spec check` from `spec/`, the `# spec:` citations in",
        "`obscura_ref/`, the `spec` marks in `tests/` and the cases in `conformance/vectors/`.",
        "Do not edit by hand. How to read it: `spec/README.md`.",
        "",
    ]
    counts: dict[str, int] = {}
    for requirement in report.requirements.values():
        counts[requirement.status] = counts.get(requirement.status, 0) + 1
    rows.append(
        f"{len(report.requirements)} requirements: "
        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        + "."
    )
    rows += [
        "",
        "| ID | level | requirement | code | tests | vectors | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report.requirements.values():
        text = r.text.replace("|", "\\|")
        rows.append(
            f"| {r.id} | {r.level} | {text} | {_links(r.code)} | {_links(r.tests)} | "
            f"{_vector_links(r.vectors)} | {r.status} |"
        )
    return "\n".join(rows) + "\n"


def _links(locations: set[str]) -> str:
    """Locations as links relative to spec/, ``path:line`` and ``path::test`` alike."""
    links = []
    for location in sorted(locations, key=_natural):
        path, _, rest = location.partition(":")
        anchor = f"#L{rest}" if rest.isdigit() else ""
        links.append(f"[{location}](../{path}{anchor})")
    return "<br>".join(links)


def _vector_links(locations: set[str]) -> str:
    by_file: dict[str, list[str]] = {}
    for location in locations:
        path, _, case = location.partition("#")
        by_file.setdefault(path, []).append(case)
    return "<br>".join(
        f"[{path}](../{path}) cases {', '.join(sorted(cases, key=int))}"
        for path, cases in sorted(by_file.items())
    )


def _natural(text: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def run(root: Path, write: bool) -> tuple[Report, bool]:
    """Check the tree; write spec/TRACE.md when ``write``, else report whether it is stale.
    Returns the report and whether TRACE.md is (now) current."""
    report = check(root)
    trace_path = root / "spec" / TRACE_FILE
    rendered = render_trace(report)
    current = trace_path.is_file() and trace_path.read_text(encoding="utf-8") == rendered
    if write and not current and (root / "spec").is_dir():
        trace_path.write_text(rendered, encoding="utf-8")
        current = True
    return report, current
