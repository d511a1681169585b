"""``obscura-ref conformance run``: replay the vectors against an implementation and report.

Session vectors run over TCP against the embedded reference node, an implementation the runner
spawns for each case (``--spawn``), or one already listening (``--target``); decision vectors run
through an adapter process (``--adapter``) or, by default, the reference's own decisions. With
none of ``--target``, ``--spawn`` and ``--adapter`` the runner replays everything against the
reference.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import socket
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from . import decision
from .results import (
    FAILED,
    INFORMATIONAL,
    NON_STRICT,
    OUTCOMES,
    PASSED,
    SKIPPED,
    CaseResult,
    outcome_for_failure,
)
from .session import Address, Session, Skip, StepFailed, Target
from .targets import EmbeddedReference, FixedTarget, SpawnedTarget, quiet_reference_logs

SESSION_SCHEMA = "session.schema.json"
DECISION_SCHEMA = "decision.schema.json"
SETTLE_BETWEEN_CASES = 0.3  # seconds for a long-running target to close the last case's sockets


class ClosableTarget(Target, Protocol):
    def close(self) -> None: ...


TargetFactory = Callable[[Address | None], ClosableTarget]


@dataclass
class Options:
    vectors: Path = Path("conformance") / "vectors"
    target: Address | None = None
    spawn: str | None = None
    adapter: str | None = None
    only: list[str] = field(default_factory=list)
    jobs: int = 4
    junit: Path | None = None
    json: Path | None = None

    @property
    def reference(self) -> bool:
        """Nothing named: everything runs against the reference."""
        return self.target is None and self.spawn is None and self.adapter is None


@dataclass(frozen=True)
class Case:
    file: str
    group: str
    body: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.file}#{self.body['tcId']}"


def load_cases(vectors: Path, schema: str) -> list[Case]:
    """Every case of the files in ``vectors`` that name ``schema``."""
    cases = []
    for path in sorted(vectors.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("schema") != schema:
            continue
        for group in document["testGroups"]:
            cases += [Case(path.name, group["name"], case) for case in group["tests"]]
    return cases


def chosen(cases: list[Case], only: list[str]) -> list[Case]:
    return [
        c for c in cases if selected(c.file, c.group, c.body["tcId"], c.body["requirements"], only)
    ]


def selected(
    file: str, group: str, tc_id: int, requirements: Iterable[str], only: list[str]
) -> bool:
    """``--only``: a file (with or without .json), a group, ``FILE#tcId`` or a requirement ID;
    shell wildcards allowed."""
    if not only:
        return True
    names = {file, file.removesuffix(".json"), group, f"{file}#{tc_id}", *requirements}
    names.add(f"{file.removesuffix('.json')}#{tc_id}")
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in only for name in names)


_sources = itertools.count()


def case_source() -> str:
    """A loopback address of its own for each case's connections: 127.100.0.1, 127.100.0.2,
    ... (spec/manager.md: a ban is per address, so a case that gets its address banned leaves
    the next case's alone, even on one long-running target)."""
    number = next(_sources) % (250 * 250)
    return f"127.100.{number // 250}.{1 + number % 250}"


def run_session_case(case: Case, factory: TargetFactory, dials: bool) -> CaseResult:
    body = case.body
    result = CaseResult(
        case.file,
        case.group,
        body["tcId"],
        body["comment"],
        list(body["requirements"]),
        PASSED,
        level=body.get("level", "MUST"),
    )
    started = time.monotonic()
    if body["role"] != "responder" and not dials:
        result.outcome = SKIPPED
        result.detail = "needs the implementation to dial the runner (--spawn)"
        return result
    listener = None
    target = None
    session = None
    try:
        if dials:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            listener.listen(16)
        target = factory(None if listener is None else listener.getsockname())
        session = Session(target, listener, started_at=started, source=case_source())
        session.run(body["steps"])
    except Skip as exc:
        result.outcome, result.detail = SKIPPED, str(exc)
    except StepFailed as exc:
        result.outcome, result.detail = outcome_for_failure(result.level), str(exc)
    except Exception as exc:  # the runner's own fault or a target that would not start
        result.outcome = FAILED
        result.detail = f"could not run the case: {exc}\n{traceback.format_exc(limit=3)}"
    finally:
        if session is not None:
            result.log = session.transcript
            session.close()
        if target is not None:
            target.close()
        if listener is not None:
            listener.close()
    result.seconds = time.monotonic() - started
    return result


def run_sessions(options: Options, cases: list[Case]) -> list[CaseResult]:
    factory: TargetFactory
    jobs = max(1, options.jobs)
    if options.target is not None:
        fixed = options.target
        factory = lambda connect_to: FixedTarget(fixed)  # noqa: E731
        jobs, dials = 1, False  # one implementation: cases must not overlap
    elif options.spawn is not None:
        command = options.spawn
        factory = lambda connect_to: SpawnedTarget(command, _need(connect_to))  # noqa: E731
        dials = True
    else:
        quiet_reference_logs()
        factory, dials = EmbeddedReference, True
    if jobs == 1:
        results = []
        for case in cases:
            results.append(run_session_case(case, factory, dials))
            if options.target is not None:
                time.sleep(SETTLE_BETWEEN_CASES)
        return results
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(lambda case: run_session_case(case, factory, dials), cases))


def _need(address: Address | None) -> Address:
    assert address is not None
    return address


