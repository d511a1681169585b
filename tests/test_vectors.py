"""The codec vectors: current, valid against their schema, passing on the reference, and able
to fail on a broken decoder."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from obscura_ref.conformance import codec
from obscura_ref.wire import ErrorCode, Frame, MessageType, frame

ROOT = Path(__file__).resolve().parent.parent


def test_checked_in_vectors_are_current_and_pass_on_the_reference() -> None:
    assert codec.check_vectors(ROOT) == []


def test_vectors_follow_their_schema() -> None:
    document = json.loads((ROOT / codec.VECTOR_FILE).read_text())
    schema = json.loads((ROOT / "conformance" / "schema" / document["schema"]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    cases = [case for group in document["testGroups"] for case in group["tests"]]
    assert document["numberOfTests"] == len(cases)
    assert [case["tcId"] for case in cases] == list(range(1, len(cases) + 1))


def test_every_error_code_has_a_vector() -> None:
    document = json.loads((ROOT / codec.VECTOR_FILE).read_text())
    produced = {case.get("error") for group in document["testGroups"] for case in group["tests"]}
    assert {code.value for code in ErrorCode} <= produced


def test_a_decoder_that_skips_the_checksum_fails_the_vectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = frame.decode_body

    def trusting(message_type: MessageType, expected: bytes, payload: bytes) -> Frame:
        return original(message_type, frame.checksum(payload), payload)

    monkeypatch.setattr(frame, "decode_body", trusting)
    failures = codec.check_vectors(ROOT)
    assert any("checksum wrong" in failure for failure in failures)


def test_a_decoder_without_the_handshake_limit_fails_the_vectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(frame, "MAX_HANDSHAKE_PAYLOAD", frame.MAX_PAYLOAD)
    failures = codec.check_vectors(ROOT)
    assert any("handshake length 1025" in failure for failure in failures)


def test_an_edited_vector_file_is_caught(tmp_path: Path) -> None:
    path = tmp_path / codec.VECTOR_FILE
    path.parent.mkdir(parents=True)
    document = json.loads((ROOT / codec.VECTOR_FILE).read_text())
    document["testGroups"][0]["tests"][0]["frames"][0]["nonce"] += 1
    path.write_text(json.dumps(document))
    failures = codec.check_vectors(tmp_path)
    assert failures[0].startswith(f"{codec.VECTOR_FILE} differs from the generator")
    assert any(failure.startswith("case 1 ") for failure in failures)
