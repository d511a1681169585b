"""The mutant catalogue: deliberately broken variants of the reference, each breaking one rule
that a peer can observe, with the conformance vectors that must catch it.

A mutant is a function that patches the reference in-process through a ``pytest.MonkeyPatch``:
a module attribute where it is looked up at call time, a row of ``CONNECTION_TRANSITIONS``, an
entry of ``CHECK_ORDER`` or a method of ``PeerConnection``, ``HandshakeProtocol``, ``Node``.
No source file is ever edited. tests/test_mutants.py replays the named vectors against each
mutant (``replay_reference``) and requires at least one of them to fail.

Some patched names (``check_magic``, ``decode_body``, ``decode_payload``) are also used by the
runner's own decoder; those mutants only relax what it accepts, which the vectors' verdicts do
not rely on.

``python -m tests.mutants`` writes the table of conformance/MUTANTS.md from this catalogue.
"""

from __future__ import annotations

import builtins
import dataclasses
import random
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from obscura_ref.config import NodeConfig
from obscura_ref.machines import connection, handshake, privacy
from obscura_ref.machines.connection import (
    CONNECTION_TRANSITIONS,
    ConnectionSettings,
    ConnState,
    Direction,
    Input,
    PeerConnection,
)
from obscura_ref.machines.events import (
    Action,
    CloseRequested,
    CloseTransport,
    Event,
    MessageReceived,
    Misbehaviour,
    Negotiated,
    SendBytes,
    Timer,
)
from obscura_ref.machines.handshake import CHECK_ORDER, HandshakeProtocol, LocalHandshake, Role
from obscura_ref.machines.nonces import OwnNonces
from obscura_ref.machines.padding import RandomSource, origin_padding, random_below
from obscura_ref.machines.privacy import PrivacyPolicy
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.machines.secure import SecureChannel
from obscura_ref.manager import manager as manager_module
from obscura_ref.manager import rotation as rotation_module
from obscura_ref.manager.bans import BanList, MisbehaviourRecords
from obscura_ref.manager.manager import Closed as ManagerClosed
from obscura_ref.manager.manager import (
    ConnectionManager,
    InboundOffered,
    Misbehaved,
    PeerType,
)
from obscura_ref.manager.score import PeerFacts
from obscura_ref.node import AppEvent, Node, _Peer
from obscura_ref.transport.records import MAX_RECORD, RecordError, RecordErrorCode, RecordOpener
from obscura_ref.wire import (
    MAX_HANDSHAKE_PAYLOAD,
    MAX_PAYLOAD,
    DecodeError,
    Disconnect,
    Frame,
    Handshake,
    Message,
    MessageType,
    Opaque,
    Ping,
    Pong,
    frame,
    messages,
    registry,
)
from obscura_ref.wire.messages import Payload

ROOT = Path(__file__).resolve().parent.parent
MUTANTS_MD = ROOT / "conformance" / "MUTANTS.md"
BEGIN, END = "<!-- generated: mutants -->", "<!-- end generated -->"

Apply = Callable[[pytest.MonkeyPatch], None]
C = ConnState


@dataclass(frozen=True)
class Mutant:
    name: str
    chapter: str
    requirements: tuple[str, ...]
    breaks: str
    vectors: tuple[str, ...]  # FILE#tcId of the cases that catch it
    apply: Apply


MUTANTS: list[Mutant] = []


def mutant(chapter: str, requirements: str, *vectors: str) -> Callable[[Apply], Apply]:
    """Register the decorated function as a mutant named after it; its docstring says what it
    breaks."""

    def register(apply: Apply) -> Apply:
        name = apply.__name__.replace("_", "-")
        breaks = " ".join((apply.__doc__ or "").split())
        ids = tuple(requirements.split(", "))
        MUTANTS.append(Mutant(name, chapter, ids, breaks, vectors, apply))
        return apply

    return register


# ---- helpers ---------------------------------------------------------------------------


def _row(
    mp: pytest.MonkeyPatch, state: ConnState, input_: Input, handler: str, *more: ConnState
) -> None:
    """Give one row of the connection table another handler, which may leave the machine in
    ``state`` or in ``more`` besides the row's own targets."""
    rule = CONNECTION_TRANSITIONS[(state, input_)]
    targets = tuple(dict.fromkeys((*rule.targets, state, *more)))
    changed = dataclasses.replace(rule, handler=handler, targets=targets)
    mp.setitem(CONNECTION_TRANSITIONS, (state, input_), changed)


def _scaled_settings(mp: pytest.MonkeyPatch, **factors: float) -> None:
    """The node runs its connections with these settings multiplied by their factors."""
    original = NodeConfig.connection_settings

    def connection_settings(self: NodeConfig) -> ConnectionSettings:
        settings = original(self)
        values = {name: getattr(settings, name) * factor for name, factor in factors.items()}
        return dataclasses.replace(settings, **values)

    mp.setattr(NodeConfig, "connection_settings", connection_settings)


def _encoder(mp: pytest.MonkeyPatch, alter: Callable[[bytearray, bytes], None]) -> None:
    """The machines' frames are altered by ``alter`` once encoded (the runner's are not); it is
    given the frame and the encoded fields of its message."""
    original = frame.frame_bytes

    def frame_bytes(message_type: MessageType, fields: bytes, padding: bytes = b"") -> bytes:
        data = bytearray(original(message_type, fields, padding))
        alter(data, fields)
        return bytes(data)

    mp.setattr(connection, "frame_bytes", frame_bytes)


def _negotiation(mp: pytest.MonkeyPatch, version: Callable[[int, int], int]) -> None:
    """The negotiated version is ``version(own, peer's)``."""
    original = handshake.negotiate

    def negotiate(local: LocalHandshake, peer: Handshake) -> Negotiated:
        agreed = version(local.version, peer.version)
        return dataclasses.replace(original(local, peer), version=agreed)

    mp.setattr(handshake, "negotiate", negotiate)


