"""The traceability checker: spec requirements <-> code citations <-> tests and vectors.

It reads the requirements of ``spec/*.md`` (the one form ``spec/README.md`` documents), the
``# spec: ID`` citations in ``obscura_ref/``, the ``@pytest.mark.spec(ID, ...)`` marks in
``tests/`` and the ``requirements`` lists of the cases in ``conformance/vectors/``. It reports
every problem and renders ``spec/TRACE.md``, one row per requirement.

Each requirement names how it can be checked from outside the node: by ``codec``, ``session``
or ``decision`` vectors, or ``local`` (nothing outside can see it). An enforced requirement that
can be seen from outside needs a vector of one of its kinds, and a vector may claim only a
requirement of its own kind, read from the file's ``schema``.
"""

from __future__ import annotations

import ast
import json
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

KEYWORDS = ("MUST NOT", "MUST", "SHOULD NOT", "SHOULD", "MAY")
# Levels that fail the check when uncited or untested; the others are reported only.
ENFORCED = frozenset({"MUST", "MUST NOT"})

# How a requirement can be checked from outside the node, in the one order a line lists them;
# LOCAL stands alone: nothing outside the node can observe the requirement.
VECTOR_KINDS = ("codec", "session", "decision")
LOCAL = "local"
# The kind of a vector file, from its `schema` field.
SCHEMA_KINDS = {f"{kind}.schema.json": kind for kind in VECTOR_KINDS}

_ID = r"[A-Z]+-[1-9][0-9]*"  # no leading zeros: AB-01 would be a second spelling of AB-1
# The kinds are checked apart (_parse_kinds), so that a wrong one gets a message of its own.
_DEFINITION = re.compile(
    rf"^- \*\*(?P<id>{_ID})\*\* \((?P<level>{'|'.join(KEYWORDS)})(?P<kinds>[^)]*)\) "
    r"(?P<text>\S.*)$"
)
# Anything that starts like a definition (in a list, a quote, a numbered list or a paragraph).
_LOOKS_LIKE_DEFINITION = re.compile(r"^\s*(?:[-*+]\s+|>\s*|\d+[.)]\s+)?\*\*[A-Z]+-\d+\*\*")
_RFC2119 = re.compile(
    r"\b(MUST NOT|MUST|SHALL NOT|SHALL|SHOULD NOT|SHOULD|MAY|REQUIRED|RECOMMENDED|OPTIONAL)\b"
)
_CODE_SPAN = re.compile(r"(`+).*?\1")
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
_CITATION_START = re.compile(r"#\s*spec:")
_CITATION = re.compile(rf"^#\s*spec:\s*(?P<ids>{_ID}(?:\s*,\s*{_ID})*)(?:\s+\(.*\))?\s*$")
TRACE_FILE = "TRACE.md"


