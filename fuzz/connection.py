"""Target ``connection``: the connection machine, ``PeerConnection`` (spec/connection.md), in
both directions and at every privacy level, with the handshake machine, the encrypted transport
(obscura_ref/machines/secure.py, obscura_ref/transport/) and the SOCKS5 client inside it.

The machine under test, M, is driven as a node's loop drives it: each event is one a node can
report in M's state, the time never goes back, a timer fires at its deadline when time passes.
Its peer P is another reference machine wired back to back with it, unless the input asks for
none: everything M sends reaches P at once, while what P sends waits in a queue that the input
delivers in chunks of its choosing, corrupts, or adds to. Frames the input adds are sealed with
P's keys once P has them, so the fuzzer reaches the records and the frames inside them after a
valid handshake, plaintext or Noise, without having to forge a tag.

Input: two header bytes, then ops until the input ends (``encode`` below writes them):

- byte 0: bit 0 M outbound, bits 1-2 M's privacy level, bits 3-4 P's, bit 5 M dials through a
  SOCKS5 proxy (outbound only), bit 6 with credentials, bit 7 no peer;
- byte 1: bits 0-1 the timer settings, bit 2 M and P share their nonces (a self-connection,
  HS-12), bits 3-7 the seed of M's random source;
- each op a byte, then its operands (the ``OPS`` table).

Checked after every event, for M and for P alike (``Endpoint.record``): no exception at all; no
action after ``Closed``, which comes once, with a reason, exactly when the state is ``closed``
(CONN-40, CONN-41); nothing sent after the transport close (CONN-25); ``Established`` at most
once and nothing delivered after the close began; timers armed at deadlines not in the past,
only those of the state (spec/connection.md section 4), and the same as the loop's own view of
them; the nonce released once (HS-13); every misbehaviour a misbehaviour reason; the bytes held
from the peer within the bound the limits give (HS-23, WIRE-13, PRIV-26, PRIV-55).
"""

from __future__ import annotations

import dataclasses
import random
import struct

from obscura_ref.machines.connection import (
    TIMERS_OF_STATE,
    ConnectionSettings,
    ConnState,
    Direction,
    PeerConnection,
)
from obscura_ref.machines.events import (
    AbortTransport,
    Action,
    ArmTimer,
    BytesReceived,
    CancelTimer,
    Closed,
    CloseRequested,
    CloseTransport,
    EndOfStream,
    Established,
    Event,
    MessageReceived,
    Misbehaviour,
    NodeLimit,
    ReleaseNonce,
    RttMeasured,
    SendBytes,
    SendMessage,
    TcpConnected,
    Timer,
    TimerExpired,
    TransportClosed,
    TransportFailed,
)
from obscura_ref.machines.handshake import LocalHandshake
from obscura_ref.machines.nonces import OwnNonces
from obscura_ref.machines.privacy import GENERIC_USER_AGENT, PrivacyLevel
from obscura_ref.machines.reasons import LOCAL_REASONS, NODE_LIMIT_REASONS, CloseReason
from obscura_ref.transport.garbage import MAX_GARBAGE, TERMINATOR_SIZE
from obscura_ref.transport.noise import MESSAGE2_SIZE, TAG_SIZE
from obscura_ref.transport.records import MAX_RECORD, SEALED_LENGTH_SIZE, bucket_size
from obscura_ref.transport.socks5 import Socks5Client
from obscura_ref.wire import (
    DEFINED_TYPES,
    HEADER_SIZE,
    MAGIC,
    MAX_HANDSHAKE_PAYLOAD,
    MAX_PAYLOAD,
    MessageType,
    Opaque,
    checksum,
)

from .common import Reader, Writer, check