def _without_sends(actions: list[Action]) -> list[Action]:
    return [action for action in actions if not isinstance(action, SendBytes)]


# ---- wire ------------------------------------------------------------------------------


@mutant("wire", "WIRE-5, CONN-30", "session-close.json#9")
def magic_not_checked(mp: pytest.MonkeyPatch) -> None:
    """The bytes of `magic` are not compared with MAGIC."""
    mp.setattr(frame, "check_magic", lambda received, offset: None)


@mutant("wire", "WIRE-7, CONN-30", "session-close.json#11")
def max_payload_not_enforced(mp: pytest.MonkeyPatch) -> None:
    """A `payload_length` above MAX_PAYLOAD is accepted: the receiver waits for the payload."""
    mp.setattr(frame, "MAX_PAYLOAD", 0xFFFF_FFFF)
    mp.setattr(connection, "MAX_PAYLOAD", 0xFFFF_FFFF)


@mutant("wire", "WIRE-9, CONN-30", "session-close.json#12")
def checksum_not_verified(mp: pytest.MonkeyPatch) -> None:
    """The checksum of a received frame is not verified."""
    original = frame.decode_body

    def decode_body(message_type: MessageType, expected: bytes, payload: Payload) -> Frame:
        return original(message_type, frame.checksum(payload), payload)

    mp.setattr(frame, "decode_body", decode_body)


@mutant("wire", "WIRE-33, CONN-30", "session-close.json#13", "session-close.json#14")
def short_payload_zero_filled(mp: pytest.MonkeyPatch) -> None:
    """A Ping, Pong or Disconnect payload shorter than its fields is filled up with zero bytes."""
    original = messages.decode_payload
    sizes = {MessageType.Ping: 8, MessageType.Pong: 8, MessageType.Disconnect: 2}

    def decode_payload(message_type: MessageType, payload: Payload) -> tuple[Message, bytes]:
        return original(message_type, bytes(payload).ljust(sizes.get(message_type, 0), b"\0"))

    mp.setattr(frame, "decode_payload", decode_payload)


@mutant("wire", "WIRE-6, CONN-30", "session-close.json#10")
def unknown_type_taken_as_opaque(mp: pytest.MonkeyPatch) -> None:
    """A frame of an unregistered message type is taken as an opaque Inv."""

    def lookup_type(code: int) -> MessageType | None:
        found = registry.lookup_type(code)
        return MessageType.Inv if found is None else found

    mp.setattr(frame, "lookup_type", lookup_type)


@mutant("wire", "WIRE-43, CONN-30", "session-close.json#15")
def long_user_agent_accepted(mp: pytest.MonkeyPatch) -> None:
    """A user agent longer than MAX_USER_AGENT (256 bytes) is accepted."""
    mp.setattr(messages, "MAX_USER_AGENT", 1024)


@mutant("wire", "WIRE-1", "session-handshake.json#2")
def magic_sent_reversed(mp: pytest.MonkeyPatch) -> None:
    """Frames are sent with the bytes of MAGIC in reverse order."""

    def alter(data: bytearray, fields: bytes) -> None:
        data[0:4] = data[3::-1]

    _encoder(mp, alter)


@mutant("wire", "WIRE-2", "session-handshake.json#2")
def payload_length_without_padding(mp: pytest.MonkeyPatch) -> None:
    """`payload_length` is sent without the padding."""

    def alter(data: bytearray, fields: bytes) -> None:
        struct.pack_into("<I", data, 8, len(fields))

    _encoder(mp, alter)


@mutant("wire", "WIRE-3", "session-handshake.json#2")
def checksum_sent_wrong(mp: pytest.MonkeyPatch) -> None:
    """Frames are sent with a wrong checksum."""

    def alter(data: bytearray, fields: bytes) -> None:
        data[12] ^= 0xFF

    _encoder(mp, alter)


# ---- handshake -------------------------------------------------------------------------


@mutant("handshake", "HS-2", "session-handshake.json#1")
def responder_speaks_first(mp: pytest.MonkeyPatch) -> None:
    """The responder sends its handshake as soon as it accepts, before the initiator's."""
    original = PeerConnection.start

    def start(self: PeerConnection) -> list[Action]:
        actions = original(self)
        if self.direction is Direction.INBOUND:
            own = self.handshake.own_handshake()
            actions += self._collect(lambda: self._send_frame(own))
        return actions

    mp.setattr(PeerConnection, "start", start)
    mp.setattr(HandshakeProtocol, "_check_and_answer", lambda self: self._judge(reply=None))


@mutant("handshake", "HS-3", "session-handshake.json#2")
def responder_never_answers(mp: pytest.MonkeyPatch) -> None:
    """The responder accepts the initiator's handshake but never sends its own."""
    mp.setattr(HandshakeProtocol, "_check_and_answer", lambda self: self._judge(reply=None))


@mutant("handshake", "HS-1", "session-handshake.json#19")
def initiator_waits_for_responder(mp: pytest.MonkeyPatch) -> None:
    """The initiator waits for the responder's handshake instead of sending its own first."""
    original = PeerConnection._connected

    def connected(self: PeerConnection) -> ConnState:
        state = original(self)
        self._actions = _without_sends(self._actions)
        return state

    mp.setattr(PeerConnection, "_connected", connected)


@mutant("handshake", "HS-10", "decision-handshake.json#10", "session-handshake.json#4")
def version_check_dropped(mp: pytest.MonkeyPatch) -> None:
    """A peer below MIN_COMPATIBLE_VERSION is accepted."""
    mp.setattr(HandshakeProtocol, "_check_version", lambda self, peer: None)


