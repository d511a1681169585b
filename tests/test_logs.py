"""Log records: names not numbers, structured fields in JSON, and frames at debug only."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator

import pytest

from obscura_ref.config import NodeConfig
from obscura_ref.logs import JsonFormatter, frame_logger
from obscura_ref.loop import EventLoop
from obscura_ref.machines.connection import ConnState
from obscura_ref.node import Node
from obscura_ref.wire import Ping, encode_frame

from .test_cli_node import Running

FAST = {"ping_interval": 0.3, "ping_timeout": 0.2, "privacy_level": "none", "data_dir": ""}


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def json(self) -> list[dict[str, object]]:
        formatter = JsonFormatter()
        return [json.loads(formatter.format(record)) for record in self.records]


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("obscura_ref")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def lifecycle(frames: logging.Logger | None = None) -> None:
    """Two nodes: connect, a ping, a raw socket's bad frame, a graceful close."""
    loop = EventLoop()
    config = NodeConfig().with_values(FAST, "test")
    observer = None if frames is None else frame_logger(frames)
    a = Node(config, loop=loop, observer=observer)
    b = Node(config, loop=loop, observer=observer)
    a.listen("127.0.0.1", 0)
    address = b.listen("127.0.0.2", 0)
    peer = a.connect(*address)
    assert loop.run_until(lambda: any(row.rtt is not None for row in a.status()), 5)
    bad = bytearray(encode_frame(Ping(1)))
    bad[12] ^= 0xFF  # the checksum
    with socket.create_connection(address, source_address=("127.0.0.3", 0)) as raw:
        raw.sendall(bytes(bad))
        assert loop.run_until(lambda: len(b.peer_ids) == 2, 5)
        closing = b.peer_ids[-1]
        assert loop.run_until(lambda: b.state_of(closing) is not ConnState.HANDSHAKING, 5)
    assert loop.run_until(lambda: len(b.peer_ids) == 1, 5)
    a.close(peer)
    assert loop.run_until(lambda: not a.peer_ids and not b.peer_ids, 5)
    a.shutdown(0)
    b.shutdown(0)
    loop.close()


def test_json_records_carry_the_connection_s_fields_by_name(records: Records) -> None:
    lifecycle()
    entries = records.json()
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(e["time"])) for e in entries
    )
    established = [e for e in entries if e.get("event") == "established"]
    assert len(established) == 2
    first = established[0]
    assert first["peer"] == 1 and first["direction"] in ("outbound", "inbound")
    assert str(first["address"]).startswith("127.0.0.")
    assert first["version"] == 1
    assert first["features"] == ["BasicTransactions"]
    assert first["privacy_features"] == []
    assert "session_id" not in first  # plaintext: no session id
    misbehaved = next(e for e in entries if e.get("event") == "misbehaved")
    assert misbehaved["reason"] == "invalid_message"
    assert misbehaved["requirement"] == "WIRE-9"
    closed = [e for e in entries if e.get("event") == "closed"]
    assert {(e["reason"], e.get("peer_reason")) for e in closed} == {
        ("invalid_message", None),
        ("requested", None),
        ("peer_disconnected", "requested"),
    }
    rtt = next(e for e in entries if e.get("event") == "rtt")
    assert isinstance(rtt["rtt"], float) and rtt["level"] == "debug"
    assert any(e.get("event") == "connecting" for e in entries)
    # A record about no connection has no connection's keys.
    listening = next(e for e in entries if e.get("event") == "listening")
    assert "peer" not in listening


def test_text_lines_name_features_and_reasons(records: Records) -> None:
    lifecycle()
    lines = [record.getMessage() for record in records.records]
    assert any(
        "features 0x1 (BasicTransactions), privacy features 0x0 (none)" in ln for ln in lines
    )
    assert any("peer's reason requested (1)" in line for line in lines)
    assert any("misbehaved: invalid_message (WIRE-9)" in line for line in lines)


def test_the_frame_logger_logs_each_frame_sent_and_received(records: Records) -> None:
    frames = logging.getLogger("obscura_ref.frames.test")
    lifecycle(frames)
    lines = [r.getMessage() for r in records.records if r.name == frames.name]
    assert all(r.levelno == logging.DEBUG for r in records.records if r.name == frames.name)
    sent = [line for line in lines if " sent " in line]
    received = [line for line in lines if " received " in line]
    assert [re.search(r"sent (\w+)", line)[1] for line in sent][:2] == ["Handshake", "Handshake"]  # type: ignore[index]
    assert any(re.search(r"received Ping, 24 bytes: nonce 0x[0-9a-f]{16}$", ln) for ln in received)
    assert any(re.search(r"sent Pong, 24 bytes: nonce 0x[0-9a-f]{16}$", ln) for ln in sent)
    assert any("sent Disconnect, 18 bytes: reason invalid_message (10)" in ln for ln in sent)
    assert any("received Disconnect, 18 bytes: reason requested (1)" in ln for ln in received)
    assert any("user agent 'obscura-ref/" in line for line in received)


def test_the_node_command_logs_frames_at_debug_only() -> None:
    debug = Running("--listen", "127.0.0.9:0", "--log-level", "debug", "--status-interval", "0")
    port = debug.wait_for(r"listening on 127\.0\.0\.9:(\d+)")[1]
    info = Running(
        "--listen", "127.0.0.10:0", "--connect", f"127.0.0.9:{port}", "--log-format", "json"
    )
    try:
        debug.wait_for(r"received Handshake, \d+ bytes: version 1")
        debug.wait_for(r"sent Handshake")
        info.wait_for(r'"event": "established"')
        assert info.stop() == 0
        debug.wait_for(r"received Disconnect, \d+ bytes: reason shutting_down \(2\)")
        assert debug.stop() == 0
        assert not any("Handshake" in line for line in info.lines)  # no frames at info
        objects = [json.loads(line) for line in info.lines]
        assert any(o.get("event") == "established" and o["peer"] == 1 for o in objects)
    finally:
        for node in (debug, info):
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait()
