"""``obscura-ref demo``: one connection's whole life between two nodes, narrated.

Two ``Node`` objects share one ``EventLoop`` in this process, on 127.0.0.1 (A) and 127.0.0.2 (B),
on real loopback sockets. A connects to B, the two handshake, A pings and B answers, a third,
raw socket sends B a frame with a wrong checksum and is closed ``invalid_message``, and A closes
its connection to B. Every frame sent is printed as bytes and fields, and every rule of the
connection table as it is applied (the node's observer, obscura_ref/machines/connection.py).

The transcript is the same for the same ``--seed``: the random sources are seeded, the wall
clock (the handshake's timestamp) is fixed, and nothing that varies between runs is printed
(ports, times, the measured round trip). What each node sees in one pass of the loop is
printed A first, then B: two sockets ready in the same pass come back from the selector in an
order the kernel chooses.
"""

from __future__ import annotations

import argparse
import logging
import random
import socket
import sys
from collections.abc import Callable
from typing import Any, TextIO

from .config import NodeConfig
from .eventqueue import NodeEvent
from .loop import EventLoop
from .machines.connection import FrameSent, Observation, RuleApplied
from .machines.events import (
    BytesReceived,
    Closed,
    CloseRequested,
    Established,
    Misbehaviour,
    RttMeasured,
    TimerExpired,
    TransportFailed,
)
from .machines.privacy import PRIVACY_LEVELS
from .machines.reasons import sent_reason
from .node import Node
from .wire import DecodeError, Ping, decode_frames, encode_frame
from .wire.frame import Frame
from .wire.jsonform import frame_to_json
from .wire.registry import Feature, PrivacyFeature, flag_names

NAMES = ("A", "B")
HOSTS = ("127.0.0.1", "127.0.0.2")
RAW_HOST = "127.0.0.3"  # the misbehaving socket's own address: its ban is not A's
# The wall clock the nodes are given: it is the handshake's timestamp, which would otherwise
# change the bytes, and their checksum, from one run to the next.
FIXED_WALL_CLOCK = 1_700_000_000.0
# A pings 1 s after the handshake; B keeps the default (minutes), so there is exactly one ping
# in the demo, and the phases after it end long before A's second.
PING_INTERVAL = 1.0
PING_TIMEOUT = 0.5
PHASE_TIMEOUT = 10.0  # seconds a phase may take before the demo gives up
HEX_BYTES_PER_LINE = 16
_HOST_NAMES = {HOSTS[0]: "A", RAW_HOST: "the raw socket"}


class DemoError(Exception):
    """A phase did not finish in time."""