@mutant("handshake", "HS-12", "decision-handshake.json#11", "session-handshake.json#17")
def self_connection_check_dropped(mp: pytest.MonkeyPatch) -> None:
    """A handshake carrying one of the node's own outstanding nonces is accepted."""
    mp.setattr(HandshakeProtocol, "_check_nonce", lambda self, peer: None)


@mutant("handshake", "HS-11", "decision-handshake.json#18", "session-handshake.json#22")
def initiator_checks_version_first(mp: pytest.MonkeyPatch) -> None:
    """The initiator checks the version before the nonce."""
    mp.setitem(CHECK_ORDER, Role.INITIATOR, ("version", "nonce"))


@mutant("handshake", "HS-11", "decision-handshake.json#19", "session-handshake.json#18")
def responder_checks_nonce_first(mp: pytest.MonkeyPatch) -> None:
    """The responder checks the nonce before the version."""
    mp.setitem(CHECK_ORDER, Role.RESPONDER, ("nonce", "version"))


@mutant("handshake", "HS-15", "decision-handshake.json#3", "decision-handshake.json#4")
def negotiates_higher_version(mp: pytest.MonkeyPatch) -> None:
    """The negotiated version is the higher of the two."""
    _negotiation(mp, max)


@mutant("handshake", "HS-15", "decision-handshake.json#6", "decision-handshake.json#7")
def negotiates_own_version(mp: pytest.MonkeyPatch) -> None:
    """The negotiated version is the node's own, not the lower peer's."""
    _negotiation(mp, lambda own, peer: own)


@mutant("handshake", "HS-16", "decision-handshake.json#20")
def features_negotiated_by_or(mp: pytest.MonkeyPatch) -> None:
    """Features are negotiated with a bitwise OR instead of an AND."""
    original = handshake.negotiate

    def negotiate(local: LocalHandshake, peer: Handshake) -> Negotiated:
        return dataclasses.replace(original(local, peer), features=local.features | peer.features)

    mp.setattr(handshake, "negotiate", negotiate)


@mutant("handshake", "HS-20", "session-handshake.json#5")
def ping_before_handshake_answered(mp: pytest.MonkeyPatch) -> None:
    """A Ping before the handshake is answered with a Pong instead of closing the connection."""

    def answer_early_ping(self: PeerConnection) -> ConnState:
        message = self._frame().message
        assert isinstance(message, Ping)
        self._send_frame(Pong(message.nonce))
        return self.state

    mp.setattr(PeerConnection, "_mutant_answer_early_ping", answer_early_ping, raising=False)
    _row(mp, C.HANDSHAKING, Input.PING_FRAME, "_mutant_answer_early_ping")


@mutant("handshake", "HS-20", "session-handshake.json#6")
def pong_before_handshake_ignored(mp: pytest.MonkeyPatch) -> None:
    """A Pong before the handshake is ignored."""
    _row(mp, C.HANDSHAKING, Input.PONG_FRAME, "_ignore")


@mutant("handshake", "HS-20", "session-handshake.json#7")
def message_before_handshake_accepted(mp: pytest.MonkeyPatch) -> None:
    """An opaque message before the handshake is accepted (and dropped)."""
    _row(mp, C.HANDSHAKING, Input.OTHER_FRAME, "_ignore")


@mutant("handshake", "HS-20", "session-handshake.json#8")
def second_handshake_ignored(mp: pytest.MonkeyPatch) -> None:
    """A second handshake on an established connection is ignored."""
    _row(mp, C.ESTABLISHED, Input.HANDSHAKE_FRAME, "_ignore")


@mutant("handshake", "HS-22", "session-handshake.json#10")
def handshake_timeout_not_enforced(mp: pytest.MonkeyPatch) -> None:
    """The handshake timer's expiry is ignored: a silent peer is kept."""
    _row(mp, C.HANDSHAKING, Input.HANDSHAKE_TIMER, "_ignore")


@mutant("handshake", "HS-23, WIRE-15", "session-handshake.json#13")
def handshake_limit_not_applied(mp: pytest.MonkeyPatch) -> None:
    """Before the handshake, frames up to MAX_PAYLOAD are accepted instead of 1 KiB."""
    mp.setattr(connection, "MAX_HANDSHAKE_PAYLOAD", MAX_PAYLOAD)


@mutant("handshake", "HS-23", "session-handshake.json#15")
def handshake_limit_kept(mp: pytest.MonkeyPatch) -> None:
    """The 1 KiB limit of the handshake stays in force once it is complete."""
    mp.setattr(connection, "MAX_PAYLOAD", MAX_HANDSHAKE_PAYLOAD)


@mutant("handshake", "HS-23", "session-handshake.json#15")
def handshake_limit_lifted_next_read(mp: pytest.MonkeyPatch) -> None:
    """The handshake's limit is lifted only for the next read, not for the rest of this one."""
    original_handshake, original_decode = PeerConnection._peer_handshake, PeerConnection._decode

    def peer_handshake(self: PeerConnection) -> ConnState:
        state = original_handshake(self)
        self._decoder.max_payload = MAX_HANDSHAKE_PAYLOAD
        return state

    def decode(self: PeerConnection) -> ConnState:
        state = original_decode(self)
        if state is C.ESTABLISHED:
            self._decoder.max_payload = MAX_PAYLOAD
        return state

    mp.setattr(PeerConnection, "_peer_handshake", peer_handshake)
    mp.setattr(PeerConnection, "_decode", decode)


@mutant("handshake", "HS-13, HS-12", "session-handshake.json#22", "session-handshake.json#17")
def nonce_released_when_sent(mp: pytest.MonkeyPatch) -> None:
    """The initiator's nonce stops being outstanding as soon as its handshake is sent."""
    original = PeerConnection._connected

    def connected(self: PeerConnection) -> ConnState:
        state = original(self)
        self._release_nonce()
        return state

    mp.setattr(PeerConnection, "_connected", connected)