LEVELS = tuple(PrivacyLevel)
OUTBOUND, PROXY, CREDENTIALS, SOLO = 0x01, 0x20, 0x40, 0x80
SHARED_NONCES = 0x04
# The harness's settings of tests/machine_harness.py; durations near the clock's resolution;
# a handshake timeout above the inactivity timeout; the defaults.
SETTINGS = (
    ConnectionSettings(5, 3, 10, 4, 25, 2),
    ConnectionSettings(0.05, 0.02, 0.03, 0.01, 0.025, 0.005),
    ConnectionSettings(10, 30, 2, 1, 1.5, 1),
    ConnectionSettings(),
)
# Seconds a TIME op lets pass: around each default and harness duration, and around the delays
# of traffic shaping (spec/privacy.md section 5).
DELAYS = (0, 0.0005, 0.001, 0.005, 0.01, 0.049, 0.05, 0.1, 0.5, 1, 1.5, 2, 3, 4, 5, 10, 25, 60)
TYPES = tuple(MessageType)
OPAQUE = tuple(t for t in MessageType if t not in DEFINED_TYPES and t is not MessageType.Dummy)
LOCAL = tuple(sorted(LOCAL_REASONS, key=lambda r: r.code))
NODE_LIMITS = tuple(sorted(NODE_LIMIT_REASONS, key=lambda r: r.code))
TIMERS = tuple(Timer)
PROXIED_PEER = ("192.0.2.1", 8333)  # a documentation address (RFC 5737): never dialled
PROXY_CREDENTIALS = ("fuzz", "secret")
MAX_TIMER_FIRINGS = 10_000  # in one TIME op: more is a machine that re-arms without end

# The ops, by their byte modulo their count; operands in brackets.
(
    DELIVER,  # [n: byte] deliver n bytes of the queue to M (0: all of it)
    RAW,  # [blob] these bytes to M now, around the queue
    FRAME,  # [type: byte, payload: blob] a frame with its checksum, sealed if P can, queued
    RECORD,  # [blob] these bytes sealed as one record if P can (as they are if not), queued
    MUTATE,  # [at: u16, xor: byte] flip bits of one queued byte
    TIME,  # [delay: byte] let DELAYS[delay] pass, firing every timer due, M's and P's
    TIMER,  # [timer: byte] that timer of M fires now, armed or not, due or early (KA-8)
    EOS,  # M's peer ends its stream
    FAIL,  # M's transport fails
    CLOSE,  # [reason: byte] M's node closes it
    SEND,  # [type: byte, payload: blob] M's application sends an opaque message
    LIMIT,  # [reason: byte] M's node closes it for a limit of its own
    TRANSPORT_CLOSED,  # M's transport finished closing
    CONNECT,  # M's TCP connection opened
    PEER_CLOSE,  # [reason: byte] P's node closes P
    PEER_SEND,  # [type: byte, payload: blob] P's application sends an opaque message
) = range(16)
OP_COUNT = 16

# Bytes of the peer's a machine may hold between events, before and after its handshake: one
# frame within the limit (HS-23, WIRE-13), one sealed record within its bucket (PRIV-26), the
# garbage and terminator of an encrypted-first peer (PRIV-55), a Noise message.
HELD_BEFORE = max(
    HEADER_SIZE + MAX_HANDSHAKE_PAYLOAD,
    SEALED_LENGTH_SIZE + bucket_size(HEADER_SIZE + MAX_HANDSHAKE_PAYLOAD) + TAG_SIZE,
    MAX_GARBAGE + TERMINATOR_SIZE,
    MESSAGE2_SIZE,
)
HELD_AFTER = max(HEADER_SIZE + MAX_PAYLOAD, SEALED_LENGTH_SIZE + MAX_RECORD + TAG_SIZE)


def frame_of(message_type: int, payload: bytes) -> bytes:
    """A frame with a right checksum and any payload, limits broken included."""
    header = struct.pack("<4sII4s", MAGIC, message_type, len(payload), checksum(payload))
    return header + payload


def proxy_replies(credentials: bool) -> tuple[bytes, ...]:
    """A proxy's answers that let the connection through (RFC 1928, RFC 1929), one per turn."""
    reply = bytes([5, 0, 0, 1, 192, 0, 2, 2]) + (1080).to_bytes(2, "big")
    if credentials:
        return bytes([5, 2]), bytes([1, 0]), reply
    return bytes([5, 0]), reply


def local_handshake(level: PrivacyLevel) -> LocalHandshake:
    """What a node at ``level`` says of itself (obscura_ref/node.py)."""
    policy = level.policy
    return LocalHandshake(
        privacy_features=policy.privacy_features,  # spec: PRIV-11
        user_agent=GENERIC_USER_AGENT if policy.generic_user_agent else "obscura-fuzz/1",
        requires_encryption=policy.require_encryption,  # spec: PRIV-12
    )


