"""The codec vectors: current, valid against their schema, passing on the reference, and able
to fail on a broken decoder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from obscura_ref.conformance import codec
from obscura_ref.wire import ErrorCode, Frame, MessageType, frame

ROOT = Path(__file__).resolve().parent.parent

# What a codec case may claim: a case decodes bytes, so it checks a receiver's rules and the
# payload layouts, never a sender's rule (WIRE-1 to 4, 31, 32, 41, 42, 46: session vectors).
RECEIVER_RULES = {
    f"WIRE-{n}"
    for n in (5, 6, 7, 8, 9, 10, 11, 12, 14, 20, 30, 33, 34, 40, 43, 44, 45, 47, 50, 60, 61)
}


def load_vectors() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ROOT / codec.VECTOR_FILE).read_text(encoding="utf-8"))
    return document


def all_cases(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [case for group in document["testGroups"] for case in group["tests"]]


def numbers_in(node: object) -> Iterator[object]:
    """Every JSON number under ``node`` (true and false are not numbers)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from numbers_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from numbers_in(value)
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield node


def test_checked_in_vectors_are_current_and_pass_on_the_reference() -> None:
    assert codec.check_vectors(ROOT) == []


def schema_of(document: dict[str, Any]) -> dict[str, Any]:
    path = ROOT / "conformance" / "schema" / document["schema"]
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def test_vectors_follow_their_schema() -> None:
    document = load_vectors()
    schema = schema_of(document)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    cases = all_cases(document)
    assert document["numberOfTests"] == len(cases)
    assert [case["tcId"] for case in cases] == list(range(1, len(cases) + 1))


def test_every_number_in_the_vectors_is_exact_as_a_double() -> None:
    # JavaScript's JSON.parse and many others read every number as an IEEE double, exact only
    # for integers up to 2**53: a u64 must be a string.
    numbers = list(numbers_in(load_vectors()))
    assert numbers, "the walk found no numbers at all"
    assert [n for n in numbers if not isinstance(n, int) or abs(n) > 2**53] == []


@pytest.mark.parametrize(
    ("type_name", "key", "value"),
    [
        ("Ping", "nonce", 7),
        ("Ping", "nonce", "07"),
        ("Handshake", "timestamp", 1_700_000_000),
        ("Handshake", "best_block_height", "-1"),
        ("Handshake", "version", "1"),
        ("Disconnect", "reason", 65536),
        ("Blocks", "nonce", "7"),
        ("Ping", "colour", "red"),
    ],
)
def test_the_schema_refuses_a_field_in_the_wrong_form(
    type_name: str, key: str, value: object
) -> None:
    document = load_vectors()
    frame = next(
        frame
        for case in all_cases(document)
        for frame in case["frames"]
        if frame["type"] == type_name
    )
    frame[key] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema_of(document), cls=jsonschema.Draft202012Validator)


def test_codec_cases_claim_receiver_rules_only_and_each_of_them() -> None:
    claimed = {req for case in all_cases(load_vectors()) for req in case["requirements"]}
    assert claimed - RECEIVER_RULES == set(), "a codec case cannot check a sender's rule"
    assert RECEIVER_RULES - claimed == set(), "every receiver rule needs a codec case"


def test_an_empty_stream_is_a_valid_case_with_no_frames() -> None:
    assert codec.decode_case(b"") == codec.decode_case(b"", 1) == {"result": "valid", "frames": []}
    empty = [case for case in all_cases(load_vectors()) if case["input"] == ""]
    assert [(case["result"], case["frames"], "error" in case) for case in empty] == [
        ("valid", [], False)
    ]


def test_a_byte_order_mark_is_kept_and_written_visibly() -> None:
    text = (ROOT / codec.VECTOR_FILE).read_text(encoding="utf-8")
    assert "\ufeff" not in text  # invisible, and stripped by some tools
    user_agents = [
        frame["user_agent"]
        for case in all_cases(json.loads(text))
        for frame in case["frames"]
        if frame["type"] == "Handshake"
    ]
    assert "\ufeffObscura/1" in user_agents


def test_every_error_code_has_a_vector() -> None:
    produced = {case.get("error") for case in all_cases(load_vectors())}
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
    document = load_vectors()
    document["testGroups"][0]["tests"][0]["frames"][0]["nonce"] = "8"
    path.write_text(json.dumps(document))
    failures = codec.check_vectors(tmp_path)
    assert failures[0].startswith(f"{codec.VECTOR_FILE} differs from the generator")
    assert any(failure.startswith("case 1 ") for failure in failures)