@mutant("handshake", "HS-13", "session-handshake.json#16")
def one_nonce_for_every_connection(mp: pytest.MonkeyPatch) -> None:
    """Every connection's handshake carries the same nonce."""

    def issue(self: OwnNonces, rng: RandomSource) -> int:
        self._outstanding.add(0x0B5C)
        return 0x0B5C

    mp.setattr(OwnNonces, "issue", issue)


# ---- connection: keepalive and close ---------------------------------------------------


@mutant("connection", "KA-2", "session-keepalive.json#2")
def pong_nonce_altered(mp: pytest.MonkeyPatch) -> None:
    """A Pong carries another nonce than the Ping it answers."""

    def answer_ping(self: PeerConnection) -> ConnState:
        message = self._frame().message
        assert isinstance(message, Ping)
        self._send_frame(Pong(message.nonce ^ 1))
        return C.ESTABLISHED

    mp.setattr(PeerConnection, "_answer_ping", answer_ping)


@mutant("connection", "KA-2", "session-keepalive.json#2")
def ping_unanswered(mp: pytest.MonkeyPatch) -> None:
    """A Ping on an established connection is not answered."""
    _row(mp, C.ESTABLISHED, Input.PING_FRAME, "_ignore")


@mutant("connection", "KA-1", "session-keepalive.json#1")
def first_ping_at_once(mp: pytest.MonkeyPatch) -> None:
    """The first Ping is sent as soon as the handshake completes, not ping_interval later."""
    original = PeerConnection._peer_handshake

    def peer_handshake(self: PeerConnection) -> ConnState:
        state = original(self)
        if state is C.ESTABLISHED:
            self._arm(Timer.PING, "ping_interval", since=self._now - self.settings.ping_interval)
        return state

    mp.setattr(PeerConnection, "_peer_handshake", peer_handshake)


@mutant("connection", "KA-1", "session-keepalive.json#1")
def ping_nonce_repeated(mp: pytest.MonkeyPatch) -> None:
    """Every Ping carries the same nonce instead of one drawn for it."""
    original = PeerConnection._send_ping

    def send_ping(self: PeerConnection) -> ConnState:
        rng, self._rng = self._rng, random.Random(0)
        try:
            return original(self)
        finally:
            self._rng = rng

    mp.setattr(PeerConnection, "_send_ping", send_ping)


@mutant("connection", "KA-9", "session-keepalive.json#8")
def second_ping_while_outstanding(mp: pytest.MonkeyPatch) -> None:
    """A Ping is sent at every ping_interval even while one is outstanding."""
    original = PeerConnection._send_ping

    def send_ping(self: PeerConnection) -> ConnState:
        self._outstanding_ping = None
        return original(self)

    mp.setattr(PeerConnection, "_send_ping", send_ping)


@mutant("connection", "KA-3", "session-keepalive.json#7")
def ping_timeout_ignores_received_bytes(mp: pytest.MonkeyPatch) -> None:
    """The ping timeout is counted from the Ping, whatever arrived since."""

    def ping_timed_out(self: PeerConnection) -> ConnState:
        return self._begin_close(CloseReason.PING_TIMEOUT, "no pong", fault=None)

    mp.setattr(PeerConnection, "_ping_timed_out", ping_timed_out)


@mutant("connection", "KA-3", "session-keepalive.json#3")
def ping_timeout_early(mp: pytest.MonkeyPatch) -> None:
    """The ping timeout fires after a quarter of ping_timeout."""
    _scaled_settings(mp, ping_timeout=0.25)


@mutant("connection", "KA-5", "session-keepalive.json#5")
def unsolicited_pong_closes(mp: pytest.MonkeyPatch) -> None:
    """A Pong that answers no outstanding Ping closes the connection."""
    original = PeerConnection._pong

    def pong(self: PeerConnection) -> ConnState:
        message = self._frame().message
        assert isinstance(message, Pong)
        outstanding = self.outstanding_ping
        if outstanding is None or outstanding[0] != message.nonce:
            return self._violation(CloseReason.UNEXPECTED_MESSAGE, "unsolicited pong")
        return original(self)

    mp.setattr(PeerConnection, "_pong", pong)
    _row(mp, C.ESTABLISHED, Input.PONG_FRAME, "_pong", C.CLOSING)


@mutant("connection", "KA-5, KA-3", "session-keepalive.json#3")
def pong_nonce_not_checked(mp: pytest.MonkeyPatch) -> None:
    """Any Pong is taken as the answer to the outstanding Ping, whatever its nonce."""
    original = PeerConnection._pong

    def pong(self: PeerConnection) -> ConnState:
        message = self._frame().message
        assert isinstance(message, Pong)
        if self._outstanding_ping is not None:
            self._outstanding_ping = (message.nonce, self._outstanding_ping[1])
        return original(self)

    mp.setattr(PeerConnection, "_pong", pong)


@mutant("connection", "KA-6", "session-keepalive.json#6")
def inactivity_timeout_not_enforced(mp: pytest.MonkeyPatch) -> None:
    """The inactivity timer's expiry is ignored."""
    _row(mp, C.ESTABLISHED, Input.INACTIVITY_TIMER, "_ignore")


@mutant("connection", "KA-6", "session-keepalive.json#7")
def inactivity_ignores_received_bytes(mp: pytest.MonkeyPatch) -> None:
    """The inactivity timeout is counted from the handshake, whatever arrived since."""

    def check_inactivity(self: PeerConnection) -> ConnState:
        return self._begin_close(CloseReason.INACTIVITY_TIMEOUT, "inactive", fault=None)

    mp.setattr(PeerConnection, "_check_inactivity", check_inactivity)


@mutant("connection", "CONN-10", "session-node.json#4")
def opaque_message_dropped(mp: pytest.MonkeyPatch) -> None:
    """Opaque messages on an established connection are dropped, not delivered."""
    _row(mp, C.ESTABLISHED, Input.OTHER_FRAME, "_ignore")