class Endpoint:
    """One machine as a node's loop sees it: the timers it armed, the bytes it sent and not yet
    carried, what its transport did; and the invariants of its actions."""

    def __init__(self, name: str, machine: PeerConnection, nonces: OwnNonces) -> None:
        self.name = name
        self.machine = machine
        self.nonces = nonces
        self.timers: dict[Timer, float] = {}
        self.now = machine.opened_at
        self.outbox: list[bytes] = []
        self.closed = False
        self.ended = False  # CloseTransport or AbortTransport: its peer sees the end
        self.aborted = False
        self.eof = False  # it was told EndOfStream or its transport failed: no more bytes
        self.established = False
        self.released = False
        self.largest_read = 0

    @property
    def state(self) -> ConnState:
        return self.machine.state

    def readable(self) -> bool:
        return self.machine.reads and not self.eof

    def start(self) -> None:
        self.record(self.machine.start())

    def feed(self, event: Event, now: float) -> None:
        check(now >= self.now, f"the harness turned {self.name}'s clock back")
        self.now = now
        if isinstance(event, BytesReceived):
            self.largest_read = max(self.largest_read, len(event.data))
        elif isinstance(event, EndOfStream | TransportFailed):
            self.eof = True
        self.record(self.machine.handle(event, now))

    def record(self, actions: list[Action]) -> None:
        machine, who = self.machine, self.name
        for action in actions:
            # spec: CONN-40, CONN-41 (closed is final: nothing after it)
            check(not self.closed, f"{who}: {action} after Closed")
            if isinstance(action, SendBytes):
                # spec: CONN-25 (nothing after the transport close)
                check(not self.ended, f"{who}: bytes sent after its transport close")
                self.outbox.append(action.data)
            elif isinstance(action, CloseTransport):
                check(not self.ended, f"{who}: transport closed twice")
                self.ended = True
            elif isinstance(action, AbortTransport):
                self.ended = self.aborted = True
            elif isinstance(action, ArmTimer):
                check(action.deadline >= self.now, f"{who}: {action} in the past ({self.now})")
                self.timers[action.timer] = action.deadline
            elif isinstance(action, CancelTimer):
                self.timers.pop(action.timer, None)
            elif isinstance(action, ReleaseNonce):
                # spec: HS-13 (its own nonce, once)
                check(not self.released, f"{who}: nonce released twice")
                check(action.nonce == machine.handshake.nonce, f"{who}: released another nonce")
                self.released = True
                self.nonces.release(action.nonce)
            elif isinstance(action, Established):
                check(not self.established, f"{who}: established twice")
                check(not self.ended, f"{who}: established after its close began")
                self.established = True
            elif isinstance(action, MessageReceived | RttMeasured):
                check(not self.ended, f"{who}: {action} after its close began")
            elif isinstance(action, Misbehaviour):
                check(action.reason.value.misbehaviour, f"{who}: {action.reason} is no fault")
            elif isinstance(action, Closed):
                check(isinstance(action.reason, CloseReason), f"{who}: Closed without a reason")
                check(action.reason is machine.close_reason, f"{who}: Closed with another reason")
                check(
                    action.peer_reason is None or 0 <= action.peer_reason <= 0xFFFF,
                    f"{who}: peer_reason {action.peer_reason}",
                )
                self.closed = True
        state = machine.state
        check(
            self.closed == (state is ConnState.CLOSED), f"{who}: {state} but closed {self.closed}"
        )
        armed = machine.armed_timers
        check(set(armed) <= TIMERS_OF_STATE[state], f"{who}: timers {armed} in state {state}")
        check(armed == self.timers, f"{who}: armed {armed}, the loop holds {self.timers}")
        limit = HELD_BEFORE if machine.established_at is None else HELD_AFTER
        shaper = machine._shaper  # what it holds is its own bytes, not the peer's
        own = 0 if shaper is None else shaper.held_bytes
        held = machine.held_bytes - own
        check(held <= limit + self.largest_read, f"{who}: holds {held} bytes of the peer's")


