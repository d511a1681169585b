"""The decision vectors: current, valid against their schema, right by the spec's own words,
passing on the reference through a real adapter process, and able to fail a broken adapter."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from obscura_ref.conformance import decision
from obscura_ref.conformance.results import FAILED, PASSED, SKIPPED, CaseResult
from obscura_ref.machines import handshake
from obscura_ref.machines.events import Negotiated
from obscura_ref.machines.handshake import LocalHandshake, Role
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.manager import admission
from obscura_ref.wire import Handshake

ROOT = Path(__file__).resolve().parent.parent
ADAPTER = [
    sys.executable,
    "-c",
    "from obscura_ref.conformance.decision import adapter_main; import sys; "
    "sys.exit(adapter_main(sys.stdin, sys.stdout))",
]


def _documents() -> dict[str, Any]:
    return {
        name: json.loads((ROOT / decision.VECTOR_DIR / name).read_text()) for name in decision.FILES
    }


def _failed(results: list[CaseResult]) -> set[str]:
    return {result.comment for result in results if result.outcome == FAILED}


def test_checked_in_vectors_are_current_and_pass_on_the_reference() -> None:
    assert decision.check_vectors(ROOT) == []
    found = sorted(path.name for path in (ROOT / decision.VECTOR_DIR).glob(decision.PATTERN))
    assert found == sorted(decision.FILES)


def test_vectors_follow_their_schema() -> None:
    for document in _documents().values():
        schema = json.loads((ROOT / "conformance" / "schema" / document["schema"]).read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
        cases = [case for group in document["testGroups"] for case in group["tests"]]
        assert document["numberOfTests"] == len(cases)
        assert [case["tcId"] for case in cases] == list(range(1, len(cases) + 1))
        assert set(document["notes"]) >= {case["decision"] for case in cases}


def test_every_number_is_exact_as_a_double() -> None:
    def numbers(node: object) -> list[int | float]:
        if isinstance(node, dict):
            return [n for value in node.values() for n in numbers(value)]
        if isinstance(node, list):
            return [n for value in node for n in numbers(value)]
        if isinstance(node, int | float) and not isinstance(node, bool):
            return [node]
        return []

    found = numbers(_documents())
    assert found
    for number in found:
        assert isinstance(number, float) or abs(number) < 2**53, number


def _spec_says(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    """The decision as spec/node.md section 4 and spec/handshake.md word it, written out here
    without the reference, so that a fault in the reference cannot slip into the files."""
    if kind == "admit_inbound":
        if given["open_inbound"] >= given["max_inbound_connections"]:
            return {"admit": False, "reason": "connection_limit"}
        return {"admit": True}
    if kind == "open_outbound":
        return {"allowed": given["open_outbound"] < given["max_outbound_connections"]}
    peer = given["peer"]
    failing = {
        "version": peer["version"] < given["min_compatible_version"],
        "nonce": peer["nonce"] in given["own_nonces"],
        # privacy.md PRIV-12: required, and the peer does not set EncryptedTransport (0x80)
        "encryption": given.get("requires_encryption", False)
        and not peer["privacy_features"] & 0x80,
    }
    # The role's order of table 3.1, then the encryption check after it (PRIV-12).
    if given["role"] == "initiator":
        order = ("nonce", "version", "encryption")
    else:
        order = ("version", "nonce", "encryption")
    reasons = {
        "version": "incompatible_version",
        "nonce": "self_connection",
        "encryption": "encryption_required",
    }
    for check in order:
        if failing[check]:
            return {"accepted": False, "reason": reasons[check]}
    return {
        "accepted": True,
        "version": min(given["version"], peer["version"]),
        "features": given["features"] & peer["features"],
        "privacy_features": given["privacy_features"] & peer["privacy_features"],
    }


def test_the_expected_decisions_are_the_spec_s() -> None:
    both_failing = set()
    for _, _, case in decision.load_cases(ROOT):
        if case["decision"] not in ("admit_inbound", "open_outbound", "handshake"):
            continue  # the manager's kinds: tests/test_manager_rules.py
        assert case["expected"] == _spec_says(case["decision"], case["input"]), case["comment"]
        if case["decision"] == "handshake" and "HS-11" in case["requirements"]:
            both_failing.add((case["input"]["role"], case["expected"]["reason"]))
    # Where both checks fail, each role's first check decides (table 3.1).
    assert both_failing == {("initiator", "self_connection"), ("responder", "incompatible_version")}


def test_the_reference_adapter_passes_every_case_as_a_process() -> None:
    cases = decision.load_cases(ROOT)
    with decision.SubprocessAdapter(ADAPTER) as adapter:
        results = decision.replay(cases, adapter.ask)
        assert adapter.close() == 0  # it exits, with status 0, once its stdin closes
    assert len(results) == len(cases) > 0
    assert [(r.outcome, r.detail) for r in results] == [(PASSED, "")] * len(cases)
    assert {r.level for r in results} == {"MUST"}
    assert results[0].log[0].startswith('request: {"decision":')


# Mutants: broken decisions in this process, replayed with decide as the adapter.


def _replay_in_process() -> list[CaseResult]:
    return decision.replay(decision.load_cases(ROOT), decision.decide)


def test_a_version_negotiated_upwards_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    original = handshake.negotiate

    def upwards(local: LocalHandshake, peer: Handshake) -> Negotiated:
        agreed = original(local, peer)
        return Negotiated(**{**vars(agreed), "version": max(local.version, peer.version)})

    monkeypatch.setattr(handshake, "negotiate", upwards)
    assert _failed(_replay_in_process()) == {
        "peer version higher, responder",
        "peer version higher, initiator",
        "peer version 0xFFFFFFFF, own 3",
        "peer version lower but compatible (own 3, minimum 2, peer 2), responder",
        "peer version lower but compatible (own 3, minimum 2, peer 2), initiator",
    }


def test_an_inbound_limit_off_by_one_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def one_more(open_inbound: int, max_inbound: int) -> CloseReason | None:
        return CloseReason.CONNECTION_LIMIT if open_inbound > max_inbound else None

    monkeypatch.setattr(admission, "inbound_admission", one_more)
    assert _failed(_replay_in_process()) == {
        "125 open of 125: full",
        "limit 0: no inbound connection at all",
        "limit 1, one open",
        "100000 open of 100000",
    }


def test_an_outbound_limit_off_by_one_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admission, "may_open_outbound", lambda n, limit: n <= limit)
    assert _failed(_replay_in_process()) == {
        "8 open of 8: full",
        "limit 0: no outbound connection at all",
        "10000 open of 10000",
    }


def test_checks_in_the_wrong_order_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    swapped = {
        Role.INITIATOR: ("version", "nonce", "encryption"),
        Role.RESPONDER: ("nonce", "version", "encryption"),
    }
    monkeypatch.setattr(handshake, "CHECK_ORDER", swapped)
    assert _failed(_replay_in_process()) == {
        "version below the minimum and nonce own, initiator: nonce checked first",
        "version below the minimum and nonce own, responder: version checked first",
    }


@pytest.mark.spec("PRIV-12")
def test_encryption_not_required_or_checked_first_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    first = {
        Role.INITIATOR: ("encryption", "nonce", "version"),
        Role.RESPONDER: ("encryption", "version", "nonce"),
    }
    monkeypatch.setattr(handshake, "CHECK_ORDER", first)
    assert _failed(_replay_in_process()) == {
        "responder: required, and the version fails too: the version's reason first",
        "initiator: required, and the version fails too: the version's reason first",
    }
    unchecked = {role: order[1:] for role, order in first.items()}
    monkeypatch.setattr(handshake, "CHECK_ORDER", unchecked)
    assert _failed(_replay_in_process()) == {
        "responder: required, and the peer does not offer it: encryption_required",
        "initiator: required, and the peer does not offer it: encryption_required",
    }


def test_an_answer_of_the_wrong_json_type_fails() -> None:
    def loose(request: dict[str, Any]) -> dict[str, Any]:
        response = decision.decide(request)
        output = response["output"]
        # 1 for true and 1.0 for 1 are equal in Python, not as JSON values
        for key in ("admit", "allowed"):
            if output.get(key) is True:
                output[key] = 1
        if "version" in output:
            output["version"] = float(output["version"])
        return response

    results = decision.replay(decision.load_cases(ROOT), loose)
    failed = [r for r in results if r.outcome == FAILED]
    assert any("got {" in r.detail and '"admit":1' in r.detail for r in failed)
    assert any('"version":1.0' in r.detail for r in failed)
    assert all(r.outcome == FAILED for r in results if r.comment.startswith("equal versions"))


# Broken adapter processes: each case fails with a message saying what went wrong, promptly.


def _script(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _run(code: str, count: int = 3, timeout: float = 5.0) -> list[CaseResult]:
    with decision.SubprocessAdapter(_script(code), timeout=timeout) as adapter:
        return decision.replay(decision.load_cases(ROOT)[:count], adapter.ask)


def test_an_adapter_printing_garbage_fails_each_case() -> None:
    results = _run("import sys\nfor line in sys.stdin:\n    print('garbage', flush=True)")
    assert [r.outcome for r in results] == [FAILED] * 3
    assert all(r.detail == "the response is not JSON: 'garbage'" for r in results)


def test_an_adapter_answering_other_cases_fails() -> None:
    code = (
        "import json, sys\n"
        "for line in sys.stdin:\n"
        "    request = json.loads(line)\n"
        "    print(json.dumps({'tcId': request['tcId'] + 1, 'output': {}}), flush=True)"
    )
    results = _run(code)
    assert [r.detail for r in results] == [f"the response is for tcId {n + 1}" for n in (1, 2, 3)]


def test_an_adapter_that_hangs_fails_at_the_timeout_and_is_stopped() -> None:
    started = time.monotonic()
    results = _run("import sys, time\nsys.stdin.readline()\ntime.sleep(60)", timeout=0.5)
    assert time.monotonic() - started < 5
    assert [r.outcome for r in results] == [FAILED] * 3
    assert results[0].detail == "no response to tcId 1 within 0.5 s (stopped by the runner)"
    assert results[1].detail == f"not asked: {results[0].detail}"


def test_an_adapter_that_exits_early_fails_with_its_stderr() -> None:
    code = (
        "import json, sys\n"
        "from obscura_ref.conformance.decision import decide\n"
        "print(json.dumps(decide(json.loads(sys.stdin.readline()))), flush=True)\n"
        "sys.exit('adapter gave up')"
    )
    results = _run(code)
    assert [r.outcome for r in results] == [PASSED, FAILED, FAILED]
    assert "the adapter exited before" in results[1].detail
    assert "(exit status 1); stderr: adapter gave up" in results[1].detail
    assert results[2].detail.startswith("not asked: the adapter exited before")


def test_unsupported_and_error_answers() -> None:
    code = (
        "import json, sys\n"
        "for line in sys.stdin:\n"
        "    request = json.loads(line)\n"
        "    answer = {'tcId': request['tcId']}\n"
        "    if request['decision'] == 'admit_inbound':\n"
        "        answer['unsupported'] = True\n"
        "    else:\n"
        "        answer['error'] = 'no idea'\n"
        "    print(json.dumps(answer), flush=True)"
    )
    results = _run(code, count=len(decision.load_cases(ROOT)))
    for result in results:
        if result.group == "admit_inbound":
            assert result.outcome == SKIPPED
            assert result.detail == "the adapter does not implement decision 'admit_inbound'"
        else:
            assert (result.outcome, result.detail) == (
                FAILED,
                "the adapter reported an error: no idea",
            )


def test_an_answer_that_is_not_an_object_or_has_no_output_fails() -> None:
    code = (
        "import sys\n"
        "sys.stdin.readline()\n"
        "print('[1]', flush=True)\n"
        "sys.stdin.readline()\n"
        "print('{\"tcId\": 2}', flush=True)\n"
        "sys.stdin.readline()"
    )
    results = _run(code, count=2)
    assert [r.detail for r in results] == [
        "the response is not a JSON object: '[1]'",
        "the response has none of output, unsupported and error",
    ]


def test_an_adapter_that_cannot_start_is_an_adapter_error() -> None:
    with pytest.raises(decision.AdapterError, match="cannot start the adapter"):
        decision.SubprocessAdapter("/nonexistent/adapter --flag")


def test_the_reference_adapter_answers_bad_requests() -> None:
    lines = [
        '{"tcId": 1, "decision": "teleport", "input": {}}',
        "",
        "not json",
        '{"tcId": 2, "decision": "admit_inbound", "input": {"open_inbound": true}}',
        '{"tcId": 3, "decision": "open_outbound", '
        '"input": {"open_outbound": 0, "max_outbound_connections": 1}}',
    ]
    out = io.StringIO()
    assert decision.adapter_main(io.StringIO("\n".join(lines) + "\n"), out) == 0
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert answers[0] == {"tcId": 1, "unsupported": True}
    assert answers[1] == {"tcId": None, "error": "the request is not a JSON object"}
    assert answers[2]["tcId"] == 2 and "open_inbound" in answers[2]["error"]
    assert answers[3] == {"tcId": 3, "output": {"allowed": True}}
    assert len(answers) == 4


def test_an_edited_or_stray_vector_file_is_caught(tmp_path: Path) -> None:
    folder = tmp_path / decision.VECTOR_DIR
    folder.mkdir(parents=True)
    for name, document in _documents().items():
        if name == "decision-admission.json":
            document["testGroups"][0]["tests"][0]["expected"] = {"admit": False}
        (folder / name).write_text(json.dumps(document))
    (folder / "decision-stray.json").write_text('{"testGroups": []}')
    failures = decision.check_vectors(tmp_path)
    assert "conformance/vectors/decision-admission.json differs from the generator" in failures[0]
    assert "conformance/vectors/decision-stray.json is not made by the generator" in failures
    assert any(f.startswith("decision-admission.json case 1 (none open") for f in failures)