@mutant("connection", "CONN-10", "session-node.json#4")
def messages_delivered_out_of_order(mp: pytest.MonkeyPatch) -> None:
    """The opaque messages of one read are delivered in reverse order."""
    original = PeerConnection._decode

    def decode(self: PeerConnection) -> ConnState:
        state = original(self)
        delivered = iter([a for a in reversed(self._actions) if isinstance(a, MessageReceived)])
        self._actions = [
            next(delivered) if isinstance(a, MessageReceived) else a for a in self._actions
        ]
        return state

    mp.setattr(PeerConnection, "_decode", decode)


@mutant("connection", "CONN-20", "session-close.json#8")
def no_disconnect_on_close(mp: pytest.MonkeyPatch) -> None:
    """A close of the node's own accord sends no Disconnect."""
    original = PeerConnection._begin_close

    def begin_close(
        self: PeerConnection,
        reason: CloseReason,
        detail: str,
        *,
        notify: bool = True,
        fault: Misbehaviour | None,
    ) -> ConnState:
        return original(self, reason, detail, notify=False, fault=fault)

    mp.setattr(PeerConnection, "_begin_close", begin_close)


@mutant("connection", "CONN-20", "session-close.json#1")
def close_drops_queued_frames(mp: pytest.MonkeyPatch) -> None:
    """A close drops the frames queued before it instead of sending them before the Disconnect."""
    original = PeerConnection._begin_close

    def begin_close(
        self: PeerConnection,
        reason: CloseReason,
        detail: str,
        *,
        notify: bool = True,
        fault: Misbehaviour | None,
    ) -> ConnState:
        self._actions = _without_sends(self._actions)
        return original(self, reason, detail, notify=notify, fault=fault)

    mp.setattr(PeerConnection, "_begin_close", begin_close)


@mutant("connection", "CONN-20, WIRE-60", "session-close.json#8")
def disconnect_reason_zero(mp: pytest.MonkeyPatch) -> None:
    """The Disconnect carries reason 0 instead of the close's reason."""
    original = PeerConnection._send_frame

    def send_frame(self: PeerConnection, message: Message) -> None:
        original(self, Disconnect(0) if isinstance(message, Disconnect) else message)

    mp.setattr(PeerConnection, "_send_frame", send_frame)


@mutant("connection", "CONN-30", "session-close.json#8")
def invalid_bytes_closed_as_unexpected(mp: pytest.MonkeyPatch) -> None:
    """Bytes that do not decode close the connection as unexpected_message, the wrong reason."""

    def invalid_frame(self: PeerConnection) -> ConnState:
        error = self._pending
        assert isinstance(error, DecodeError)
        return self._violation(CloseReason.UNEXPECTED_MESSAGE, str(error), error)

    mp.setattr(PeerConnection, "_invalid_frame", invalid_frame)


@mutant("connection", "CONN-22", "session-handshake.json#9")
def peer_disconnect_answered(mp: pytest.MonkeyPatch) -> None:
    """The peer's Disconnect is answered with a Disconnect."""
    original = PeerConnection._peer_disconnected

    def peer_disconnected(self: PeerConnection) -> ConnState:
        self._send_frame(Disconnect(CloseReason.REQUESTED.code))
        return original(self)

    mp.setattr(PeerConnection, "_peer_disconnected", peer_disconnected)


@mutant("connection", "CONN-22", "session-close.json#2")
def peer_disconnect_ignored(mp: pytest.MonkeyPatch) -> None:
    """The peer's Disconnect is ignored: the connection stays open."""
    for state in (C.HANDSHAKING, C.ESTABLISHED):
        _row(mp, state, Input.DISCONNECT_FRAME, "_ignore")


@mutant("connection", "CONN-33", "session-close.json#4")
def end_of_stream_ignored(mp: pytest.MonkeyPatch) -> None:
    """The peer's end of stream is ignored: the connection stays open, half closed."""
    for state in (C.HANDSHAKING, C.ESTABLISHED):
        _row(mp, state, Input.END_OF_STREAM, "_ignore")


@mutant("connection", "CONN-33", "session-close.json#4")
def end_of_stream_answered(mp: pytest.MonkeyPatch) -> None:
    """The peer's end of stream is answered with a Disconnect."""
    original = PeerConnection._end_of_stream

    def end_of_stream(self: PeerConnection) -> ConnState:
        self._send_frame(Disconnect(CloseReason.PEER_CLOSED.code))
        return original(self)

    mp.setattr(PeerConnection, "_end_of_stream", end_of_stream)


@mutant("connection", "CONN-33", "session-close.json#5")
def truncated_stream_answered(mp: pytest.MonkeyPatch) -> None:
    """A stream that ends inside a frame is answered with a Disconnect invalid_message."""

    def end_of_stream(self: PeerConnection) -> ConnState:
        truncated = self._decoder.eof()
        if truncated is None:
            return self._begin_close(CloseReason.PEER_CLOSED, "end", notify=False, fault=None)
        return self._violation(CloseReason.INVALID_MESSAGE, str(truncated), truncated)

    mp.setattr(PeerConnection, "_end_of_stream", end_of_stream)


@mutant("connection", "CONN-24, CONN-25", "session-close.json#2")
def rest_of_read_decoded(mp: pytest.MonkeyPatch) -> None:
    """The rest of the read whose frame began the close is still decoded: a Ping in it is answered
    before the transport closes."""
    original = PeerConnection._decode

    def decode(self: PeerConnection) -> ConnState:
        state = original(self)
        while state is C.CLOSING and self._decoder.error is None:
            item = self._decoder.pull()
            if not isinstance(item, Frame):
                break
            if isinstance(item.message, Ping):
                close = next(
                    i for i, a in enumerate(self._actions) if isinstance(a, CloseTransport)
                )
                self._send_frame(Pong(item.message.nonce))
                self._actions.insert(close, self._actions.pop())
        return state

    mp.setattr(PeerConnection, "_decode", decode)