@dataclass
class Requirement:
    id: str
    level: str
    text: str
    where: str  # spec file and line
    kinds: tuple[str, ...]  # vector kinds in the order of VECTOR_KINDS, or (LOCAL,)
    code: set[str] = field(default_factory=set)
    tests: set[str] = field(default_factory=set)
    vectors: set[str] = field(default_factory=set)

    @property
    def local(self) -> bool:
        return self.kinds == (LOCAL,)

    @property
    def status(self) -> str:
        missing = []
        if not self.code:
            missing.append("citation")
        if self.local:
            if not (self.tests or self.vectors):
                missing.append("test or vector")
        elif not self.vectors:  # only vectors of its kinds are counted (check)
            missing.append("vector")
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
    vector_kinds: dict[str, str | None] = {}
    cited = {
        "code": _read_code(root, root / "obscura_ref", problems),
        "test": _read_tests(root, root / "tests", problems),
        "vector": _read_vectors(root, root / "conformance" / "vectors", problems, vector_kinds),
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
                if kind == "vector":
                    vector_kind = vector_kinds[location]
                    if vector_kind is None:
                        continue  # the file's unknown schema is reported already
                    if vector_kind not in requirement.kinds:
                        path, _, case = location.partition("#")
                        problems.append(
                            f"{path} case {case}: a {vector_kind} case cannot claim {req_id}, "
                            f"which is checked by {', '.join(requirement.kinds)}"
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


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """The numbered lines of a Markdown text that are prose: outside fenced code blocks (``` or
    ~~~, closed by a fence of the same kind at least as long) and outside HTML comments."""
    lines: list[tuple[int, str]] = []
    fence = ""
    in_comment = False
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if fence:
            closes = match and match["fence"][0] == fence[0] and len(match["fence"]) >= len(fence)
            if closes and not line.strip().strip(fence[0]):
                fence = ""
            continue
        if match:
            fence = match["fence"]
            continue
        kept = ""
        rest = line
        while rest:
            if in_comment:
                end = rest.find("-->")
                if end < 0:
                    rest = ""
                else:
                    in_comment, rest = False, rest[end + 3 :]
            else:
                start = rest.find("<!--")
                if start < 0:
                    kept, rest = kept + rest, ""
                else:
                    kept, rest, in_comment = kept + rest[:start], rest[start + 4 :], True
        lines.append((number, kept))
    return lines


def _read_spec(root: Path, spec_dir: Path, problems: list[str]) -> dict[str, Requirement]:
    requirements: dict[str, Requirement] = {}
    for path in sorted(spec_dir.glob("*.md")):
        if path.name == TRACE_FILE:
            continue
        relative = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{relative}: not UTF-8: {exc}")
            continue
        for number, line in _prose_lines(text):
            where = f"{relative}:{number}"
            match = _DEFINITION.match(line)
            if match is None:
                if _LOOKS_LIKE_DEFINITION.match(line):
                    problems.append(f"{where}: malformed requirement (see spec/README.md)")
                elif _RFC2119.search(_CODE_SPAN.sub("", line)):
                    problems.append(
                        f"{where}: RFC 2119 keyword outside a requirement; make the sentence a "
                        "requirement with an ID, or write the word in lower case"
                    )
                continue
            req_id, level, text_ = match["id"], match["level"], match["text"]
            kinds = _parse_kinds(match["kinds"])
            if isinstance(kinds, str):
                problems.append(f"{where}: malformed requirement: {req_id} {kinds}")
                continue
            keywords = _RFC2119.findall(_CODE_SPAN.sub("", text_))
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
            requirements[req_id] = Requirement(req_id, level, text_, where, kinds)
    return requirements


def _parse_kinds(text: str) -> tuple[str, ...] | str:
    """The kinds after a level (``", session, decision"``), or what is wrong with them."""
    allowed = f"{', '.join(VECTOR_KINDS)} or {LOCAL}"
    if not text:
        return f"names no check kind after its level ({allowed}; see spec/README.md)"
    if not text.startswith(", "):
        return f"has {text!r} after its level; write `(LEVEL, kind, ...)` (see spec/README.md)"
    kinds = tuple(text[2:].split(", "))
    unknown = [kind for kind in kinds if kind not in (*VECTOR_KINDS, LOCAL)]
    if unknown:
        return f"names unknown check kinds {unknown}; use {allowed}"
    if LOCAL in kinds and len(kinds) > 1:
        return f"names {LOCAL} with other kinds; {LOCAL} stands alone"
    if kinds != tuple(kind for kind in (*VECTOR_KINDS, LOCAL) if kind in kinds):
        return f"names {', '.join(kinds)}; list each kind once, in the order {allowed}"
    return kinds


def _read_code(root: Path, code_dir: Path, problems: list[str]) -> dict[str, set[str]]:
    """IDs from every ``# spec:`` comment (comments only: a string that looks like one is not
    a citation), by the line that holds it."""
    found: dict[str, set[str]] = {}
    for path in sorted(code_dir.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        try:
            with path.open("rb") as handle:
                tokens = list(tokenize.tokenize(handle.readline))
        except (SyntaxError, tokenize.TokenError, UnicodeDecodeError) as exc:
            problems.append(f"{relative}: cannot be read as Python: {exc}")
            continue
        for token in tokens:
            if token.type != tokenize.COMMENT or not _CITATION_START.search(token.string):
                continue
            location = f"{relative}:{token.start[0]}"
            match = _CITATION.match(token.string)
            if match is None:
                problems.append(
                    f"{location}: malformed citation {token.string!r}; write "
                    "`# spec: ID, ID (optional note)`"
                )
                continue
            found[location] = set(re.findall(_ID, match["ids"]))
    return found


def _is_spec_mark(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "spec"
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "mark"
    )


def _read_tests(root: Path, tests_dir: Path, problems: list[str]) -> dict[str, set[str]]:
    """IDs from the ``pytest.mark.spec(...)`` marks of test functions, of ``Test*`` classes and
    of a module's ``pytestmark``; a mark anywhere else checks nothing and is reported."""
    found: dict[str, set[str]] = {}
    for path in sorted(tests_dir.rglob("*.py")) if tests_dir.is_dir() else []:
        relative = path.relative_to(root).as_posix()
        try:
            tree = ast.parse(path.read_bytes(), filename=relative)
        except (SyntaxError, ValueError) as exc:
            problems.append(f"{relative}: cannot be parsed: {exc}")
            continue
        owners: dict[int, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                for inner in ast.walk(node):
                    owners.setdefault(id(inner), f"{relative}::{node.name}")
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                for decorator in node.decorator_list:
                    for inner in ast.walk(decorator):
                        owners.setdefault(id(inner), f"{relative}::{node.name}")
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "pytestmark"
                for target in statement.targets
            ):
                for inner in ast.walk(statement):
                    owners.setdefault(id(inner), relative)
        for node in ast.walk(tree):
            if not _is_spec_mark(node):
                continue
            assert isinstance(node, ast.Call)
            location = owners.get(id(node))
            if location is None:
                problems.append(
                    f"{relative}:{node.lineno}: spec mark outside a test function, a Test class "
                    "or pytestmark"
                )
                continue
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(location, set()).add(arg.value)
                else:
                    problems.append(f"{relative}:{node.lineno}: spec marks take literal IDs only")
    return found


def _read_vectors(
    root: Path, vectors_dir: Path, problems: list[str], kinds: dict[str, str | None]
) -> dict[str, set[str]]:
    """IDs from the ``requirements`` of every case (an object with a ``tcId``); ``kinds`` gets
    each case's vector kind, from its file's ``schema`` (None when that is unknown)."""
    found: dict[str, set[str]] = {}
    for path in sorted(vectors_dir.rglob("*.json")) if vectors_dir.is_dir() else []:
        relative = path.relative_to(root).as_posix()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{relative}: not JSON: {exc}")
            continue
        schema = document.get("schema") if isinstance(document, dict) else None
        kind = SCHEMA_KINDS.get(schema) if isinstance(schema, str) else None
        if kind is None:
            problems.append(
                f"{relative}: unknown schema {schema!r}; a vector file names one of "
                f"{sorted(SCHEMA_KINDS)}"
            )
        for case in _cases(document):
            ids = case.get("requirements", [])
            tc_id = case["tcId"]
            if isinstance(tc_id, bool) or not isinstance(tc_id, int):
                problems.append(f"{relative}: tcId {tc_id!r} is not an integer")
                continue
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                problems.append(f"{relative}: case {tc_id}: requirements must be strings")
                continue
            found.setdefault(f"{relative}#{tc_id}", set()).update(ids)
            kinds[f"{relative}#{tc_id}"] = kind
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
        "| ID | level | checked by | requirement | code | tests | vectors | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report.requirements.values():
        text = r.text.replace("|", "\\|")
        rows.append(
            f"| {r.id} | {r.level} | {', '.join(r.kinds)} | {text} | {_links(r.code)} | "
            f"{_links(r.tests)} | {_vector_links(r.vectors)} | {r.status} |"
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
