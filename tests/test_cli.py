"""The command line: decode, encode, and the round trip between them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from obscura_ref.cli import main
from obscura_ref.wire import Disconnect, Handshake, MessageType, Opaque, Ping, Pong, encode_frame

HANDSHAKE = Handshake(1, 1_700_000_000, 3, 0x41, "Obscura/1", bytes(range(32)), 7, 99)


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str = ""
) -> tuple[int, list[dict[str, Any]]]:
    """The exit status and the JSON objects printed."""
    sys.stdin = io.StringIO(stdin)
    try:
        status = main(argv)
    finally:
        sys.stdin = sys.__stdin__
    out = capsys.readouterr().out
    return status, [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_decode_prints_every_field_by_its_spec_name(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = run(["decode", encode_frame(HANDSHAKE, b"\x01\x02").hex()], capsys)
    assert status == 0
    assert lines == [
        {
            "type": "Handshake",
            "code": 1,
            "version": 1,
            "timestamp": "1700000000",
            "features": 3,
            "features_flags": ["BasicTransactions", "PrivacyFeatures"],
            "privacy_features": 0x41,
            "privacy_features_flags": ["TransactionObfuscation", "I2P"],
            "user_agent": "Obscura/1",
            "best_block_hash": bytes(range(32)).hex(),
            "best_block_height": "7",
            "nonce": "99",
            "padding_length": 2,
            "padding": "0102",
        }
    ]


def test_decode_reads_stdin_and_ignores_whitespace(capsys: pytest.CaptureFixture[str]) -> None:
    hex_text = encode_frame(Ping(5)).hex()
    status, lines = run(["decode", "-"], capsys, stdin=f"{hex_text[:10]}\n {hex_text[10:]}\n")
    assert status == 0 and lines == [
        {"type": "Ping", "code": 2, "nonce": "5", "padding_length": 0, "padding": ""}
    ]


@pytest.mark.spec("WIRE-9")
def test_decode_error_prints_code_requirement_and_detail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = encode_frame(Ping(5))
    status, lines = run(["decode", (good + good[:12] + b"\0\0\0\0" + good[16:]).hex()], capsys)
    assert status == 1
    assert lines[0]["type"] == "Ping"
    assert lines[1]["error"] == "bad_checksum" and lines[1]["requirement"] == "WIRE-9"
    assert "checksum" in lines[1]["detail"]


@pytest.mark.parametrize(
    ("argument", "detail"),
    [
        ("zz", "not hex: 'z' at position 0 (from 0)"),
        ("4f 42x5", "not hex: 'x' at position 5 (from 0)"),
        ("abc", "not hex: an odd number of hex digits (3)"),
        ("4f42 5", "not hex: an odd number of hex digits (5)"),
    ],
)
def test_decode_refuses_input_that_is_not_hex(
    argument: str, detail: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines = run(["decode", argument], capsys)
    assert status == 1
    assert lines == [{"error": "invalid_input", "requirement": None, "detail": detail}]


@pytest.mark.parametrize("argument", ["", " \n\t "])
def test_decode_of_an_empty_stream_prints_nothing_and_succeeds(
    argument: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["decode", argument]) == 0
    assert capsys.readouterr().out == ""


def test_decode_of_an_empty_stdin_prints_nothing_and_succeeds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert output_of(["decode", "-"], capsys, stdin="\n") == ""


def test_decode_writes_every_u64_as_a_decimal_string(capsys: pytest.CaptureFixture[str]) -> None:
    # Above 2**53 a JSON number loses digits in JavaScript's JSON.parse; a string does not.
    status, lines = run(["decode", encode_frame(Pong(2**64 - 1)).hex()], capsys)
    assert status == 0 and lines[0]["nonce"] == "18446744073709551615"


@pytest.mark.parametrize("nonce", ['"18446744073709551615"', "18446744073709551615"])
def test_encode_reads_a_u64_as_a_string_or_an_integer(
    nonce: str, capsys: pytest.CaptureFixture[str]
) -> None:
    document = f'{{"type": "Ping", "nonce": {nonce}}}'
    assert output_of(["encode", document], capsys).strip() == encode_frame(Ping(2**64 - 1)).hex()


def test_encode_reads_u64_strings_in_a_handshake(capsys: pytest.CaptureFixture[str]) -> None:
    document = {
        "type": "Handshake",
        "version": 1,
        "timestamp": "1700000000",
        "features": 3,
        "privacy_features": 0x41,
        "user_agent": "Obscura/1",
        "best_block_hash": bytes(range(32)).hex(),
        "best_block_height": "7",
        "nonce": "0",
    }
    expected = encode_frame(
        Handshake(1, 1_700_000_000, 3, 0x41, "Obscura/1", bytes(range(32)), 7, 0)
    )
    assert output_of(["encode", json.dumps(document)], capsys).strip() == expected.hex()


def output_of(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str = "") -> str:
    sys.stdin = io.StringIO(stdin)
    try:
        assert main(argv) == 0
    finally:
        sys.stdin = sys.__stdin__
    return capsys.readouterr().out


def test_encode_round_trips_what_decode_prints(capsys: pytest.CaptureFixture[str]) -> None:
    stream = (
        encode_frame(HANDSHAKE, b"pad")
        + encode_frame(Disconnect(3))
        + encode_frame(Opaque(MessageType.Inv, b"\x01\x02"))
    )
    printed = output_of(["decode", stream.hex()], capsys)
    assert len(printed.splitlines()) == 3
    assert output_of(["encode", "-"], capsys, stdin=printed).strip() == stream.hex()
    first = printed.splitlines()[0]
    assert output_of(["encode", first], capsys).strip() == encode_frame(HANDSHAKE, b"pad").hex()


def test_encode_accepts_an_array_and_minimal_objects(capsys: pytest.CaptureFixture[str]) -> None:
    document = '[{"type": "Ping", "nonce": 1}, {"code": 3, "nonce": 2, "padding": "00"}]'
    expected = encode_frame(Ping(1)) + encode_frame(Pong(2), b"\0")
    assert output_of(["encode", document], capsys).strip() == expected.hex()


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ('{"type": "Ping"}', "nonce"),
        ('{"type": "Ping", "nonce": 1, "colour": "red"}', "colour"),
        ('{"type": "Nope", "nonce": 1}', "type"),
        ('{"type": "Ping", "nonce": -1}', "nonce"),
        ('{"type": "Ping", "nonce": 18446744073709551616}', "nonce"),
        ('{"type": "Ping", "nonce": "18446744073709551616"}', "nonce"),
        ('{"type": "Ping", "nonce": "99999999999999999999999"}', "nonce"),
        ('{"type": "Ping", "nonce": "1' + "0" * 5000 + '"}', "nonce"),
        ('{"type": "Ping", "nonce": "01"}', "nonce"),
        ('{"type": "Ping", "nonce": "-1"}', "nonce"),
        ('{"type": "Ping", "nonce": "+1"}', "nonce"),
        ('{"type": "Ping", "nonce": " 1"}', "nonce"),
        ('{"type": "Ping", "nonce": "1 "}', "nonce"),
        ('{"type": "Ping", "nonce": ""}', "nonce"),
        ('{"type": "Ping", "nonce": "0x1"}', "nonce"),
        ('{"type": "Ping", "nonce": "1e3"}', "nonce"),
        ('{"type": "Ping", "nonce": "\u0661"}', "nonce"),
        ('{"type": "Ping", "nonce": 1.0}', "nonce"),
        ('{"type": "Ping", "nonce": true}', "nonce"),
        ('{"type": "Ping", "nonce": null}', "nonce"),
        ('{"type": "Pong", "nonce": [1]}', "nonce"),
        ('{"type": "Disconnect", "reason": "1"}', "reason"),
        ('{"type": "Ping", "code": 3, "nonce": 1}', "code"),
        ('{"type": "Ping", "nonce": 1, "padding": "0", "padding_length": 1}', "padding"),
        ('{"type": "Ping", "nonce": 1, "padding": "00", "padding_length": 2}', "padding_length"),
        ('{"type": "Blocks", "payload": "xyz"}', "payload"),
        ('{"code": 153, "payload": ""}', "code"),
    ],
)
def test_encode_names_the_wrong_field(
    document: str, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines = run(["encode", document], capsys)
    assert status == 1
    assert lines[0]["error"] == "invalid_field"
    assert lines[0]["detail"].startswith(f"frame 0: {field}:")


@pytest.mark.spec("WIRE-42")
def test_encode_reports_the_rule_a_limit_comes_from(capsys: pytest.CaptureFixture[str]) -> None:
    document = {
        "type": "Handshake",
        "version": 1,
        "timestamp": 0,
        "features": 0,
        "privacy_features": 0,
        "user_agent": "x" * 257,
        "best_block_hash": "00" * 32,
        "best_block_height": 0,
        "nonce": 0,
    }
    status, lines = run(["encode", json.dumps(document)], capsys)
    assert status == 1 and lines[0]["requirement"] == "WIRE-42"


def test_encode_refuses_text_that_is_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = run(["encode", "{nope"], capsys)
    assert status == 1 and lines[0]["error"] == "invalid_input"


def test_installed_console_script_runs() -> None:
    # The README installs the package, which puts the script beside this interpreter.
    script = Path(sys.executable).with_name("obscura-ref")
    result = subprocess.run(
        [str(script), "decode", encode_frame(Ping(1)).hex()],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["type"] == "Ping"


def test_output_is_ascii_json_whatever_the_user_agent(capsys: pytest.CaptureFixture[str]) -> None:
    frame = encode_frame(Handshake(1, 0, 0, 0, "Obscura/é☃", bytes(32), 0, 0))
    assert main(["decode", frame.hex()]) == 0
    out = capsys.readouterr().out
    assert out.isascii() and json.loads(out)["user_agent"] == "Obscura/é☃"


@pytest.mark.parametrize(
    ("document", "error", "field"),
    [
        ("[]", "invalid_input", None),
        ("[" * 100_000, "invalid_input", None),
        ('{"type": "Ping", "nonce": 1, "\\ud800": 1}', "invalid_field", "\ud800"),
        ('{"type": "Blocks", "payload": "00", "padding": "11"}', "invalid_field", "padding"),
        ('{"type": "Ping", "nonce": 1, "code": true}', "invalid_field", "code"),
        (
            '{"type": "Ping", "nonce": 1, "padding_length": false}',
            "invalid_field",
            "padding_length",
        ),
    ],
)
def test_encode_refuses_what_it_cannot_encode_faithfully(
    document: str, error: str, field: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines = run(["encode", document], capsys)
    assert status == 1 and lines[0]["error"] == error
    if field is not None:
        assert lines[0]["detail"].startswith(f"frame 0: {field}:")


SCRIPT = str(Path(sys.executable).with_name("obscura-ref"))


def test_a_reader_that_stops_reading_ends_decode_without_a_traceback() -> None:
    many = (encode_frame(Ping(1)) * 20_000).hex()
    pipeline = subprocess.run(
        ["bash", "-c", f'"{SCRIPT}" decode - | head -n 1; echo "status ${{PIPESTATUS[0]}}"'],
        input=many,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert pipeline.stdout.splitlines()[0].startswith('{"type": "Ping"')
    assert pipeline.stdout.splitlines()[-1] == "status 141"  # as a process killed by SIGPIPE
    assert "Traceback" not in pipeline.stderr


def test_python_dash_m_runs_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "obscura_ref", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("obscura-ref ")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--listen", "127.0.0.1:abc"], "the port 'abc' is not a number"),
        (["--listen", "localhost:1"], "'localhost' is not an IP address"),
        (["--status-interval", "-1"], "--status-interval: '-1': seconds must be 0 or more"),
    ],
)
def test_node_refuses_bad_arguments_naming_what_is_wrong(args: list[str], said: str) -> None:
    result = subprocess.run(
        [SCRIPT, "node", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert said in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        result = subprocess.run(
            [SCRIPT, "node", "--listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        taken.close()
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr


def test_vectors_generate_outside_a_checkout_writes_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [SCRIPT, "vectors", "generate", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "no spec/ and conformance/ folders" in result.stderr
    assert list(tmp_path.iterdir()) == []