@mutant("connection", "CONN-23", "session-close.json#7")
def close_timeout_not_enforced(mp: pytest.MonkeyPatch) -> None:
    """The close timer's expiry is ignored: a close the peer never answers never ends."""
    _row(mp, C.CLOSING, Input.CLOSE_TIMER, "_ignore")


# ---- node: sockets, limits, persistent connections, stopping ---------------------------


@mutant("node", "NODE-4", "session-close.json#6", "session-close.json#7")
def close_without_waiting_for_peer(mp: pytest.MonkeyPatch) -> None:
    """The socket is closed right after the Disconnect is written, without waiting for the peer's
    end of stream."""
    original = Node._end_sending

    def end_sending(self: Node, peer: _Peer) -> None:
        original(self, peer)
        if peer.sock is not None:
            self._transport_closed(peer)

    mp.setattr(Node, "_end_sending", end_sending)


@mutant("manager", "LIM-16", "session-node.json#1")
def inbound_limit_one_over(mp: pytest.MonkeyPatch) -> None:
    """One inbound connection more than max_inbound_connections is admitted without an
    eviction."""
    _inbound_count(mp, -1)


@mutant("manager", "LIM-16", "session-node.json#1")
def inbound_limit_one_under(mp: pytest.MonkeyPatch) -> None:
    """The inbound limit is reached one connection early: a peer is evicted too soon."""
    _inbound_count(mp, +1)


def _inbound_count(mp: pytest.MonkeyPatch, change: int) -> None:
    original = ConnectionManager._count

    def count(self: ConnectionManager, kind: PeerType) -> int:
        return original(self, kind) + (change if kind is PeerType.INBOUND else 0)

    mp.setattr(ConnectionManager, "_count", count)


@mutant("manager", "LIM-16", "session-node.json#8")
def refusal_without_disconnect(mp: pytest.MonkeyPatch) -> None:
    """A connection refused at admission (here: banned) is closed without its Disconnect."""
    original = Node._queue

    def queue(self: Node, peer: _Peer, data: bytes) -> None:
        if not peer.refused:
            original(self, peer, data)

    mp.setattr(Node, "_queue", queue)


@mutant("manager", "LIM-17", "session-node.json#1")
def eviction_never_chooses(mp: pytest.MonkeyPatch) -> None:
    """At the inbound limit no peer is ever evicted: every newcomer is refused."""
    mp.setattr(manager_module, "choose_eviction", lambda candidates, now, key: None)


@mutant("manager", "LIM-17", "session-node.json#1")
def eviction_takes_the_oldest(mp: pytest.MonkeyPatch) -> None:
    """The eviction takes the longest-connected candidate instead of applying the table."""

    def oldest(candidates: Sequence[PeerFacts], now: float, key: bytes) -> int | None:
        return min(candidates, key=lambda c: (c.opened_at, c.peer)).peer if candidates else None

    mp.setattr(manager_module, "choose_eviction", oldest)


@mutant("manager", "LIM-13", "decision-manager.json#13", "decision-manager.json#6")
def outbound_limit_one_over(mp: pytest.MonkeyPatch) -> None:
    """One connection more than its type's limit is dialled."""
    mp.setattr(manager_module, "may_open_outbound", lambda count, limit: count <= limit)


@mutant("manager", "LIM-12", "decision-manager.json#3", "decision-manager.json#4")
def closing_connections_still_count(mp: pytest.MonkeyPatch) -> None:
    """A connection keeps its slot until it is closed, not until its close begins."""

    stop_counting = ConnectionManager._stop_counting
    original = ConnectionManager._on_Closed

    def closed(self: ConnectionManager, fact: ManagerClosed) -> None:
        peer = self._peers.get(fact.peer)
        if peer is not None:
            stop_counting(self, peer)  # only now
        original(self, fact)

    mp.setattr(ConnectionManager, "_stop_counting", lambda self, peer: None)
    mp.setattr(ConnectionManager, "_on_Closed", closed)


@mutant("manager", "RECO-8, RECO-3", "decision-manager.json#9")
def closed_addresses_kept_in_the_book(mp: pytest.MonkeyPatch) -> None:
    """An address whose connection closed with self_connection or requested stays in the
    book and is dialled again."""
    original = ConnectionManager._on_Closed

    def closed(self: ConnectionManager, fact: ManagerClosed) -> None:
        if fact.reason in (CloseReason.SELF_CONNECTION, CloseReason.REQUESTED):
            fact = ManagerClosed(fact.peer, CloseReason.NETWORK_ERROR)
        original(self, fact)

    mp.setattr(ConnectionManager, "_on_Closed", closed)
    mp.setattr(ConnectionManager, "_on_CloseBegan", lambda self, fact: None)


@mutant("manager", "TYPE-2", "decision-manager.json#11", "decision-manager.json#12")
def temporary_connections_kept(mp: pytest.MonkeyPatch) -> None:
    """A temporary connection is kept once its handshake completes, and past its timeout."""
    original = ConnectionManager._evict

    def evict(self: ConnectionManager, peer: Any, reason: CloseReason) -> None:
        if reason not in (CloseReason.TEMPORARY_DONE, CloseReason.TEMPORARY_TIMEOUT):
            original(self, peer, reason)

    mp.setattr(ConnectionManager, "_evict", evict)


@mutant("manager", "PRIV-10", "decision-manager.json#13")
def rotation_takes_the_wrong_peers(mp: pytest.MonkeyPatch) -> None:
    """Rotation removes the highest-scored outbound connections, not the lowest."""
    original = rotation_module.choose_rotation

    def rotation(outbound: Sequence[PeerFacts], max_outbound: int, now: float) -> list[int]:
        chosen = original(outbound, max_outbound, now)
        ranked = sorted(outbound, key=lambda p: p.peer, reverse=True)
        return [p.peer for p in ranked[: len(chosen)]]

    mp.setattr(manager_module, "choose_rotation", rotation)


