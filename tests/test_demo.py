"""``obscura-ref demo``: the narrated lifecycle of one connection between two nodes."""

from __future__ import annotations

import io
import re
import subprocess

import pytest

from obscura_ref.cli import main
from obscura_ref.demo import run
from obscura_ref.wire import Disconnect, Ping, encode_frame


def transcript(seed: int, level: str) -> str:
    out = io.StringIO()
    run(seed, level, out)
    return out.getvalue()


def hex_of(text: str) -> str:
    """The bytes of the hex dumps in ``text``, as one hex string."""
    dumps = re.findall(r"^ {8}[0-9a-f]{4}  ((?:[0-9a-f]{2,8} ?)+)$", text, re.MULTILINE)
    return "".join(line.replace(" ", "") for line in dumps)


def test_the_same_seed_gives_the_same_transcript() -> None:
    first = transcript(7, "none")
    assert first == transcript(7, "none")
    # The seed is in it: the nonces change with it (the first line names the seed).
    assert first.split("\n", 1)[1] != transcript(8, "none").split("\n", 1)[1]


def test_the_transcript_tells_the_whole_lifecycle() -> None:
    text = transcript(1, "none")
    # Both handshakes, the ping and its pong, the violation's Disconnect and the graceful one.
    sends = re.findall(r"^      (\w+), \d+ bytes on the wire$", text, re.MULTILINE)
    assert sends == ["Handshake", "Handshake", "Ping", "Pong", "Disconnect", "Disconnect"]
    assert "[A] peer 1 (B) EVENT established" in text
    assert "[B] peer 1 (A) EVENT established" in text
    assert "[A] peer 1 (B) EVENT rtt measured" in text
    assert "EVENT closed: invalid_message (CONN-30)" in text
    assert "reason: 10 (invalid_message)" in text
    assert "[B] peer 1 (A) EVENT closed: peer_disconnected (CONN-22), peer's reason requested" in (
        text
    )
    # Each rule applied: state, input, what happens and the rule's IDs.
    assert "rule for established + ping_frame (a Ping frame)" in text
    assert "what happens: send a pong with the same nonce\n      rule IDs: KA-2\n" in text


def test_plaintext_bytes_are_the_frames_encoding() -> None:
    text = transcript(1, "none")
    shown = hex_of(text)
    nonce = int(re.findall(r"nonce: (\d+)", text)[2])  # the third: the ping's
    assert encode_frame(Ping(nonce)).hex() in shown
    assert encode_frame(Disconnect(10)).hex() in shown
    assert "ENCRYPTED" not in text
    # Nothing that changes between runs: no port, no round trip in seconds.
    assert not re.search(r"127\.0\.0\.\d+:\d+", text)
    assert not re.search(r"\d ms|\d s\b(?! passes)", text.replace("(1 s)", ""))


def test_level_standard_shows_the_noise_handshake_and_encrypted_records() -> None:
    text = transcript(2, "standard")
    assert text == transcript(2, "standard")
    assert "rule for securing + bytes_received" in text
    assert "the bytes as they arrived: a Noise handshake message" in text
    assert "sealed in a record of" in text and "ENCRYPTED" in text
    assert "encrypted, session id" in text
    # The ping's frame is not on the wire as plaintext.
    nonce = int(re.findall(r"nonce: (\d+)", text)[2])
    assert encode_frame(Ping(nonce)).hex() not in hex_of(text)


def test_the_command_line_runs_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--seed", "4"]) == 0
    assert capsys.readouterr().out == transcript(4, "none")


def test_at_maximum_no_arriving_byte_is_called_plaintext() -> None:
    text = transcript(1, "maximum")
    assert "Encrypted from the first byte" in text
    assert "ENCRYPTED: Noise, garbage or records" in text
    assert "plaintext, padding included" not in text


def test_a_closed_pipe_ends_the_demo_quietly() -> None:
    from .test_cli_node import SCRIPT

    pipeline = subprocess.run(
        ["bash", "-c", f'"{SCRIPT}" demo | head -n 1; echo "status ${{PIPESTATUS[0]}}"'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pipeline.stdout.splitlines()[-1] == "status 141"
    assert "Traceback" not in pipeline.stderr and "Broken pipe" not in pipeline.stderr
