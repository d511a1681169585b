"""``obscura-ref explain``: every field of a stream with its offset, hex, meaning and rules, and
the same verdict as the decoder on every codec vector."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from obscura_ref.cli import main
from obscura_ref.conformance.codec import raw_frame
from obscura_ref.explain import Row, explain, to_json, to_markdown, to_text
from obscura_ref.wire import (
    MAGIC,
    MAX_PAYLOAD,
    Disconnect,
    ErrorCode,
    Handshake,
    MessageType,
    Opaque,
    Ping,
    Pong,
    encode_frame,
)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(Path(sys.executable).with_name("obscura-ref"))

HANDSHAKE = Handshake(1, 1_700_000_000, 0x01 | 0x100, 0x80 | 0x41, "Obscura/1", bytes(32), 5, 258)


def fields(rows: list[Row], frame: int = 0) -> dict[str, Row]:
    return {row.field: row for row in rows if row.frame == frame}


def test_a_handshake_is_explained_field_by_field() -> None:
    rows = explain(encode_frame(HANDSHAKE))
    by_name = fields(rows)
    names = [row.field for row in rows]
    assert names == [
        "frame",
        "magic",
        "message_type",
        "payload_length",
        "checksum",
        "version",
        "timestamp",
        "features",
        "privacy_features",
        "user_agent_length",
        "user_agent",
        "best_block_hash",
        "best_block_height",
        "nonce",
    ]
    assert [(row.offset, row.size) for row in rows[1:]] == [
        (0, 4),
        (4, 4),
        (8, 4),
        (12, 4),
        (16, 4),
        (20, 8),
        (28, 4),
        (32, 4),
        (36, 2),
        (38, 9),
        (47, 32),
        (79, 8),
        (87, 8),
    ]
    assert by_name["frame"].value == "Handshake"
    assert by_name["message_type"].meaning == "Handshake (0x01)"
    assert by_name["payload_length"].requirements == ("WIRE-2", "WIRE-7", "WIRE-8")
    assert by_name["checksum"].meaning == "matches SHA256d(payload)"
    assert by_name["features"].meaning == "BasicTransactions (0x01), unassigned bit 0x100"
    assert by_name["privacy_features"].meaning == (
        "TransactionObfuscation (0x01), I2P (0x40), EncryptedTransport (0x80)"
    )
    assert by_name["privacy_features"].hex == "c1000000"
    assert by_name["user_agent"].value == "Obscura/1"
    assert by_name["user_agent"].meaning == '"Obscura/1", 9 bytes of UTF-8'
    assert by_name["timestamp"].meaning == "1700000000 Unix seconds (2023-11-14 22:13:20 UTC)"
    assert by_name["best_block_hash"].meaning == "all zero"
    assert by_name["nonce"].value == "258"  # a u64, as decode writes it
    assert by_name["nonce"].meaning == "258 (0x0000000000000102)"
    assert by_name["nonce"].requirements == ("WIRE-40",)
    assert by_name["version"].requirements == ("WIRE-40",)


def test_a_ping_and_its_pong_have_offsets_in_the_stream() -> None:
    stream = encode_frame(Ping(2**64 - 1)) + encode_frame(Pong(2**64 - 1))
    rows = explain(stream)
    pong = fields(rows, frame=1)
    assert pong["frame"].offset == 24 and pong["frame"].value == "Pong"
    assert pong["magic"].offset == 24
    assert pong["nonce"].offset == 40 and pong["nonce"].hex == "ff" * 8
    assert pong["nonce"].value == "18446744073709551615"
    assert pong["nonce"].meaning == "18446744073709551615 (0xffffffffffffffff)"
    assert pong["nonce"].requirements == ("WIRE-50",)
    assert fields(rows, frame=0)["nonce"].offset == 16


@pytest.mark.parametrize(
    ("reason", "meaning"),
    [
        (21, "close reason `ping_timeout` (21): a ping went unanswered"),
        (999, "999: not a registered close reason (accepted all the same)"),
    ],
)
def test_a_disconnect_names_its_close_reason(reason: int, meaning: str) -> None:
    row = fields(explain(encode_frame(Disconnect(reason))))["reason"]
    assert (row.offset, row.size, row.value) == (16, 2, reason)
    assert row.meaning.startswith(meaning)
    assert row.requirements == ("WIRE-60", "WIRE-61")


def test_an_opaque_payload_is_shown_whole_and_never_as_padding() -> None:
    rows = explain(encode_frame(Opaque(MessageType.Inv, b"\x01\x02\x03")))
    by_name = fields(rows)
    assert "padding" not in by_name
    assert by_name["payload"].hex == "010203" and by_name["payload"].size == 3
    assert by_name["payload"].meaning.startswith("opaque: 3 bytes")
    assert by_name["payload"].requirements == ("WIRE-20",)
    assert by_name["message_type"].meaning == "Inv (0x08, opaque)"


def test_padding_is_marked_with_its_length() -> None:
    rows = explain(encode_frame(Ping(7), bytes(range(56))))
    padding = fields(rows)["padding"]
    assert (padding.offset, padding.size) == (24, 56)
    assert padding.hex == bytes(range(56)).hex()
    assert padding.meaning.startswith("padding: 56 bytes")
    assert padding.requirements == ("WIRE-30", "WIRE-31")


def _head(ua_length: int) -> bytes:
    return struct.pack("<IQIIH", 1, 0, 0, 0, ua_length)


PING = encode_frame(Ping(7))

# One rejected stream for each error code of spec/wire.md section 8: the bytes, the offset of
# the error row, and the field row just before it (the field at fault).
ERRORS: dict[ErrorCode, tuple[bytes, int, str]] = {
    ErrorCode.BAD_MAGIC: (PING + b"OBY\x00", 26, "magic"),
    ErrorCode.UNKNOWN_MESSAGE_TYPE: (raw_frame(0x18, b""), 4, "message_type"),
    ErrorCode.PAYLOAD_TOO_LARGE: (raw_frame(5, b"", length=MAX_PAYLOAD + 1), 8, "payload_length"),
    ErrorCode.HANDSHAKE_TOO_LARGE: (raw_frame(1, b"", length=1025), 8, "payload_length"),
    ErrorCode.BAD_CHECKSUM: (raw_frame(2, bytes(8), check=b"\0\0\0\0"), 12, "checksum"),
    ErrorCode.TRUNCATED_FRAME: (PING[:20], 20, "payload"),
    ErrorCode.PAYLOAD_TRUNCATED: (raw_frame(3, bytes(7)), 16, "nonce"),
    ErrorCode.USER_AGENT_TOO_LONG: (raw_frame(1, _head(257)), 36, "user_agent_length"),
    ErrorCode.USER_AGENT_NOT_UTF8: (
        raw_frame(1, _head(2) + b"\xc3\x28" + bytes(48)),
        38,
        "user_agent",
    ),
}


def test_every_error_code_has_a_case() -> None:
    assert set(ERRORS) == set(ErrorCode)


@pytest.mark.parametrize("code", list(ERRORS), ids=lambda code: code.value)
def test_an_invalid_stream_ends_with_its_error_row(code: ErrorCode) -> None:
    stream, offset, culprit = ERRORS[code]
    rows = explain(stream)
    error = rows[-1]
    assert [row.field for row in rows].count("error") == 1
    assert (error.field, error.value, error.offset) == ("error", code.value, offset)
    assert error.requirements == (code.requirement,)
    assert error.meaning.startswith(f"{code.value}: ")
    assert rows[-2].field == culprit


def test_the_frames_before_an_error_are_explained() -> None:
    rows = explain(ERRORS[ErrorCode.BAD_MAGIC][0])
    assert fields(rows, frame=0)["nonce"].value == "7"
    assert fields(rows, frame=1)["error"].meaning == (
        "bad_magic: byte 2 of magic is 0x59, expected 0x58"
    )


def _frames(rows: list[Row]) -> list[dict[str, object]]:
    """The frames the rows describe, in the JSON form of the codec vectors."""
    failed = {row.frame for row in rows if row.field == "error"}
    frames: dict[int, dict[str, object]] = {}
    for row in rows:
        if row.frame in failed:
            continue
        frame = frames.setdefault(row.frame, {"padding": ""})
        if row.field == "frame":
            frame["type"] = row.value
        elif row.field == "message_type":
            frame["code"] = row.value
        elif row.field not in ("magic", "payload_length", "checksum", "user_agent_length"):
            frame[row.field] = row.value
    return list(frames.values())


def _vector_cases() -> list[dict[str, object]]:
    document = json.loads((ROOT / "conformance" / "vectors" / "codec.json").read_text())
    return [case for group in document["testGroups"] for case in group["tests"]]


@pytest.mark.parametrize("case", _vector_cases(), ids=lambda case: f"tc{case['tcId']}")
def test_explain_agrees_with_the_decoder_on_every_codec_vector(case: dict[str, object]) -> None:
    stream = bytes.fromhex(str(case["input"]))
    rows = explain(stream)
    errors = [row.value for row in rows if row.field == "error"]
    assert errors == ([case["error"]] if "error" in case else [])
    derived = ("features_flags", "privacy_features_flags", "padding_length")
    expected = [
        {key: value for key, value in frame.items() if key not in derived}
        for frame in case["frames"]  # type: ignore[attr-defined]
    ]
    assert _frames(rows) == expected
    # The field rows lie end to end, each at its offset: together they are the stream's bytes,
    # up to the error when there is one.
    shown = [row for row in rows if row.field not in ("frame", "error")]
    assert all(row.size * 2 == len(row.hex) for row in shown)
    offset = 0
    for row in shown:
        assert row.offset == offset, row
        offset += row.size
    joined = bytes.fromhex("".join(row.hex for row in shown))
    assert stream.startswith(joined)
    if not errors:
        assert joined == stream


def test_the_renderers_show_every_row() -> None:
    rows = explain(encode_frame(Disconnect(2), b"\xaa"))
    text = to_text(rows)
    assert text.splitlines()[0] == (
        "frame 0 at offset 0: Disconnect (0x80): 16-byte header, 3-byte payload"
    )
    assert "reason" in text and "close reason `shutting_down` (2)" in text
    assert "[WIRE-60, WIRE-61]" in text
    table = to_markdown(rows).splitlines()
    assert table[0] == "| offset | size | field | hex | meaning | requirement |"
    assert len(table) == 2 + len(rows) - 1  # every row but the frame's opening one
    assert table[-1] == "| 18 | 1 | `padding` | `aa` | padding: 1 byte after the defined " + (
        "fields, ignored | WIRE-30, WIRE-31 |"
    )
    assert json.loads(to_json(rows)) == [row.to_json() for row in rows]


def run(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str = "") -> tuple[int, str]:
    sys.stdin = io.StringIO(stdin)
    try:
        status = main(argv)
    finally:
        sys.stdin = sys.__stdin__
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_the_command_prints_the_rows_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(["explain", "--json", "-"], capsys, stdin=PING.hex()[:20] + "\n" + "")
    assert status == 1  # ten bytes: a truncated frame
    rows = json.loads(out)
    assert rows[-1]["value"] == "truncated_frame"
    keys = ["frame", "offset", "size", "field", "hex", "value", "meaning", "requirements"]
    assert all(list(row) == keys for row in rows)
    status, out = run(["explain", "--json", PING.hex()], capsys)
    assert status == 0 and json.loads(out)[-1]["field"] == "nonce"


def test_the_command_prints_text(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(["explain", PING.hex()], capsys)
    assert status == 0 and out.startswith("frame 0 at offset 0: Ping (0x02)")
    assert run(["explain", ""], capsys) == (0, "an empty stream: no frames\n")


@pytest.mark.parametrize(
    ("argument", "said"),
    [("abc", "not hex: an odd number of hex digits (3)"), ("4f 4x", "not hex: 'x' at position 4")],
)
def test_input_that_is_not_hex_is_refused_in_the_users_terms(
    argument: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run(["explain", argument], capsys)
    assert status == 1 and out.startswith(f"error: {said}")
    status, out = run(["explain", "--json", argument], capsys)
    assert status == 1
    assert json.loads(out)["error"] == "invalid_input" and said in json.loads(out)["detail"]


def test_a_reader_that_stops_reading_ends_explain_quietly() -> None:
    many = (PING * 5_000).hex()
    pipeline = subprocess.run(
        ["bash", "-c", f'"{SCRIPT}" explain - | head -n 1; echo "status ${{PIPESTATUS[0]}}"'],
        input=many,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert pipeline.stdout.splitlines()[0].startswith("frame 0 at offset 0: Ping")
    assert pipeline.stdout.splitlines()[-1] == "status 141"
    assert "Traceback" not in pipeline.stderr


def test_magic_is_checked_byte_by_byte() -> None:
    rows = explain(MAGIC[:2] + b"\x00")
    assert rows[-1].value == "bad_magic" and rows[-1].offset == 2


def test_the_worked_examples_show_each_error_code_and_valid_frames_otherwise() -> None:
    from obscura_ref.examples import EXAMPLES

    rejected = {name for name in EXAMPLES if name.startswith("rejected-")}
    for code in ErrorCode:
        rows = explain(EXAMPLES[f"rejected-{code.value.replace('_', '-')}"])
        assert rows[-1].field == "error" and rows[-1].value == code.value
    assert len(rejected) == len(ErrorCode)
    for name in set(EXAMPLES) - rejected:
        assert all(row.field != "error" for row in explain(EXAMPLES[name])), name
    for name in ("ping", "pong"):  # padded as the origin pads: 64 payload bytes in all
        assert fields(explain(EXAMPLES[name]))["padding"].size == 56