@mutant("manager", "BAN-2", "session-node.json#8")
def misbehaviour_never_bans(mp: pytest.MonkeyPatch) -> None:
    """Misbehaviour points never reach a ban."""
    mp.setattr(MisbehaviourRecords, "add", lambda self, ip, requirement, wall, duration: False)


@mutant("manager", "BAN-2", "session-node.json#8")
def ban_spares_the_other_connections(mp: pytest.MonkeyPatch) -> None:
    """A ban refuses new connections from the address but keeps those already open."""
    original = ConnectionManager._on_Misbehaved
    evict = ConnectionManager._evict
    sparing = [False]

    def sparing_evict(self: ConnectionManager, peer: Any, reason: CloseReason) -> None:
        if not sparing[0]:
            evict(self, peer, reason)

    def misbehaved(self: ConnectionManager, fact: Misbehaved) -> None:
        sparing[0] = True
        try:
            original(self, fact)
        finally:
            sparing[0] = False

    mp.setattr(ConnectionManager, "_evict", sparing_evict)
    mp.setattr(ConnectionManager, "_on_Misbehaved", misbehaved)


@mutant("manager", "BAN-3", "session-node.json#8")
def banned_address_admitted(mp: pytest.MonkeyPatch) -> None:
    """A connection from a banned address is admitted like any other."""
    original = ConnectionManager._on_InboundOffered

    def offered(self: ConnectionManager, fact: InboundOffered) -> None:
        bans, self.bans = self.bans, BanList()
        try:
            original(self, fact)
        finally:
            self.bans = bans

    mp.setattr(ConnectionManager, "_on_InboundOffered", offered)


@mutant("node", "NODE-2", "session-node.json#3")
def send_queue_unbounded(mp: pytest.MonkeyPatch) -> None:
    """The send queue has no limit: a peer that never reads is never closed."""

    def queue(self: Node, peer: _Peer, data: bytes) -> None:
        if peer.sock is not None:
            queued = len(peer.send_queue)
            peer.send_queue.append(data)
            if not queued:
                self._flush(peer)

    mp.setattr(Node, "_queue", queue)


@mutant("node", "NODE-1", "session-node.json#2")
def violation_closes_every_connection(mp: pytest.MonkeyPatch) -> None:
    """One connection's violation closes every other connection too."""
    original = Node._tell

    def tell(self: Node, peer: _Peer, event: AppEvent) -> None:
        original(self, peer, event)
        if isinstance(event, Misbehaviour):
            for other in list(self._peers.values()):
                if other is not peer:
                    self._handle(other, CloseRequested(CloseReason.REQUESTED))

    mp.setattr(Node, "_tell", tell)


@mutant("manager", "RECO-4", "session-handshake.json#24")
def persistent_reconnected_at_once(mp: pytest.MonkeyPatch) -> None:
    """A lost persistent connection is opened again at once, with no backoff delay."""
    mp.setattr(manager_module, "reconnect_delay", lambda failures, interval, cap, u64: 0.0)


@mutant("node", "NODE-5", "session-node.json#5")
def shutdown_says_requested(mp: pytest.MonkeyPatch) -> None:
    """A node told to stop closes its connections with reason requested, not shutting_down."""
    original = Node._handle

    def handle(self: Node, peer: _Peer, event: Event) -> None:
        if event == CloseRequested(CloseReason.SHUTTING_DOWN):
            event = CloseRequested(CloseReason.REQUESTED)
        original(self, peer, event)

    mp.setattr(Node, "_handle", handle)


# ---- privacy: padding ------------------------------------------------------------------


@mutant("privacy", "PRIV-1", "session-keepalive.json#2")
def padding_one_byte_long(mp: pytest.MonkeyPatch) -> None:
    """Every padded frame gets one byte of padding too many (a Pong of 65 bytes, not 64)."""

    def padded(payload_length: int, rng: RandomSource) -> bytes:
        return origin_padding(payload_length, rng) + b"\0"

    mp.setattr(connection, "origin_padding", padded)


@mutant("privacy", "PRIV-2", "session-node.json#4")
def opaque_messages_padded(mp: pytest.MonkeyPatch) -> None:
    """Opaque messages are padded like the defined types."""
    original = PeerConnection._send_frame

    def send_frame(self: PeerConnection, message: Message) -> None:
        if isinstance(message, Opaque):
            extra = origin_padding(len(message.payload), self._rng)
            message = Opaque(message.message_type, message.payload + extra)
        original(self, message)

    mp.setattr(PeerConnection, "_send_frame", send_frame)


# ---- added with the vectors for earlier survivors --------------------------------------


@mutant("handshake", "HS-22", "session-handshake.json#25")
def handshake_timer_restarted_by_bytes(mp: pytest.MonkeyPatch) -> None:
    """Every byte received during the handshake restarts the handshake timer, so a peer that
    trickles its handshake is never timed out (the origin's per-read timeout, errata E-11)."""
    original = PeerConnection._decode

    def decode(self: PeerConnection) -> ConnState:
        if self.state is C.HANDSHAKING:
            self._arm(Timer.HANDSHAKE, "handshake_timeout")
        return original(self)

    mp.setattr(PeerConnection, "_decode", decode)


@mutant("connection", "KA-6", "session-keepalive.json#9")
def activity_counted_per_frame(mp: pytest.MonkeyPatch) -> None:
    """Only a complete frame counts as activity: bytes of a frame still arriving do not."""
    original = PeerConnection._decode

    def decode(self: PeerConnection) -> ConnState:
        before, emitted = self._last_received, len(self._actions)
        state = original(self)
        if self._decoder.buffered and len(self._actions) == emitted:
            self._last_received = before
        return state

    mp.setattr(PeerConnection, "_decode", decode)