def replay_reference(vectors: Path, only: list[str], jobs: int = 4) -> list[CaseResult]:
    """Every selected session and decision case against the reference in this process, so
    that a test which patches the reference (a mutant) replays against the patched code."""
    options = Options(vectors=vectors, only=only, jobs=jobs)
    sessions = chosen(load_cases(vectors, SESSION_SCHEMA), only)
    decisions = [
        (c.file, {"name": c.group}, c.body)
        for c in chosen(load_cases(vectors, DECISION_SCHEMA), only)
    ]
    return run_sessions(options, sessions) + decision.replay(decisions, decision.decide)


def run(options: Options, out: TextIO) -> int:
    """Replay what the options select, print the report, write the files; the exit status."""
    if not options.vectors.is_dir():
        print(f"error: no vectors folder {options.vectors}", file=out)
        return 2
    if options.only:
        every = load_cases(options.vectors, SESSION_SCHEMA) + load_cases(
            options.vectors, DECISION_SCHEMA
        )
        if not chosen(every, options.only):
            # A pattern that matches nothing is a mistake, not a pass of 0 cases.
            print(f"error: --only {' '.join(options.only)}: no case matches", file=out)
            return 2
    results: list[CaseResult] = []
    sessions = options.reference or options.target is not None or options.spawn is not None
    what = (
        "the embedded reference node"
        if options.reference
        else f"--target {options.target[0]}:{options.target[1]}"
        if options.target is not None
        else f"--spawn {options.spawn!r}"
    )
    if sessions:
        cases = chosen(load_cases(options.vectors, SESSION_SCHEMA), options.only)
        print(f"session vectors: {len(cases)} cases against {what}", file=out, flush=True)
        results += run_sessions(options, cases)
    decisions = [
        (c.file, {"name": c.group}, c.body)
        for c in chosen(load_cases(options.vectors, DECISION_SCHEMA), options.only)
    ]
    if options.adapter is not None:
        print(
            f"decision vectors: {len(decisions)} cases through --adapter {options.adapter!r}",
            file=out,
        )
        try:
            with decision.SubprocessAdapter(options.adapter) as adapter:
                results += decision.replay(decisions, adapter.ask)
        except decision.AdapterError as exc:
            print(f"error: {exc}", file=out)
            return 2
    elif options.reference:
        print(f"decision vectors: {len(decisions)} cases against the reference", file=out)
        results += decision.replay(decisions, decision.decide)
    elif decisions:
        print("decision vectors: not run (give --adapter to replay them)", file=out)
    report(results, out)
    if options.junit is not None:
        write_junit(results, options.junit)
    if options.json is not None:
        write_json(results, options.json)
    return 1 if any(r.outcome == FAILED for r in results) else 0


def counts(results: list[CaseResult]) -> dict[str, int]:
    tally = dict.fromkeys(OUTCOMES, 0)
    for result in results:
        tally[result.outcome] += 1
    return tally


def report(results: list[CaseResult], out: TextIO) -> None:
    """One line per group, every case that did not pass under it, then the summary line."""
    groups: dict[tuple[str, str], list[CaseResult]] = {}
    for result in results:
        groups.setdefault((result.file, result.group), []).append(result)
    for (file, group), members in groups.items():
        tally = counts(members)
        summary = ", ".join(f"{n} {outcome}" for outcome, n in tally.items() if n)
        print(f"{file} {group}: {summary}", file=out)
        for result in members:
            if result.outcome == PASSED:
                continue
            label = {FAILED: "FAIL", NON_STRICT: "NON-STRICT", INFORMATIONAL: "INFO"}.get(
                result.outcome, "SKIP"
            )
            requirements = ", ".join(result.requirements)
            print(f"  {label} {file}#{result.tc_id} [{requirements}] {result.comment}", file=out)
            for line in result.detail.splitlines():
                print(f"      {line}", file=out)
    tally = counts(results)
    extra = [f"{tally[o]} {o}" for o in (NON_STRICT, INFORMATIONAL) if tally[o]]
    if extra:
        print("also: " + ", ".join(extra) + " (not failures)", file=out)
    closing = f"{tally[PASSED]} passed, {tally[FAILED]} failed"
    if tally[SKIPPED]:
        closing += f", {tally[SKIPPED]} skipped"
    print(closing, file=out)


def write_json(results: list[CaseResult], path: Path) -> None:
    document = {"summary": counts(results), "results": [asdict(r) for r in results]}
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def write_junit(results: list[CaseResult], path: Path) -> None:
    """JUnit XML: one testsuite per vector file, one testcase per vector."""
    root = ET.Element("testsuites", name="obscura-ref conformance")
    by_file: dict[str, list[CaseResult]] = {}
    for result in results:
        by_file.setdefault(result.file, []).append(result)
    for file, members in by_file.items():
        tally = counts(members)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=file,
            tests=str(len(members)),
            failures=str(tally[FAILED]),
            skipped=str(tally[SKIPPED]),
            time=f"{sum(r.seconds for r in members):.3f}",
        )
        for result in members:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{file.removesuffix('.json')}.{result.group}",
                name=f"{result.tc_id}: {result.comment} [{', '.join(result.requirements)}]",
                time=f"{result.seconds:.3f}",
            )
            if result.outcome == FAILED:
                ET.SubElement(
                    case, "failure", message=result.detail.splitlines()[0]
                ).text = result.detail
            elif result.outcome == SKIPPED:
                ET.SubElement(case, "skipped", message=result.detail)
            elif result.outcome in (NON_STRICT, INFORMATIONAL):
                ET.SubElement(case, "system-out").text = f"{result.outcome}: {result.detail}"
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