def add_parser(commands: Any) -> None:
    """Register ``demo`` with the command line's subparsers."""
    demo = commands.add_parser(
        "demo",
        help="two nodes in one process: a connection's whole life, narrated",
        description="Connect, handshake, ping, a violation and a graceful close between two "
        "nodes on loopback; prints every frame sent and every rule applied.",
    )
    demo.add_argument("--seed", type=int, default=1, help="seed of both random sources (1)")
    demo.add_argument(
        "--level",
        default="none",
        choices=PRIVACY_LEVELS,
        help="privacy_level of both nodes (none: plaintext, the bytes readable)",
    )
    demo.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    # The nodes' own log lines name ports; the transcript is the demo's output.
    logging.getLogger("obscura_ref").addHandler(logging.NullHandler())
    try:
        run(args.seed, args.level, sys.stdout)
    except BrokenPipeError:
        raise  # a reader that stopped (| head): ends quietly, as the other commands do
    except (DemoError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


class Narrator:
    """Collects what the nodes report during one pass of the loop and prints it, A first."""

    def __init__(self, out: TextIO, level: str) -> None:
        self._out = out
        self._level = level
        self._pending: list[tuple[int, list[str]]] = []
        # Who each node's peer numbers are: filled as connections appear.
        self.peer_names: dict[tuple[int, int], str] = {}
        self.encrypted: set[tuple[int, int]] = set()  # the connections past a Noise handshake

    def say(self, text: str = "") -> None:
        print(text, file=self._out)

    def observer(self, node: int) -> Callable[[int, Observation], None]:
        def observe(peer: int, observation: Observation) -> None:
            self._pending.append((node, self._describe(node, peer, observation)))

        return observe

    def on_event(self, node: int) -> Callable[[NodeEvent], None]:
        def tell(item: NodeEvent) -> None:
            if isinstance(item.event, Established) and item.event.session_id is not None:
                self.encrypted.add((node, item.peer))
            line = _event_text(item.event)
            if line is not None:
                self._pending.append(
                    (node, [f"[{NAMES[node]}] {self._peer(node, item.peer)} {line}"])
                )

        return tell

    def flush(self) -> None:
        # Stable: each node's lines keep their order.
        for _, lines in sorted(self._pending, key=lambda entry: entry[0]):
            for line in lines:
                self.say(line)
        self._pending.clear()

    def _peer(self, node: int, peer: int) -> str:
        return f"peer {peer} ({self.peer_names.get((node, peer), 'unknown')})"

    def _what_arrives(self, node: int, peer: int, rule: RuleApplied) -> str:
        if rule.state.value == "securing":
            return "a Noise handshake message"
        if (node, peer) in self.encrypted or self._level == "maximum":
            # At maximum nothing is in the clear from the first byte (privacy.md section 3.5).
            return "ENCRYPTED: Noise, garbage or records"
        return "plaintext, padding included"

    def _describe(self, node: int, peer: int, observation: Observation) -> list[str]:
        who = f"[{NAMES[node]}] {self._peer(node, peer)}"
        plaintext = self._level == "none"
        if isinstance(observation, RuleApplied):
            rule, subject = observation.rule, observation.subject
            lines = [
                f"{who}: rule for {observation.state.value} + {observation.input.value} "
                f"({_subject_text(subject)})",
                f"      what happens: {rule.summary}",
                f"      rule IDs: {', '.join(rule.requirements)}",
            ]
            if isinstance(subject, BytesReceived) and not plaintext:
                # Above level none, what arrives is where the real bytes can be seen: the
                # padding, the Noise handshake's messages and the sealed records.
                what = self._what_arrives(node, peer, observation)
                lines.append(f"      the bytes as they arrived: {what}")
                lines += hex_lines(subject.data)
            return lines
        return [f"{who}: sends", *_frame_lines(observation, show_bytes=plaintext)]


def _subject_text(subject: object) -> str:
    if isinstance(subject, Frame):
        return f"a {subject.message.message_type.name} frame"
    if isinstance(subject, BytesReceived):
        return f"{len(subject.data)} bytes read"
    if isinstance(subject, TimerExpired):
        return f"the {subject.timer.value} timer expired"
    if isinstance(subject, DecodeError):
        return f"{subject.code.value} ({subject.requirement}): {subject.detail}"
    if isinstance(subject, CloseRequested):
        return f"close requested: {subject.reason.label}"
    if isinstance(subject, TransportFailed):
        return f"transport failed: {subject.detail}"
    if isinstance(subject, Exception):
        return str(subject)
    return type(subject).__name__


def _frame_lines(sent: FrameSent, show_bytes: bool) -> list[str]:
    """The frame's fields, and its bytes when ``show_bytes``: a plaintext frame without
    padding is exactly ``encode_frame`` of its message. Padding is random and the observer
    does not see it, nor the sealed record: those bytes are shown where they arrive."""
    frame = Frame(sent.message)
    name = sent.message.message_type.name
    if sent.sealed:
        lines = [f"      {name}, sealed in a record of {sent.size} bytes: ENCRYPTED on the wire"]
    else:
        lines = [f"      {name}, {sent.size} bytes on the wire"]
    if show_bytes:
        lines += hex_lines(encode_frame(sent.message))
    for key, value in frame_to_json(frame).items():
        if key in ("type", "padding", "padding_length") or key.endswith("_flags"):
            continue
        lines.append(f"        {key}: {_field_text(key, value, frame)}")
    return lines


def hex_lines(data: bytes) -> list[str]:
    """``data`` as hex, 16 bytes a line in groups of 4, each line led by its offset."""
    lines = []
    for start in range(0, len(data), HEX_BYTES_PER_LINE):
        chunk = data[start : start + HEX_BYTES_PER_LINE]
        words = " ".join(chunk[i : i + 4].hex() for i in range(0, len(chunk), 4))
        lines.append(f"        {start:04x}  {words}")
    return lines


def _field_text(key: str, value: object, frame: Frame) -> str:
    if key == "code":
        return f"{value} ({frame.message.message_type.name})"
    if key == "reason" and isinstance(value, int):
        return f"{value} ({reason_name(value)})"
    if key in ("features", "privacy_features"):
        names = frame_to_json(frame)[f"{key}_flags"]
        return f"{value} ({' '.join(names) or 'none'})"
    return repr(value) if isinstance(value, str) and key == "user_agent" else str(value)


def reason_name(code: int) -> str:
    """The name of a Disconnect's reason code (spec/connection.md section 5)."""
    reason = sent_reason(code)
    return "not a known code" if reason is None else reason.label


def _event_text(event: object) -> str | None:
    if isinstance(event, Established):
        n = event.negotiated
        features = " ".join(flag_names(Feature, n.features)) or "none"
        privacy = " ".join(flag_names(PrivacyFeature, n.privacy_features)) or "none"
        text = (
            f"EVENT established: version {n.version}, features {features}, privacy features "
            f"{privacy}, user agent {n.peer_user_agent!r}"
        )
        if event.session_id is not None:
            text += f", encrypted, session id {event.session_id.hex()[:16]}..."
        return text
    if isinstance(event, RttMeasured):
        return "EVENT rtt measured (its value changes from run to run: not shown)"
    if isinstance(event, Misbehaviour):
        return f"EVENT misbehaved: {event.reason.label} ({event.requirement})"
    if isinstance(event, Closed):
        said = (
            "" if event.peer_reason is None else f", peer's reason {reason_name(event.peer_reason)}"
        )
        return f"EVENT closed: {event.reason.label} ({event.reason.requirement}){said}"
    return None


def run(seed: int, level: str, out: TextIO) -> None:
    """Run the demo, writing its transcript to ``out``."""
    narrator = Narrator(out, level)
    loop = EventLoop()
    base = NodeConfig().with_values({"privacy_level": level, "data_dir": ""}, "demo")
    configs = (
        base.with_values({"ping_interval": PING_INTERVAL, "ping_timeout": PING_TIMEOUT}, "demo"),
        base,
    )
    nodes = [
        Node(
            config.check_together(),
            rng=random.Random(seed + index),
            wall_clock=lambda: FIXED_WALL_CLOCK,
            loop=loop,
            on_event=narrator.on_event(index),
            observer=narrator.observer(index),
        )
        for index, config in enumerate(configs)
    ]
    a, b = nodes
    try:
        _lifecycle(a, b, narrator, level, seed)
    finally:
        for node in nodes:
            node.shutdown(0)
        loop.close()


def _lifecycle(a: Node, b: Node, narrator: Narrator, level: str, seed: int) -> None:
    say = narrator.say
    say(f"Two nodes in one process, one event loop, privacy_level {level}, seed {seed}.")
    say("A listens on 127.0.0.1, B on 127.0.0.2; the system picks the ports (not shown).")
    if level == "none":
        say("Plaintext: every byte below is what travels on the wire.")
    elif level == "maximum":
        say("Encrypted from the first byte: a hidden Noise key and garbage, then records that")
        say("carry even the handshakes; each frame's fields are shown where it is sent, the")
        say("bytes where they arrive.")
    else:
        say("After the plaintext handshakes and a Noise handshake the bytes are ENCRYPTED:")
        say("each frame's fields are shown where it is sent, the bytes where they arrive.")
    a.listen(HOSTS[0], 0)
    b_address = b.listen(HOSTS[1], 0)

    _phase(narrator, "1. A connects to B; the handshake")
    peer_b = a.connect(*b_address)
    narrator.peer_names[(0, peer_b)] = "B"
    _run(a, narrator, lambda: _established(a, peer_b) and len(_established_ids(b)) == 1, b)

    _phase(narrator, f"2. A's ping_interval ({PING_INTERVAL:g} s) passes: a ping and its pong")
    rtt_before = _rtt(a, peer_b)
    _run(a, narrator, lambda: _rtt(a, peer_b) != rtt_before, b)

    _phase(narrator, "3. A raw socket from 127.0.0.3 sends B a Ping whose checksum is wrong")
    frame = bytearray(encode_frame(Ping(0x0123456789ABCDEF)))
    frame[12] ^= 0xFF  # the first byte of the checksum (WIRE-3)
    say(f"the raw socket sends {len(frame)} bytes:")
    for line in hex_lines(bytes(frame)):
        say(line)
    before = set(b.peer_ids)
    raw = socket.create_connection(b_address, timeout=PHASE_TIMEOUT, source_address=(RAW_HOST, 0))
    try:
        raw.sendall(bytes(frame))
        _run(a, narrator, lambda: bool(set(b.peer_ids) - before), b)
        raw_peer = next(iter(set(b.peer_ids) - before))
        _run(a, narrator, lambda: _closing(b, raw_peer), b)
        reply = _read_until_end(raw)
        say(f"the raw socket receives {len(reply)} bytes, then the end of the stream:")
        for line in hex_lines(reply):
            say(line)
        for received in decode_frames(reply)[0]:
            fields = frame_to_json(received)
            reason = fields.get("reason")
            named = "" if reason is None else f", reason {reason} ({reason_name(reason)})"
            say(f"        a {fields['type']}{named}, {fields['padding_length']} bytes of padding")
    finally:
        raw.close()
    _run(a, narrator, lambda: b.state_of(raw_peer) is None, b)

    _phase(narrator, "4. A closes its connection to B: a graceful close")
    a.close(peer_b)
    _run(a, narrator, lambda: not a.peer_ids and not b.peer_ids, b)
    _phase(narrator, "The end: no connection left")


def _closing(node: Node, peer: int) -> bool:
    state = node.state_of(peer)
    return state is not None and state.value == "closing"


def _read_until_end(sock: socket.socket) -> bytes:
    """What the node sends the raw socket, until it ends its side."""
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _phase(narrator: Narrator, title: str) -> None:
    narrator.say()
    narrator.say(f"== {title} ==")


def _established_ids(node: Node) -> list[int]:
    return [row.peer for row in node.status() if row.state == "established"]


def _established(node: Node, peer: int) -> bool:
    return peer in _established_ids(node)


def _rtt(node: Node, peer: int) -> float | None:
    return next((row.rtt for row in node.status() if row.peer == peer), None)


def _run(a: Node, narrator: Narrator, done: Callable[[], bool], b: Node) -> None:
    """Run the shared loop pass by pass until ``done()``, naming B's new peers and printing
    what each pass reported."""
    deadline = a.loop.clock() + PHASE_TIMEOUT
    while not done():
        if a.loop.clock() > deadline:
            raise DemoError("a phase of the demo did not finish in time")
        a.loop.run_once(0.05)
        for row in b.status():
            if (1, row.peer) not in narrator.peer_names:
                host = row.address.rpartition(":")[0]
                narrator.peer_names[(1, row.peer)] = _HOST_NAMES.get(host, host)
        narrator.flush()
    narrator.flush()