@mutant("privacy", "PRIV-1", "session-node.json#7")
def handshake_padded_up_to_64(mp: pytest.MonkeyPatch) -> None:
    """A handshake gets 0 to 64 bytes of padding instead of 0 to 32."""

    def padded(payload_length: int, rng: RandomSource) -> bytes:
        if payload_length < 64:
            return origin_padding(payload_length, rng)
        return bytes(random_below(rng, 65))

    mp.setattr(connection, "origin_padding", padded)


@mutant("wire", "WIRE-44", "session-close.json#16")
def user_agent_not_utf8_accepted(mp: pytest.MonkeyPatch) -> None:
    """A user agent that is not UTF-8 is decoded with replacement characters, as the origin
    does (errata E-6), instead of being rejected."""

    def lenient(value: object = "", *how: str) -> str:
        if how:  # str(bytes, "utf-8"): the decode of the user agent
            text: str = builtins.str(value, how[0], "replace")  # type: ignore[call-overload]
            return text
        return builtins.str(value)

    mp.setattr(messages, "str", lenient, raising=False)  # found before the builtin


@mutant("privacy", "PRIV-11", "session-privacy.json#1", "session-privacy.json#30")
def encryption_never_offered(mp: pytest.MonkeyPatch) -> None:
    """The node's handshakes never set EncryptedTransport, whatever its level."""
    mp.setattr(PrivacyPolicy, "privacy_features", property(lambda self: 0))


@mutant("privacy", "PRIV-20", "session-privacy.json#1", "session-privacy.json#30")
def prologue_without_the_handshakes(mp: pytest.MonkeyPatch) -> None:
    """The Noise prologue leaves out the two handshake frames."""
    mp.setattr(connection, "noise_prologue", lambda initiator, responder: b"OBX noise v1")


@mutant("privacy", "PRIV-28", "session-privacy.json#23", "session-privacy.json#24")
def records_never_diagnosed(mp: pytest.MonkeyPatch) -> None:
    """A replayed or reordered record is reported as forged."""

    def forged(self: RecordOpener, sealed: bytes) -> RecordError:
        return RecordError(RecordErrorCode.RECORD_FORGED, "not diagnosed")

    mp.setattr(RecordOpener, "_diagnose", forged)


@mutant("privacy", "PRIV-53", "session-privacy.json#5", "session-privacy.json#12")
def encrypted_first_refused(mp: pytest.MonkeyPatch) -> None:
    """A responder takes every first bytes for a frame, so an encrypted-first start is bad
    magic."""
    real = privacy.policy_of

    def no_first(level: str) -> PrivacyPolicy:
        return dataclasses.replace(real(level), accepts_encrypted_first=False)

    mp.setattr(connection, "policy_of", no_first)


@mutant("privacy", "PRIV-63", "session-privacy.json#14", "session-privacy.json#15")
def dummy_delivered(mp: pytest.MonkeyPatch) -> None:
    """A Dummy is delivered to the application instead of discarded (as an `Inv` with its
    payload, which the profile's application echoes)."""

    def deliver(self: PeerConnection) -> ConnState:
        frame = self._pending
        assert isinstance(frame, Frame) and isinstance(frame.message, Opaque)
        self._emit(MessageReceived(Opaque(MessageType.Inv, frame.message.payload)))
        return ConnState.ESTABLISHED

    mp.setattr(PeerConnection, "_deliver_dummy", deliver, raising=False)
    _row(mp, ConnState.ESTABLISHED, Input.DUMMY_FRAME, "_deliver_dummy")


@mutant("privacy", "PRIV-36", "session-privacy.json#21", "session-privacy.json#23")
def record_errors_close_silently(mp: pytest.MonkeyPatch) -> None:
    """A broken record closes the connection without its sealed Disconnect."""

    def silent(self: PeerConnection) -> ConnState:
        error = self._pending
        assert isinstance(error, RecordError)
        return self._begin_close(CloseReason.RECORD_FORGED, str(error), notify=False, fault=None)

    mp.setattr(PeerConnection, "_broken_record", silent)


@mutant("privacy", "HS-23, PRIV-26", "session-privacy.json#10", "session-privacy.json#11")
def handshake_limit_not_in_records(mp: pytest.MonkeyPatch) -> None:
    """On a connection encrypted from the first byte, frames and records before the handshake
    completes are held to MAX_PAYLOAD and MAX_RECORD, not to the handshake's limit."""
    mp.setattr(SecureChannel, "_max_record", property(lambda self: MAX_RECORD))
    real = SecureChannel.__init__

    def init(self: SecureChannel, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        self.max_payload = MAX_PAYLOAD

    mp.setattr(SecureChannel, "__init__", init)


# ---- conformance/MUTANTS.md ------------------------------------------------------------


def render_table() -> str:
    rows = [
        "| mutant | chapter | requirements | what it breaks | caught by |",
        "|---|---|---|---|---|",
    ]
    for m in MUTANTS:
        vectors = ", ".join(f"`{v}`" for v in m.vectors)
        rows.append(
            f"| `{m.name}` | {m.chapter} | {', '.join(m.requirements)} | {m.breaks} | {vectors} |"
        )
    return "\n".join(rows)


def regenerate(text: str) -> str:
    """``text`` with the table between the markers replaced by the catalogue's."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"{MUTANTS_MD.name} lacks the markers {BEGIN} and {END}")
    return f"{head}{BEGIN}\n{render_table()}\n{END}{tail}"


def main() -> int:
    text = MUTANTS_MD.read_text(encoding="utf-8")
    MUTANTS_MD.write_text(regenerate(text), encoding="utf-8")
    print(f"wrote {len(MUTANTS)} mutants to {MUTANTS_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