class Run:
    """One input's connection: M, maybe P, the queue from P to M, and the clock."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        flags, variant = reader.byte(), reader.byte()
        outbound = bool(flags & OUTBOUND)
        m_level, p_level = LEVELS[(flags >> 1) & 3], LEVELS[(flags >> 3) & 3]
        settings = SETTINGS[variant & 3]
        self.now = 0.0
        self.queue = bytearray()  # what P sent, and what the input added, on its way to M
        proxy = None
        self.proxy_replies: list[bytes] = []
        if outbound and flags & PROXY:
            credentials = PROXY_CREDENTIALS if flags & CREDENTIALS else (None, None)
            proxy = Socks5Client(*PROXIED_PEER, *credentials)
            self.proxy_replies += proxy_replies(bool(flags & CREDENTIALS))
        nonces = OwnNonces()
        self.m = self._endpoint(
            "M", Direction.OUTBOUND if outbound else Direction.INBOUND, m_level,
            settings, nonces, random.Random(variant >> 3), proxy,
        )  # fmt: skip
        self.p: Endpoint | None = None
        if not flags & SOLO:
            self.p = self._endpoint(
                "P", Direction.INBOUND if outbound else Direction.OUTBOUND, p_level,
                settings, nonces if variant & SHARED_NONCES else OwnNonces(),
                random.Random(7), None,
            )  # fmt: skip
        self.m.start()
        if self.p is not None:
            self.p.start()
            if not outbound:
                self._feed_p(TcpConnected())  # P dialled M: M is the inbound side already

    def _endpoint(
        self,
        name: str,
        direction: Direction,
        level: PrivacyLevel,
        settings: ConnectionSettings,
        nonces: OwnNonces,
        rng: random.Random,
        proxy: Socks5Client | None,
    ) -> Endpoint:
        settings = dataclasses.replace(settings, privacy_level=level.value)
        machine = PeerConnection(
            direction,
            self.now,
            settings,
            local_handshake(level),
            nonces.issue(rng),
            1_700_000_000,
            nonces,
            rng,
            proxy=proxy,
        )
        return Endpoint(name, machine, nonces)

    # ---- carrying events and bytes, as a node does ---------------------------------------

    def _feed_m(self, event: Event) -> None:
        self.m.feed(event, self.now)
        data = b"".join(self.m.outbox)
        self.m.outbox.clear()
        if self.m.state is ConnState.PROXYING:
            # Bytes for the proxy; it answers each of them with its next reply, queued.
            if data and self.proxy_replies:
                self.queue += self.proxy_replies.pop(0)
        elif self.p is not None and data and self.p.readable():
            self._feed_p(BytesReceived(data))
        if self.m.ended and self.p is not None and self.p.readable():
            self._feed_p(EndOfStream())

    def _feed_p(self, event: Event) -> None:
        p = self.p
        assert p is not None
        p.feed(event, self.now)
        self.queue += b"".join(p.outbox)
        p.outbox.clear()
        if p.ended and not p.aborted and p.state is ConnState.CLOSING:
            self._feed_p(TransportClosed())  # P's node closes at once (tests' Pair does too)

    def _seal(self, plaintext: bytes) -> bytes:
        """``plaintext`` as P would send it: sealed once P holds its keys (PRIV-24)."""
        secure = None if self.p is None else self.p.machine._secure
        if secure is not None and secure.can_seal and len(plaintext) <= MAX_RECORD:
            return secure.seal(plaintext)
        return plaintext

    def _time(self, delay: float) -> None:
        """Let ``delay`` pass: every timer due fires at its deadline, earliest first."""
        until = self.now + delay
        for _ in range(MAX_TIMER_FIRINGS):
            due = [
                (deadline, index, timer)
                for index, side in enumerate((self.m, self.p))
                if side is not None
                for timer, deadline in side.timers.items()
                if deadline <= until
            ]
            if not due:
                self.now = until
                return
            deadline, index, timer = min(due, key=lambda item: (item[0], item[1]))
            self.now = max(self.now, deadline)
            side = self.m if index == 0 else self.p
            assert side is not None
            del side.timers[timer]  # a timer that fires is no longer armed, for the loop too
            (self._feed_m if index == 0 else self._feed_p)(TimerExpired(timer))
        check(False, f"more than {MAX_TIMER_FIRINGS} timers fire within {delay} s")

    # ---- the ops -----------------------------------------------------------------------

    def step(self) -> None:
        reader, m, p = self.reader, self.m, self.p
        op = reader.byte() % OP_COUNT
        if op == DELIVER:
            count = reader.byte() or len(self.queue)
            if self.queue and m.readable():
                data = bytes(self.queue[:count])
                del self.queue[:count]
                self._feed_m(BytesReceived(data))
        elif op == RAW:
            data = reader.blob()
            if m.readable():
                self._feed_m(BytesReceived(data))
        elif op in (FRAME, RECORD):
            kind = reader.pick(TYPES) if op == FRAME else None
            data = reader.blob()
            self.queue += self._seal(data if kind is None else frame_of(kind, data))
        elif op == MUTATE:
            at, xor = reader.uint(2), reader.byte() or 1
            if self.queue:
                self.queue[at % len(self.queue)] ^= xor
        elif op == TIME:
            self._time(reader.pick(DELAYS))
        elif op == TIMER:
            timer = reader.pick(TIMERS)
            if m.timers.get(timer, float("inf")) <= self.now:
                del m.timers[timer]
            self._feed_m(TimerExpired(timer))
        elif op == EOS:
            if m.readable():
                self._feed_m(EndOfStream())
        elif op == FAIL:
            self._feed_m(TransportFailed("connection reset"))
        elif op == CLOSE:
            self._feed_m(CloseRequested(reader.pick(LOCAL)))
        elif op == SEND:
            kind, payload = reader.pick(OPAQUE), reader.blob()
            if m.machine.accepts_app_messages:  # spec: CONN-11
                self._feed_m(SendMessage(Opaque(kind, payload)))
        elif op == LIMIT:
            reason = reader.pick(NODE_LIMITS)
            if m.state is not ConnState.CONNECTING:  # no buffer, no budget before the socket
                self._feed_m(NodeLimit(reason))
        elif op == TRANSPORT_CLOSED:
            if m.ended and not m.aborted and m.state is ConnState.CLOSING:
                self._feed_m(TransportClosed())
        elif op == CONNECT:
            if m.state is ConnState.CONNECTING:
                self._feed_m(TcpConnected())
        elif op == PEER_CLOSE:
            reason = reader.pick(LOCAL)
            if p is not None:
                self._feed_p(CloseRequested(reason))
        elif op == PEER_SEND:
            kind, payload = reader.pick(OPAQUE), reader.blob()
            if p is not None and p.machine.accepts_app_messages:
                self._feed_p(SendMessage(Opaque(kind, payload)))


def run(data: bytes) -> None:
    connection = Run(Reader(data))
    while not connection.reader.done:
        connection.step()


class Ops:
    """Writes an input op by op (the seed builder's side of ``Run.step``)."""

    def __init__(
        self,
        outbound: bool,
        level: PrivacyLevel,
        peer_level: PrivacyLevel | None,
        *,
        settings: int = 0,
        proxy: bool = False,
        credentials: bool = False,
        shared_nonces: bool = False,
        seed: int = 1,
    ) -> None:
        flags = (OUTBOUND if outbound else 0) | LEVELS.index(level) << 1
        flags |= (LEVELS.index(peer_level) << 3) if peer_level is not None else SOLO
        flags |= (PROXY if proxy else 0) | (CREDENTIALS if credentials else 0)
        variant = settings | (SHARED_NONCES if shared_nonces else 0) | (seed & 31) << 3
        self.writer = Writer().byte(flags).byte(variant)

    def op(self, code: int, *operands: int) -> Ops:
        self.writer.byte(code)
        for operand in operands:
            self.writer.byte(operand)
        return self

    def blob_op(self, code: int, data: bytes, kind: int | None = None) -> Ops:
        self.writer.byte(code)
        if kind is not None:
            self.writer.byte(kind)
        self.writer.blob(data)
        return self

    def frame(self, message_type: MessageType, payload: bytes) -> Ops:
        return self.blob_op(FRAME, payload, TYPES.index(message_type))

    def time(self, seconds: float) -> Ops:
        """The longest delay of DELAYS within ``seconds``."""
        index = max(i for i, delay in enumerate(DELAYS) if delay <= max(seconds, 0))
        return self.op(TIME, index)

    def bytes(self) -> bytes:
        return self.writer.bytes()
