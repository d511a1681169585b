"""The session vectors and the runner: current, schema-valid, passing on the reference over TCP
in every mode, and able to fail."""

from __future__ import annotations

import io
import json
import shlex
import shutil
import socket
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from obscura_ref.cli import main
from obscura_ref.conformance import session_vectors
from obscura_ref.conformance.results import FAILED, PASSED, SKIPPED
from obscura_ref.conformance.runner import Options, run
from obscura_ref.trace import check

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "conformance" / "vectors"
SESSION_FILES = sorted(VECTORS.glob("session-*.json"))
# The reference as another implementation would be run: its command line, with the profile.
SPAWN_REFERENCE = (
    f"{shlex.quote(sys.executable)} -m obscura_ref.cli node --listen {{listen}} "
    f"--persistent {{connect}} --config {shlex.quote(str(ROOT / 'conformance' / 'profile.toml'))} "
    "--echo --log-level error --status-interval 0"
)


def documents() -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in SESSION_FILES]


def cases(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [case for group in document["testGroups"] for case in group["tests"]]


def test_session_vectors_are_current() -> None:
    assert session_vectors.check_vectors(ROOT) == []


def test_session_vectors_follow_their_schema() -> None:
    schema = json.loads((ROOT / "conformance" / "schema" / "session.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for document in documents():
        jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
        numbered = [case["tcId"] for case in cases(document)]
        assert numbered == list(range(1, len(numbered) + 1))
        assert document["numberOfTests"] == len(numbered)
    broken = documents()[0]
    broken["testGroups"][0]["tests"][0]["steps"][0]["witin"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_every_number_is_safe_as_a_double() -> None:
    def numbers(node: object) -> Iterator[float]:
        if isinstance(node, dict):
            for value in node.values():
                yield from numbers(value)
        elif isinstance(node, list):
            for value in node:
                yield from numbers(value)
        elif isinstance(node, int | float) and not isinstance(node, bool):
            yield node

    for document in documents():
        assert all(abs(n) <= 2**53 for n in numbers(document))


def test_a_case_has_the_level_of_its_strongest_requirement() -> None:
    levels = {r.id: r.level.split()[0] for r in check(ROOT).requirements.values()}
    order = ["MAY", "SHOULD", "MUST"]
    for document in documents():
        for case in cases(document):
            strongest = max((levels[r] for r in case["requirements"]), key=order.index)
            assert case["level"] == strongest, case["comment"]


def test_the_roles_match_the_steps() -> None:
    for document in documents():
        for case in cases(document):
            ops = {step["op"] for step in case["steps"]}
            dials = "accept" in ops
            connects = "connect" in ops
            expected = "both" if dials and connects else "initiator" if dials else "responder"
            assert case["role"] == expected, case["comment"]


def test_every_case_passes_against_the_reference_with_reports(tmp_path: Path) -> None:
    out = io.StringIO()
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    status = run(Options(vectors=VECTORS, junit=junit, json=report), out)
    text = out.getvalue()
    assert status == 0, text
    document = json.loads(report.read_text())
    results = document["results"]
    assert results and all(r["outcome"] == PASSED for r in results), text
    assert text.splitlines()[-1] == f"{len(results)} passed, 0 failed"
    expected = sum(len(cases(d)) for d in documents())
    assert sum(r["file"].startswith("session-") for r in results) == expected
    testcases = ET.parse(junit).getroot().findall("./testsuite/testcase")
    assert len(testcases) == len(results)


@pytest.fixture
def liar() -> Iterator[tuple[str, int]]:
    """A listener that answers every connection with a Ping before any handshake."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(session_vectors.encoded(session_vectors.ping(1)))
                conn.settimeout(2)
                try:
                    while conn.recv(4096):
                        pass
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()
    stop.set()
    thread.join()
    server.close()


def test_the_runner_fails_an_implementation_that_breaks_the_rules(
    liar: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    status = main(
        [
            "conformance",
            "run",
            "--vectors",
            str(VECTORS),
            "--target",
            f"{liar[0]}:{liar[1]}",
            "--only",
            "session-handshake.json#1",
            "--only",
            "session-handshake.json#18",
            "--json",
            str(report),
        ]
    )
    text = capsys.readouterr().out
    assert status == 1, text
    outcomes = {r["tc_id"]: r for r in json.loads(report.read_text())["results"]}
    assert outcomes[1]["outcome"] == FAILED
    assert "expected nothing on a" in outcomes[1]["detail"]  # HS-2: it spoke first
    assert "FAIL session-handshake.json#1 [HS-2" in text
    assert outcomes[18]["outcome"] == SKIPPED  # an initiator case needs --spawn
    assert text.splitlines()[-1] == "0 passed, 1 failed, 1 skipped"


def test_usage_errors_exit_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", "run", "--target", "nowhere"]) == 2
    assert main(["conformance", "run", "--jobs", "0"]) == 2
    assert main(["conformance", "run", "--vectors", "no-such-folder"]) == 2
    with pytest.raises(SystemExit) as exited:
        main(["conformance", "run", "--target", "127.0.0.1:1", "--spawn", "x"])
    assert exited.value.code == 2


@pytest.mark.spec("NODE-5", "HS-12", "CONN-10", "RECO-5")
def test_the_reference_command_line_passes_when_spawned(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The runner starts `obscura-ref node` for each case, as it would start another
    implementation: SIGTERM stops it, {connect} is its persistent peer, --echo the profile's
    application."""
    picked = [
        "session-node.json#5",  # stop: Disconnect shutting_down, exit status 0
        "session-handshake.json#17",  # self-connection across two of its connections
        "session-handshake.json#24",  # the persistent peer reconnected
        "session-node.json#4",  # the echo application
    ]
    argv = ["conformance", "run", "--vectors", str(VECTORS), "--spawn", SPAWN_REFERENCE]
    for pattern in picked:
        argv += ["--only", pattern]
    status = main(argv)
    text = capsys.readouterr().out
    assert status == 0, text
    assert text.splitlines()[-1] == f"{len(picked)} passed, 0 failed", text


def test_a_target_already_listening_gets_the_responder_cases(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from obscura_ref.conformance.targets import EmbeddedReference

    reference = EmbeddedReference(None)
    try:
        host, port = reference.listen_address()
        status = main(
            [
                "conformance",
                "run",
                "--vectors",
                str(VECTORS),
                "--target",
                f"{host}:{port}",
                "--only",
                "session-keepalive.json#2",
                "--only",
                "session-close.json#1",
                "--only",
                "session-handshake.json#18",
            ]
        )
    finally:
        reference.close()
    text = capsys.readouterr().out
    assert status == 0, text
    assert text.splitlines()[-1] == "2 passed, 0 failed, 1 skipped", text


def test_an_only_pattern_that_matches_nothing_is_an_error() -> None:
    out = io.StringIO()
    options = Options(vectors=ROOT / "conformance" / "vectors", only=["no-such-file*"])
    assert run(options, out) == 2
    assert "no case matches" in out.getvalue()


def test_spec_check_says_when_it_rewrote_the_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for folder in ("spec", "obscura_ref", "tests", "conformance"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    trace = tmp_path / "spec" / "TRACE.md"
    trace.write_text("stale\n", encoding="utf-8")
    main(["spec", "check", "--root", str(tmp_path)])
    assert capsys.readouterr().out.rstrip().endswith("spec/TRACE.md rewritten")
    main(["spec", "check", "--root", str(tmp_path)])
    assert capsys.readouterr().out.rstrip().endswith("spec/TRACE.md current")
