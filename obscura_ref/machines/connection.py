"""The connection machine, ``PeerConnection`` (spec/connection.md).

One machine per TCP connection, from ``connecting`` (outbound) or ``handshaking`` (inbound)
through ``established`` to ``closing`` and ``closed``. ``handle`` takes an event and the current
monotonic time and returns the actions to carry out, in order. The rules are the table
``CONNECTION_TRANSITIONS``; the code below only looks a pair up and runs the named handler.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from enum import Enum

from ..transport import socks5
from ..transport.garbage import GarbageError
from ..transport.noise import MESSAGE1_SIZE as NOISE_MESSAGE1_SIZE
from ..transport.records import RecordError
from ..wire import (
    MAGIC,
    MAX_HANDSHAKE_PAYLOAD,
    MAX_PAYLOAD,
    DecodeError,
    Disconnect,
    Frame,
    FrameDecoder,
    Handshake,
    Message,
    MessageType,
    Opaque,
    Ping,
    Pong,
    encode_frame,
    frame_bytes,
)
from ..wire.registry import PrivacyFeature
from .events import (
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
    LocalProtocolError,
    MessageReceived,
    Misbehaviour,
    Negotiated,
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
    UnsolicitedPong,
)
from .handshake import Accepted, HandshakeProtocol, LocalHandshake, Role
from .padding import RandomSource, origin_padding
from .privacy import policy_of
from .reasons import LOCAL_REASONS, NODE_LIMIT_REASONS, CloseReason
from .secure import (
    NeedMore,
    NoiseFailed,
    RejectedInPlaintext,
    SecureChannel,
    noise_prologue,
    record_reason,
)
from .shaping import Shaper, dummy_payload, next_dummy_after
from .table import Rule

# The shortest duration a configuration may give (spec: CFG-5): a duration below a clock's
# resolution would arm a timer at the very instant it is armed from, which then fires forever.
MIN_DURATION = 0.001


def check_durations(settings: object, names: tuple[str, ...]) -> None:
    """ValueError naming the first of ``names`` that is not a number of seconds of at least
    MIN_DURATION: settings built without a configuration are refused as it would refuse them."""
    for name in names:
        value = getattr(settings, name)
        number = not isinstance(value, bool) and isinstance(value, int | float)
        if not number or not value >= MIN_DURATION:  # spec: CFG-5
            raise ValueError(
                f"{name} must be a number of seconds of at least {MIN_DURATION:g}, got {value!r}"
            )


@dataclass(frozen=True)
class ConnectionSettings:
    """Per-connection settings: the timers of spec/connection.md section 4, in seconds, and
    the padding of spec/privacy.md."""

    connection_timeout: float = 60.0
    handshake_timeout: float = 30.0
    ping_interval: float = 60.0
    ping_timeout: float = 30.0
    inactivity_timeout: float = 300.0
    close_timeout: float = 5.0
    privacy_level: str = "standard"

    def __post_init__(self) -> None:
        policy_of(self.privacy_level)  # a ValueError naming the levels
        check_durations(
            self,
            (
                "connection_timeout",
                "handshake_timeout",
                "ping_interval",
                "ping_timeout",
                "inactivity_timeout",
                "close_timeout",
            ),
        )
        if not self.ping_timeout < self.ping_interval:  # spec: KA-7
            raise ValueError(
                f"ping_timeout ({self.ping_timeout}) must be below ping_interval "
                f"({self.ping_interval}), so that at most one ping is outstanding"
            )


class Direction(Enum):
    __hash__ = object.__hash__  # as ConnState's: identity, without a call into Python

    OUTBOUND = "outbound"
    INBOUND = "inbound"


class ConnState(Enum):
    # Members are compared by identity, so the identity hash serves, without the call into
    # Python that Enum's own hash makes: the table is looked up by (state, input) per frame.
    __hash__ = object.__hash__

    CONNECTING = "connecting"
    PROXYING = "proxying"
    HANDSHAKING = "handshaking"
    SECURING = "securing"
    ESTABLISHED = "established"
    CLOSING = "closing"
    CLOSED = "closed"


# spec/connection.md section 2 is generated from this table.
STATE_MEANINGS: dict[ConnState, str] = {
    ConnState.CONNECTING: "outbound only: the TCP connection is being opened",
    ConnState.PROXYING: "outbound through a proxy: the TCP connection to the proxy is open; "
    "the SOCKS5 client negotiates the connection to the peer (spec/privacy.md section 4)",
    ConnState.HANDSHAKING: "the TCP connection exists; the handshake is under way",
    ConnState.SECURING: "both handshakes offered encryption; the Noise handshake is under way "
    "(spec/privacy.md section 3.4)",
    ConnState.ESTABLISHED: "the handshake is complete; messages flow",
    ConnState.CLOSING: "a close is decided; queued bytes are being written",
    ConnState.CLOSED: "nothing more happens",
}


class Input(Enum):
    """The input alphabet of the table: events, and the frames decoded from received bytes."""

    # Members are compared by identity, so the identity hash serves, without the call into
    # Python that Enum's own hash makes: the table is looked up by (state, input) per frame.
    __hash__ = object.__hash__

    TCP_CONNECTED = "tcp_connected"
    BYTES_RECEIVED = "bytes_received"
    HANDSHAKE_FRAME = "handshake_frame"
    PING_FRAME = "ping_frame"
    PONG_FRAME = "pong_frame"
    DISCONNECT_FRAME = "disconnect_frame"
    OTHER_FRAME = "other_frame"
    DUMMY_FRAME = "dummy_frame"
    INVALID_FRAME = "invalid_frame"
    BROKEN_RECORD = "broken_record"
    END_OF_STREAM = "end_of_stream"
    TRANSPORT_FAILED = "transport_failed"
    TRANSPORT_CLOSED = "transport_closed"
    NODE_LIMIT = "node_limit"
    CONNECT_TIMER = "connect_timer"
    HANDSHAKE_TIMER = "handshake_timer"
    PING_TIMER = "ping_timer"
    PONG_TIMER = "pong_timer"
    INACTIVITY_TIMER = "inactivity_timer"
    CLOSE_TIMER = "close_timer"
    SHAPE_TIMER = "shape_timer"
    DUMMY_TIMER = "dummy_timer"
    SEND = "send"
    CLOSE = "close"


# The timers each state may have armed (spec/connection.md section 4).
TIMERS_OF_STATE: dict[ConnState, frozenset[Timer]] = {
    ConnState.CONNECTING: frozenset({Timer.CONNECT}),
    ConnState.PROXYING: frozenset({Timer.CONNECT}),  # spec: CONN-2 (until the proxy's success)
    ConnState.HANDSHAKING: frozenset({Timer.HANDSHAKE}),
    ConnState.SECURING: frozenset({Timer.HANDSHAKE}),  # spec: PRIV-32
    # SHAPE and DUMMY on a shaped encrypted connection only (spec/privacy.md section 5).
    ConnState.ESTABLISHED: frozenset(
        {Timer.PING, Timer.PONG, Timer.INACTIVITY, Timer.SHAPE, Timer.DUMMY}
    ),
    ConnState.CLOSING: frozenset({Timer.CLOSE}),
    ConnState.CLOSED: frozenset(),
}

_TIMER_INPUT = {
    Timer.CONNECT: Input.CONNECT_TIMER,
    Timer.HANDSHAKE: Input.HANDSHAKE_TIMER,
    Timer.PING: Input.PING_TIMER,
    Timer.PONG: Input.PONG_TIMER,
    Timer.INACTIVITY: Input.INACTIVITY_TIMER,
    Timer.CLOSE: Input.CLOSE_TIMER,
    Timer.SHAPE: Input.SHAPE_TIMER,
    Timer.DUMMY: Input.DUMMY_TIMER,
}

C = ConnState
_CLOSE_TARGETS = (C.CLOSING,)


def _rule(handler: str, targets: tuple[ConnState, ...], reqs: str, summary: str) -> Rule[C]:
    return Rule(handler, targets, tuple(reqs.split(", ")), summary)


_HANDSHAKING_OR_ESTABLISHED = {
    Input.DISCONNECT_FRAME: _rule(
        "_peer_disconnected", _CLOSE_TARGETS, "CONN-22", "close without reply; report its reason"
    ),
    Input.INVALID_FRAME: _rule(
        "_invalid_frame", _CLOSE_TARGETS, "CONN-30", "close `invalid_message`; misbehaviour"
    ),
    Input.END_OF_STREAM: _rule(
        "_end_of_stream", _CLOSE_TARGETS, "CONN-33", "close `peer_closed` (or `invalid_message`)"
    ),
    Input.TRANSPORT_FAILED: _rule(
        "_transport_failed", (C.CLOSED,), "CONN-34", "closed `network_error`"
    ),
    Input.CLOSE: _rule("_close_locally", _CLOSE_TARGETS, "CONN-20", "send Disconnect; close"),
    Input.NODE_LIMIT: _rule(
        "_node_limit", (C.CLOSED,), "NODE-2, NODE-11, NODE-14", "abort; closed with its reason"
    ),
    # Records exist in handshaking too, on a connection encrypted from its first byte.
    Input.BROKEN_RECORD: _rule(
        "_broken_record",
        _CLOSE_TARGETS,
        "PRIV-26, PRIV-27, PRIV-28, PRIV-30, PRIV-36, PRIV-55",
        "close with the record error's reason (sealed Disconnect)",
    ),
}

CONNECTION_TRANSITIONS: dict[tuple[ConnState, Input], Rule[ConnState]] = {
    (C.CONNECTING, Input.TCP_CONNECTED): _rule(
        "_connected",
        (C.HANDSHAKING, C.PROXYING, C.SECURING),
        "CONN-3, HS-1, HS-21, PRIV-40, PRIV-50",
        "arm handshake timer; send handshake (through a proxy: send its greeting; proxying; "
        "encrypted-first: send Noise message 1 and garbage; securing)",
    ),
    (C.CONNECTING, Input.CONNECT_TIMER): _rule(
        "_connect_timed_out", (C.CLOSED,), "CONN-2", "abort; closed `connect_timeout`"
    ),
    (C.CONNECTING, Input.TRANSPORT_FAILED): _rule(
        "_transport_failed", (C.CLOSED,), "CONN-34", "closed `network_error`"
    ),
    (C.CONNECTING, Input.CLOSE): _rule(
        "_close_before_connected", (C.CLOSED,), "CONN-21", "abort; closed with the given reason"
    ),
    (C.PROXYING, Input.BYTES_RECEIVED): _rule(
        "_proxy_bytes",
        (C.PROXYING, C.HANDSHAKING, C.SECURING, C.ESTABLISHED, C.CLOSING, C.CLOSED),
        "PRIV-40, PRIV-41, PRIV-42, CONN-3",
        "SOCKS5 client: send its bytes; on success as `tcp_connected`, the bytes after the "
        "proxy's reply decoded as the peer's; on failure abort, closed with its reason",
    ),
    (C.PROXYING, Input.END_OF_STREAM): _rule(
        "_proxy_closed", (C.CLOSED,), "PRIV-42", "abort; closed `proxy_closed`"
    ),
    (C.PROXYING, Input.CONNECT_TIMER): _rule(
        "_connect_timed_out", (C.CLOSED,), "CONN-2", "abort; closed `connect_timeout`"
    ),
    (C.PROXYING, Input.TRANSPORT_FAILED): _rule(
        "_transport_failed", (C.CLOSED,), "CONN-34", "closed `network_error`"
    ),
    (C.PROXYING, Input.CLOSE): _rule(
        "_close_before_connected", (C.CLOSED,), "CONN-21", "abort; closed with the given reason"
    ),
    (C.PROXYING, Input.NODE_LIMIT): _rule(
        "_node_limit", (C.CLOSED,), "NODE-2, NODE-11, NODE-14", "abort; closed with its reason"
    ),
    **{(C.HANDSHAKING, input_): rule for input_, rule in _HANDSHAKING_OR_ESTABLISHED.items()},
    (C.HANDSHAKING, Input.BYTES_RECEIVED): _rule(
        "_decode",
        (C.HANDSHAKING, C.SECURING, C.ESTABLISHED, C.CLOSING),
        "CONN-30, PRIV-53",
        "decode frames in order (inbound, first bytes not the magic: encrypted-first; securing)",
    ),
    (C.HANDSHAKING, Input.HANDSHAKE_FRAME): _rule(
        "_peer_handshake",
        (C.ESTABLISHED, C.SECURING, C.CLOSING),
        "HS-14, HS-13, PRIV-11",
        "handshake machine accepts (established, or securing when both offer encryption) "
        "or rejects (close with its reason)",
    ),
    **{
        (C.HANDSHAKING, input_): _rule(
            "_unexpected", _CLOSE_TARGETS, "HS-20", "close `unexpected_message`; misbehaviour"
        )
        for input_ in (Input.PING_FRAME, Input.PONG_FRAME, Input.OTHER_FRAME, Input.DUMMY_FRAME)
    },
    (C.HANDSHAKING, Input.HANDSHAKE_TIMER): _rule(
        "_handshake_timed_out", _CLOSE_TARGETS, "HS-22", "close `handshake_timeout`"
    ),
    (C.SECURING, Input.BYTES_RECEIVED): _rule(
        "_noise_bytes",
        (C.SECURING, C.HANDSHAKING, C.ESTABLISHED, C.CLOSING),
        "PRIV-20, PRIV-21, PRIV-22, PRIV-23",
        "Noise handshake: reply, then established; or close `noise_failed`/`noise_out_of_place`",
    ),
    (C.SECURING, Input.END_OF_STREAM): _rule(
        "_end_of_stream", _CLOSE_TARGETS, "CONN-33", "close `peer_closed`"
    ),
    (C.SECURING, Input.TRANSPORT_FAILED): _rule(
        "_transport_failed", (C.CLOSED,), "CONN-34", "closed `network_error`"
    ),
    (C.SECURING, Input.CLOSE): _rule(
        "_close_locally", _CLOSE_TARGETS, "CONN-20, PRIV-34", "sealed Disconnect if a key; close"
    ),
    (C.SECURING, Input.HANDSHAKE_TIMER): _rule(
        "_handshake_timed_out", _CLOSE_TARGETS, "PRIV-32", "close `handshake_timeout`"
    ),
    (C.SECURING, Input.NODE_LIMIT): _rule(
        "_node_limit", (C.CLOSED,), "NODE-2, NODE-11, NODE-14", "abort; closed with its reason"
    ),
    **{(C.ESTABLISHED, input_): rule for input_, rule in _HANDSHAKING_OR_ESTABLISHED.items()},
    (C.ESTABLISHED, Input.DUMMY_FRAME): _rule(
        "_discard_dummy", (C.ESTABLISHED,), "PRIV-63", "discard; never delivered"
    ),
    (C.ESTABLISHED, Input.SHAPE_TIMER): _rule(
        "_release_shaped", (C.ESTABLISHED,), "PRIV-60", "send what is due; re-arm for the next"
    ),
    (C.ESTABLISHED, Input.DUMMY_TIMER): _rule(
        "_send_dummy", (C.ESTABLISHED,), "PRIV-61", "send a dummy; re-arm at a random interval"
    ),
    (C.ESTABLISHED, Input.BYTES_RECEIVED): _rule(
        "_decode", (C.ESTABLISHED, C.CLOSING), "CONN-30", "decode frames in order"
    ),
    (C.ESTABLISHED, Input.HANDSHAKE_FRAME): _rule(
        "_unexpected", _CLOSE_TARGETS, "HS-20", "close `unexpected_message`; misbehaviour"
    ),
    (C.ESTABLISHED, Input.PING_FRAME): _rule(
        "_answer_ping", (C.ESTABLISHED,), "KA-2", "send a pong with the same nonce"
    ),
    (C.ESTABLISHED, Input.PONG_FRAME): _rule(
        "_pong", (C.ESTABLISHED,), "KA-4, KA-5", "match the outstanding ping; report the RTT"
    ),
    (C.ESTABLISHED, Input.OTHER_FRAME): _rule(
        "_deliver", (C.ESTABLISHED,), "CONN-10", "deliver to the application"
    ),
    (C.ESTABLISHED, Input.PING_TIMER): _rule(
        "_send_ping",
        (C.ESTABLISHED,),
        "KA-1, KA-9",
        "unless a ping is outstanding, send one with a fresh nonce; arm pong timer",
    ),
    (C.ESTABLISHED, Input.PONG_TIMER): _rule(
        "_ping_timed_out",
        (C.ESTABLISHED, C.CLOSING),
        "KA-3",
        "close `ping_timeout` if nothing arrived for `ping_timeout`; else re-arm",
    ),
    (C.ESTABLISHED, Input.INACTIVITY_TIMER): _rule(
        "_check_inactivity",
        (C.ESTABLISHED, C.CLOSING),
        "KA-6",
        "close `inactivity_timeout` if nothing arrived since; else re-arm",
    ),
    (C.ESTABLISHED, Input.SEND): _rule(
        "_send_local", (C.ESTABLISHED,), "CONN-11", "send the application's frame"
    ),
    (C.CLOSING, Input.BYTES_RECEIVED): _rule(
        "_discard", (C.CLOSING,), "CONN-24", "discard, undecoded"
    ),
    (C.CLOSING, Input.END_OF_STREAM): _rule(
        "_ignore", (C.CLOSING,), "CONN-24", "nothing: the close is under way"
    ),
    (C.CLOSING, Input.CLOSE): _rule(
        "_ignore", (C.CLOSING,), "CONN-26", "nothing: the first reason stands"
    ),
    (C.CLOSING, Input.TRANSPORT_CLOSED): _rule(
        "_finish_close", (C.CLOSED,), "CONN-23", "closed with the reason of the close"
    ),
    (C.CLOSING, Input.TRANSPORT_FAILED): _rule(
        "_finish_close", (C.CLOSED,), "CONN-23", "closed with the reason of the close"
    ),
    (C.CLOSING, Input.CLOSE_TIMER): _rule(
        "_abort_close", (C.CLOSED,), "CONN-23", "abort what is unsent; closed"
    ),
    (C.CLOSING, Input.NODE_LIMIT): _rule(
        "_abort_close",
        (C.CLOSED,),
        "NODE-14",
        "abort what is unsent; closed with the close's reason",
    ),
    **{
        (C.CLOSED, input_): _rule("_ignore", (C.CLOSED,), "CONN-41", "nothing")
        for input_ in (
            Input.TCP_CONNECTED,
            Input.BYTES_RECEIVED,
            Input.END_OF_STREAM,
            Input.TRANSPORT_FAILED,
            Input.TRANSPORT_CLOSED,
            Input.NODE_LIMIT,
            Input.CLOSE,
        )
    },
}

_EVENT_INPUT: dict[type, Input] = {
    TcpConnected: Input.TCP_CONNECTED,
    BytesReceived: Input.BYTES_RECEIVED,
    EndOfStream: Input.END_OF_STREAM,
    TransportFailed: Input.TRANSPORT_FAILED,
    TransportClosed: Input.TRANSPORT_CLOSED,
    NodeLimit: Input.NODE_LIMIT,
    SendMessage: Input.SEND,
    CloseRequested: Input.CLOSE,
}
_FRAME_INPUT: dict[type, Input] = {
    Handshake: Input.HANDSHAKE_FRAME,
    Ping: Input.PING_FRAME,
    Pong: Input.PONG_FRAME,
    Disconnect: Input.DISCONNECT_FRAME,
    Opaque: Input.OTHER_FRAME,
}


@dataclass(frozen=True, slots=True)
class RuleApplied:
    """For an observer (a narrated demo, debug logs): the rule of the table about to decide,
    in the state it was found for, and what it is about: an event, a decoded frame, or an
    error. Inner steps (the frames of one read) are reported as they come."""

    state: ConnState
    input: Input
    rule: Rule[ConnState]
    subject: Event | Frame | DecodeError | RecordError | GarbageError


@dataclass(frozen=True, slots=True)
class FrameSent:
    """For an observer: a frame the machine sends, and its size on the wire (its record's,
    when sealed)."""

    message: Message
    size: int
    sealed: bool


Observation = RuleApplied | FrameSent

# The states whose rules decode received bytes; closing discards them undecoded (CONN-24).
_DECODING = (C.HANDSHAKING, C.ESTABLISHED)


class PeerConnection:
    """One connection's machine. Build it, call ``start`` once, then ``handle`` each event.

    ``nonce`` is this connection's handshake nonce, already in the node's ``own_nonces``; the
    machine says when to drop it (ReleaseNonce). ``timestamp`` is the Unix time its handshake
    carries; ``rng`` draws the ping nonces. ``proxy``, for an outbound connection whose socket
    goes to a SOCKS5 proxy, is the client that asks it for the peer (spec/privacy.md section 4).
    """

    def __init__(
        self,
        direction: Direction,
        now: float,
        settings: ConnectionSettings,
        local: LocalHandshake,
        nonce: int,
        timestamp: int,
        own_nonces: Container[int],
        rng: RandomSource,
        *,
        proxy: socks5.Socks5Client | None = None,
    ) -> None:
        if proxy is not None and direction is not Direction.OUTBOUND:
            raise LocalProtocolError("only an outbound connection goes through a proxy")
        self.direction = direction
        self._proxy = proxy
        self.settings = settings
        self.opened_at = now
        self._rng = rng
        self._policy = policy_of(settings.privacy_level)
        role = Role.INITIATOR if direction is Direction.OUTBOUND else Role.RESPONDER
        self.handshake = HandshakeProtocol(role, local, nonce, timestamp, own_nonces)
        # spec: CONN-1
        self.state = C.CONNECTING if direction is Direction.OUTBOUND else C.HANDSHAKING
        self.negotiated: Negotiated | None = None
        self.established_at: float | None = None
        self.bytes_received = 0
        self.bytes_sent = 0
        self.last_rtt: float | None = None
        self.close_reason: CloseReason | None = None
        self.peer_reason: int | None = None
        self._close_detail = ""
        # spec: HS-23 (until the handshake completes, no frame may be larger than a handshake)
        self._decoder = FrameDecoder(max_payload=MAX_HANDSHAKE_PAYLOAD)
        # The encrypted transport, once both handshakes offer it (spec/privacy.md section 3):
        # it then takes every received byte instead of the decoder, and seals every frame.
        self._secure: SecureChannel | None = None
        self._own_handshake_frame = b""  # as sent: bound into the Noise prologue (PRIV-20)
        self.session_id: bytes | None = None  # spec: PRIV-21, PRIV-35
        # spec: PRIV-53 (an inbound connection's first bytes say whether it starts encrypted)
        self._sniffing = direction is Direction.INBOUND and self._policy.accepts_encrypted_first
        self._sniffed = bytearray()  # up to 3 bytes that could still begin the magic
        self._shaper: Shaper | None = None  # spec: PRIV-60 (shaped encrypted connections)
        # Told each rule applied and each frame sent, when set (not by the machine itself).
        self.observer: Callable[[Observation], None] | None = None
        self._armed: dict[Timer, float] = {}
        self._nonce_released = False
        self._outstanding_ping: tuple[int, float] | None = None  # nonce, time sent
        self._last_received = now
        # Per-step scratch: the time of the event being handled and the actions it produced.
        self._now = now
        self._actions: list[Action] = []
        self._pending: Event | Frame | DecodeError | RecordError | GarbageError | None = None
        self._started = False

    def start(self) -> list[Action]:
        """The actions that open the machine, once, right after it is built: an outbound
        connection starts its connect timer; an inbound one exists already, so its handshake
        timer starts now (spec: HS-21)."""
        if self._started:
            raise LocalProtocolError("start() was already called")
        self._started = True
        if self.direction is Direction.OUTBOUND:
            return self._collect(lambda: self._arm(Timer.CONNECT, "connection_timeout"))
        return self._collect(lambda: self._arm(Timer.HANDSHAKE, "handshake_timeout"))

    @property
    def armed_timers(self) -> dict[Timer, float]:
        return dict(self._armed)

    @property
    def held_bytes(self) -> int:
        """Bytes read from the peer and still held: what is not yet decoded and the unfinished
        frame (spec/node.md section 2, NODE-14)."""
        held = self._decoder.buffered + self._decoder.pending + len(self._sniffed)
        if self._shaper is not None:
            held += self._shaper.held_bytes
        return held if self._secure is None else held + self._secure.held_bytes

    @property
    def last_received(self) -> float:
        """When the last byte arrived (or the connection opened, before any byte)."""
        return self._last_received

    @property
    def outstanding_ping(self) -> tuple[int, float] | None:
        """The nonce of the ping awaiting its pong, and when it was queued."""
        return self._outstanding_ping

    # What a driver needs to know of the state, asked here so that a state added later is
    # placed once, in these properties, instead of in every comparison of the driver.

    @property
    def is_connecting(self) -> bool:
        """The TCP connect is under way: the socket is watched for writability only (through a
        proxy, the connect to the proxy)."""
        return self.state is C.CONNECTING

    @property
    def is_open(self) -> bool:
        """Handshaking, securing or established: a close now would send a Disconnect (CONN-20),
        sealed if the connection is encrypted (PRIV-34)."""
        return self.state in (C.HANDSHAKING, C.SECURING, C.ESTABLISHED)

    @property
    def accepts_app_messages(self) -> bool:
        """Established: the application may send messages (CONN-11)."""
        return self.state is C.ESTABLISHED

    @property
    def reads(self) -> bool:
        """Received bytes mean something: the proxy's while proxying, decoded while open, read
        and discarded while closing until the peer's end of stream (NODE-4)."""
        return self.state in (C.PROXYING, C.HANDSHAKING, C.SECURING, C.ESTABLISHED, C.CLOSING)

    @property
    def is_closing(self) -> bool:
        """The close has begun and the transport is still being flushed and ended."""
        return self.state is C.CLOSING

    @property
    def is_live(self) -> bool:
        """Connecting, proxying, handshaking, securing or established: its close has not
        begun."""
        return self.state in (
            C.CONNECTING,
            C.PROXYING,
            C.HANDSHAKING,
            C.SECURING,
            C.ESTABLISHED,
        )

    def handle(self, event: Event, now: float) -> list[Action]:
        """Feed one event; returns the actions to carry out, in order."""
        if not self._started:
            raise LocalProtocolError("start() must be called before handle()")
        self._now = now
        self._actions = []
        self._dispatch(event)
        actions, self._actions = self._actions, []
        return actions

    def _collect(self, step: Callable[[], None]) -> list[Action]:
        self._actions = []
        step()
        actions, self._actions = self._actions, []
        return actions

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, TimerExpired):
            deadline = self._armed.get(event.timer)
            if deadline is None:
                return  # spec: KA-8 (a timer that is not armed is stale: ignored)
            if self._now < deadline:
                self._emit(ArmTimer(event.timer, deadline))  # spec: KA-8 (early: armed again)
                return
            del self._armed[event.timer]
            self._fire(_TIMER_INPUT[event.timer], event)
            return
        self._fire(_EVENT_INPUT[type(event)], event)

    def _fire(
        self, input_: Input, subject: Event | Frame | DecodeError | RecordError | GarbageError
    ) -> None:
        rule = CONNECTION_TRANSITIONS.get((self.state, input_))
        if rule is None:
            # Every pair a peer can cause is in the table; a missing pair is a caller's bug.
            raise LocalProtocolError(
                f"{self.direction.value} connection in state {self.state.value} "
                f"cannot take {input_.value}"
            )
        self._pending = subject
        if self.observer is not None:
            self.observer(RuleApplied(self.state, input_, rule, subject))
        # The class's function, called with self: no bound method made per event, and no
        # table of handlers kept per connection (its memory is per connection, its gain nil).
        handler: Callable[[PeerConnection], ConnState] = getattr(type(self), rule.handler)
        next_state = handler(self)
        assert next_state in rule.targets, (self.state, input_, next_state)
        self.state = next_state

    # ---- helpers -------------------------------------------------------------------------

    def _emit(self, *actions: Action) -> None:
        self._actions.extend(actions)

    def _send_frame(self, message: Message) -> None:
        fields = message.encode()  # once: the padding depends on its length
        padding = b""
        opaque = isinstance(message, Opaque)  # spec: PRIV-2 (an opaque payload is sent as given)
        if self._policy.pad_frames and not opaque:
            padding = origin_padding(len(fields), self._rng)  # spec: PRIV-1
        data = frame_bytes(message.message_type, fields, padding)
        if self._secure is not None and self._secure.can_seal:
            data = self._secure.seal(data)  # spec: PRIV-24, PRIV-38 (every frame after Noise)
        elif isinstance(message, Handshake):
            self._own_handshake_frame = data  # as it travels: the Noise prologue's (PRIV-20)
        self.bytes_sent += len(data)
        if self.observer is not None:
            sealed = self._secure is not None and self._secure.can_seal
            self.observer(FrameSent(message, len(data), sealed))
        if self._shaper is not None:
            self._shape(data)
        else:
            self._emit(SendBytes(data))

    def _shape(self, data: bytes) -> None:
        assert self._shaper is not None
        self._shaper.hold(data, self._now)  # spec: PRIV-60
        if Timer.SHAPE not in self._armed:
            release = self._shaper.next_release
            assert release is not None
            self._arm_at(Timer.SHAPE, release)

    def _arm_at(self, timer: Timer, deadline: float) -> None:
        self._armed[timer] = deadline
        self._emit(ArmTimer(timer, deadline))

    def _deadline(self, setting: str, since: float | None = None) -> float:
        """When a timer of ``setting`` counted from ``since`` (now, by default) is due: the one
        expression that arms a timer and judges it (spec: KA-10)."""
        duration: float = getattr(self.settings, setting)
        return (self._now if since is None else since) + duration

    def _due(self, setting: str, since: float) -> bool:
        # The time against the deadline as armed, never now - since against the duration: the
        # difference can round below the duration at that very deadline and re-arm it there.
        return self._now >= self._deadline(setting, since)  # spec: KA-10

    def _arm(self, timer: Timer, setting: str, since: float | None = None) -> None:
        deadline = self._deadline(setting, since)
        self._armed[timer] = deadline
        self._emit(ArmTimer(timer, deadline))

    def _cancel_all_timers(self) -> None:
        for timer in list(self._armed):
            del self._armed[timer]
            self._emit(CancelTimer(timer))

    def _release_nonce(self) -> None:
        if not self._nonce_released:  # spec: HS-13
            self._nonce_released = True
            self._emit(ReleaseNonce(self.handshake.nonce))

    def _begin_close(
        self, reason: CloseReason, detail: str, *, notify: bool = True, fault: Misbehaviour | None
    ) -> ConnState:
        """Enter closing: say why (if the reason is one that is sent), flush, close."""
        self.close_reason, self._close_detail = reason, detail
        self._cancel_all_timers()
        self._release_nonce()
        if self._shaper is not None:
            held = self._shaper.flush()  # spec: PRIV-62 (at once, in order, before the close)
            self._shaper = None
            if held:
                self._emit(SendBytes(held))
        if fault is not None:
            self._emit(fault)  # spec: CONN-31
        # spec: PRIV-34 (on an encrypted connection, only sealed: not before this side's keys)
        may_send = self._secure is None or self._secure.can_seal
        if notify and reason.value.sent and may_send:
            # After all queued before it; no rule of closing sends.
            # spec: CONN-20, CONN-25, PRIV-36
            self._send_frame(Disconnect(reason.code))
        self._emit(CloseTransport())
        self._arm(Timer.CLOSE, "close_timeout")  # spec: CONN-23
        return C.CLOSING

    def _closed_now(self, reason: CloseReason, detail: str) -> ConnState:
        """Enter closed at once: the transport cannot (or need not) carry anything more."""
        self.close_reason, self._close_detail = reason, detail
        self._cancel_all_timers()
        self._release_nonce()
        self._emit(AbortTransport())
        return self._finish_close()

    def _violation(
        self, reason: CloseReason, detail: str, error: DecodeError | None = None
    ) -> ConnState:
        fault = Misbehaviour(
            reason, error.requirement if error else reason.requirement, detail, error
        )
        return self._begin_close(reason, detail, fault=fault)

    # ---- handlers: each returns the next state ------------------------------------------

    def _connected(self) -> ConnState:
        if self._proxy is not None and self.state is C.CONNECTING:
            # spec: PRIV-40 (the TCP connection is the proxy's; the connect timer runs on)
            self._emit(SendBytes(self._proxy.start()))
            return C.PROXYING
        self._cancel_all_timers()
        self._arm(Timer.HANDSHAKE, "handshake_timeout")  # spec: HS-21, PRIV-32
        self._last_received = self._now
        if self._policy.starts_encrypted:
            # spec: PRIV-50 (no plaintext handshake: Noise message 1, hidden, and garbage)
            self._secure = SecureChannel(True, b"", self._rng, self._policy.pad_records, first=True)
            self.handshake.encrypted = True  # spec: PRIV-12 (the bit has no further effect)
            first = self._secure.start()
            self.bytes_sent += len(first)
            self._emit(SendBytes(first))
            return C.SECURING
        self._send_frame(self.handshake.start())  # spec: HS-1
        return C.HANDSHAKING  # spec: CONN-3

    def _connect_timed_out(self) -> ConnState:
        detail = "no TCP connection" if self.state is C.CONNECTING else "the proxy did not connect"
        return self._closed_now(CloseReason.CONNECT_TIMEOUT, detail)  # spec: CONN-2

    def _proxy_bytes(self) -> ConnState:
        event = self._pending
        assert isinstance(event, BytesReceived) and self._proxy is not None
        step = self._proxy.receive(event.data)
        if isinstance(step, socks5.NeedMore):
            return C.PROXYING
        if isinstance(step, socks5.Send):
            self._emit(SendBytes(step.data))  # spec: PRIV-40, PRIV-41 (the request or credentials)
            return C.PROXYING
        if isinstance(step, socks5.Socks5Failed):
            return self._proxy_failed(step)
        # spec: CONN-3 (the proxy reached the peer: as if the TCP connection had just opened)
        self.state = self._connected()
        # What followed the proxy's reply is the peer's first bytes: for the decoder, or, on a
        # connection encrypted from the first byte, the Noise handshake's (PRIV-50).
        if self.state is C.SECURING:
            return self._secure_bytes(step.leftover) if step.leftover else C.SECURING
        self._pending = BytesReceived(step.leftover)
        return self._decode()

    def _proxy_closed(self) -> ConnState:
        assert self._proxy is not None
        return self._proxy_failed(self._proxy.eof())  # spec: PRIV-42

    def _proxy_failed(self, failure: socks5.Socks5Failed) -> ConnState:
        # spec: PRIV-42 (abort: nothing to say to a proxy, and the peer was never reached)
        return self._closed_now(CloseReason[failure.code.name], failure.detail)

    def _transport_failed(self) -> ConnState:
        event = self._pending
        assert isinstance(event, TransportFailed)
        return self._closed_now(CloseReason.NETWORK_ERROR, event.detail)  # spec: CONN-34

    def _close_before_connected(self) -> ConnState:
        event = self._pending
        assert isinstance(event, CloseRequested)
        self._check_local_reason(event.reason)
        # spec: CONN-21
        return self._closed_now(event.reason, "closed before the TCP connection opened")

    def _close_locally(self) -> ConnState:
        event = self._pending
        assert isinstance(event, CloseRequested)
        self._check_local_reason(event.reason)
        return self._begin_close(event.reason, "closed locally", fault=None)  # spec: CONN-20

    def _check_local_reason(self, reason: CloseReason) -> None:
        if reason not in LOCAL_REASONS:
            raise LocalProtocolError(
                f"a local close gives one of {sorted(r.label for r in LOCAL_REASONS)}"
            )

    def _decode(self) -> ConnState:
        event = self._pending
        assert isinstance(event, BytesReceived)
        if event.data:
            self._last_received = self._now  # spec: KA-6
            self.bytes_received += len(event.data)
        data = event.data
        if self._sniffing:
            self._sniffed += data
            head = bytes(self._sniffed[: len(MAGIC)])
            if len(head) < len(MAGIC) and head == MAGIC[: len(head)]:
                return C.HANDSHAKING  # the magic so far: its next bytes decide
            self._sniffing = False
            data, self._sniffed = bytes(self._sniffed), bytearray()
            if head != MAGIC:  # spec: PRIV-53 (not the magic: encrypted from the first byte)
                self._secure = SecureChannel(
                    False, b"", self._rng, self._policy.pad_records, first=True
                )
                self.handshake.encrypted = True  # spec: PRIV-12 (the bit has no further effect)
                self.state = C.SECURING
                return self._secure_bytes(data)
        source = self._decoder if self._secure is None else self._secure  # spec: PRIV-24
        source.push(data)
        return self._pull_frames()

    def _pull_frames(self) -> ConnState:
        # One frame at a time, each under the rules of the state the one before left us in.
        while self.state in _DECODING:  # spec: CONN-24 (then undecoded)
            # Asked anew for each frame: the handshake frame can hand the stream on (PRIV-11).
            source = self._decoder if self._secure is None else self._secure
            item = source.pull()  # spec: CONN-30, PRIV-24
            if item is None:
                break
            if isinstance(item, DecodeError):
                self._fire(Input.INVALID_FRAME, item)
            elif isinstance(item, RecordError | GarbageError):
                self._fire(Input.BROKEN_RECORD, item)
            else:
                input_ = _FRAME_INPUT[type(item.message)]
                if item.message.message_type is MessageType.Dummy:
                    input_ = Input.DUMMY_FRAME  # spec: PRIV-63
                self._fire(input_, item)
        return self.state

    def _frame(self) -> Frame:
        frame = self._pending
        assert isinstance(frame, Frame)
        return frame

    def _invalid_frame(self) -> ConnState:
        error = self._pending
        assert isinstance(error, DecodeError)
        # spec: CONN-30
        return self._violation(CloseReason.INVALID_MESSAGE, str(error), error)

    def _unexpected(self) -> ConnState:
        message = self._frame().message
        # spec: HS-20
        return self._violation(
            CloseReason.UNEXPECTED_MESSAGE,
            f"{message.message_type.name} is not allowed in state {self.state.value}",
        )

    def _peer_handshake(self) -> ConnState:
        message = self._frame().message
        assert isinstance(message, Handshake)
        outcome = self.handshake.receive(message)
        if not isinstance(outcome, Accepted):
            return self._begin_close(outcome.reason, outcome.detail, fault=None)
        if outcome.reply is not None:
            self._send_frame(outcome.reply)  # spec: HS-3
        self.negotiated = outcome.negotiated
        self._release_nonce()
        if self._secure is not None:
            return self._establish()  # spec: PRIV-12 (encrypted from the first byte already)
        if not outcome.negotiated.privacy_features & PrivacyFeature.EncryptedTransport:
            return self._establish()
        # spec: PRIV-11, PRIV-20 (both offered encryption: the Noise handshake, right now)
        peer_frame = encode_frame(message, self._frame().padding)
        initiator = self.direction is Direction.OUTBOUND
        own, theirs = self._own_handshake_frame, peer_frame
        prologue = noise_prologue(*((own, theirs) if initiator else (theirs, own)))
        self._secure = SecureChannel(initiator, prologue, self._rng, self._policy.pad_records)
        if initiator:
            self._emit(SendBytes(self._secure.start()))  # spec: PRIV-20 (message 1)
            self.bytes_sent += NOISE_MESSAGE1_SIZE
        # What the peer sent after its handshake, in the same reads, is already Noise's.
        rest = self._decoder.take_rest()
        self.state = C.SECURING
        return self._secure_bytes(rest) if rest else C.SECURING

    def _establish(self) -> ConnState:
        """The handshake, and the Noise handshake if any, are complete: established, with the
        negotiated values reported."""
        assert self.negotiated is not None  # spec: HS-14
        self.established_at = self._now
        self._decoder.max_payload = MAX_PAYLOAD  # spec: HS-23 (the handshake's limit ends)
        if self._secure is not None:
            self._secure.max_payload = MAX_PAYLOAD  # spec: HS-23 (inside the records too)
        self._cancel_all_timers()  # spec: PRIV-32 (the handshake timer ran until now)
        self._arm(Timer.PING, "ping_interval")  # spec: KA-1
        self._arm(Timer.INACTIVITY, "inactivity_timeout", since=self._last_received)
        if self._policy.shapes and self._secure is not None:
            self._shaper = Shaper(self._rng)  # spec: PRIV-60, PRIV-61 (encrypted only)
            self._arm_at(Timer.DUMMY, self._now + next_dummy_after(self._rng))
        self._emit(Established(self.negotiated, self.session_id, self.handshake.dialler_nonce))
        return C.ESTABLISHED

    def _noise_bytes(self) -> ConnState:
        event = self._pending
        assert isinstance(event, BytesReceived)
        if event.data:
            self._last_received = self._now  # spec: KA-6
            self.bytes_received += len(event.data)
        return self._secure_bytes(event.data)

    def _secure_bytes(self, data: bytes) -> ConnState:
        assert self._secure is not None
        step = self._secure.handshake(data)
        if isinstance(step, NeedMore):
            return C.SECURING
        if isinstance(step, NoiseFailed):
            # spec: PRIV-22, PRIV-23, PRIV-34 (nothing sent: no Disconnect without a key)
            return self._begin_close(step.reason, step.detail, notify=False, fault=None)
        if isinstance(step, RejectedInPlaintext):
            self._pending = step.frame
            return self._peer_disconnected()  # spec: PRIV-37, CONN-22
        if step.reply is not None:
            # Message 2; encrypted-first, also the garbage and the terminator, or the
            # initiator's terminator alone.
            # spec: PRIV-20, PRIV-53, PRIV-54
            self._emit(SendBytes(step.reply))
            self.bytes_sent += len(step.reply)
        self.session_id = step.session_id  # spec: PRIV-21
        if self.negotiated is None:  # encrypted from the first byte: the handshake follows
            if self.direction is Direction.OUTBOUND:
                self._send_frame(self.handshake.start())  # spec: PRIV-57 (the first record)
            self.state = C.HANDSHAKING
        else:
            self.state = self._establish()
        return self._pull_frames()  # records that came with the Noise message

    def _discard_dummy(self) -> ConnState:
        return C.ESTABLISHED  # spec: PRIV-63 (its bytes counted as activity, KA-6)

    def _release_shaped(self) -> ConnState:
        assert self._shaper is not None
        data = self._shaper.due(self._now)  # spec: PRIV-60
        if data:
            self._emit(SendBytes(data))
        release = self._shaper.next_release
        if release is not None:
            self._arm_at(Timer.SHAPE, release)
        return C.ESTABLISHED

    def _send_dummy(self) -> ConnState:
        self._send_frame(Opaque(MessageType.Dummy, dummy_payload(self._rng)))  # spec: PRIV-61
        self._arm_at(Timer.DUMMY, self._now + next_dummy_after(self._rng))
        return C.ESTABLISHED

    def _broken_record(self) -> ConnState:
        error = self._pending
        assert isinstance(error, RecordError | GarbageError)
        # spec: PRIV-26, PRIV-27, PRIV-28, PRIV-30, PRIV-36 (its Disconnect goes sealed)
        return self._begin_close(record_reason(error), str(error), fault=None)

    def _handshake_timed_out(self) -> ConnState:
        # spec: HS-22
        return self._begin_close(CloseReason.HANDSHAKE_TIMEOUT, "handshake incomplete", fault=None)

    def _peer_disconnected(self) -> ConnState:
        message = self._frame().message
        assert isinstance(message, Disconnect)
        self.peer_reason = message.reason
        # spec: CONN-22 (no Disconnect in reply)
        return self._begin_close(
            CloseReason.PEER_DISCONNECTED, "Disconnect received", notify=False, fault=None
        )

    def _end_of_stream(self) -> ConnState:
        if self._secure is not None:
            cut = self._secure.eof()
            if cut is not None:  # spec: PRIV-29
                return self._begin_close(record_reason(cut), str(cut), notify=False, fault=None)
            return self._begin_close(
                CloseReason.PEER_CLOSED, "end of stream", notify=False, fault=None
            )
        if self._sniffed:  # the start of a magic, then the end: a frame cut short (CONN-33)
            self._decoder.push(bytes(self._sniffed))
            self._sniffed = bytearray()
        truncated = self._decoder.eof()
        if truncated is not None:  # spec: CONN-33 (a frame cut short is invalid)
            fault = Misbehaviour(
                CloseReason.INVALID_MESSAGE, truncated.requirement, str(truncated), truncated
            )
            return self._begin_close(
                CloseReason.INVALID_MESSAGE, str(truncated), notify=False, fault=fault
            )
        # spec: CONN-33
        return self._begin_close(CloseReason.PEER_CLOSED, "end of stream", notify=False, fault=None)

    def _answer_ping(self) -> ConnState:
        message = self._frame().message
        assert isinstance(message, Ping)
        self._send_frame(Pong(message.nonce))  # spec: KA-2
        return C.ESTABLISHED

    def _pong(self) -> ConnState:
        message = self._frame().message
        assert isinstance(message, Pong)
        outstanding = self._outstanding_ping
        if outstanding is None or outstanding[0] != message.nonce:
            self._emit(UnsolicitedPong(message.nonce))  # spec: KA-5
            return C.ESTABLISHED
        self._outstanding_ping = None
        self._armed.pop(Timer.PONG, None)
        self._emit(CancelTimer(Timer.PONG))
        self.last_rtt = self._now - outstanding[1]
        self._emit(RttMeasured(self.last_rtt))  # spec: KA-4
        return C.ESTABLISHED

    def _deliver(self) -> ConnState:
        self._emit(MessageReceived(self._frame().message))  # spec: CONN-10
        return C.ESTABLISHED

    def _send_ping(self) -> ConnState:
        self._arm(Timer.PING, "ping_interval")
        if self._outstanding_ping is not None:
            return C.ESTABLISHED  # spec: KA-9 (one ping outstanding at a time)
        nonce = self._rng.getrandbits(64)  # spec: KA-1
        self._outstanding_ping = (nonce, self._now)
        self._send_frame(Ping(nonce))
        self._arm(Timer.PONG, "ping_timeout")  # spec: KA-3
        return C.ESTABLISHED

    def _ping_timed_out(self) -> ConnState:
        assert self._outstanding_ping is not None
        nonce, sent_at = self._outstanding_ping
        # A pong cannot overtake a large frame that is still arriving: time the silence.
        silent_since = max(sent_at, self._last_received)  # spec: KA-3 (from the later one)
        if not self._due("ping_timeout", since=silent_since):  # spec: KA-10
            self._arm(Timer.PONG, "ping_timeout", since=silent_since)
            return C.ESTABLISHED
        return self._begin_close(
            CloseReason.PING_TIMEOUT, f"no pong for nonce {nonce:#018x}", fault=None
        )

    def _check_inactivity(self) -> ConnState:
        if self._due("inactivity_timeout", since=self._last_received):  # spec: KA-6, KA-10
            idle = self._now - self._last_received
            return self._begin_close(
                CloseReason.INACTIVITY_TIMEOUT, f"nothing received for {idle:.3f} s", fault=None
            )
        # Something arrived since the timer was armed: re-arm from that moment, so that a busy
        # connection costs one timer per inactivity_timeout, not one per read.
        self._arm(Timer.INACTIVITY, "inactivity_timeout", since=self._last_received)
        return C.ESTABLISHED

    def _node_limit(self) -> ConnState:
        event = self._pending
        assert isinstance(event, NodeLimit)
        if event.reason not in NODE_LIMIT_REASONS:
            raise LocalProtocolError(f"{event.reason.label} is not a reason of a node's limit")
        # spec: NODE-2, NODE-11, NODE-14 (nothing more can be sent usefully: abort)
        return self._closed_now(event.reason, event.reason.value.meaning)

    def _send_local(self) -> ConnState:
        event = self._pending
        assert isinstance(event, SendMessage)
        if not isinstance(event.message, Opaque) or event.message.message_type is MessageType.Dummy:
            # spec: CONN-11
            raise LocalProtocolError(
                f"the machine sends {event.message.message_type.name} itself; "
                "the application sends opaque messages only"
            )
        self._send_frame(event.message)
        return C.ESTABLISHED

    def _ignore(self) -> ConnState:
        return self.state  # spec: CONN-41, CONN-26

    def _discard(self) -> ConnState:
        return C.CLOSING  # spec: CONN-24

    def _finish_close(self) -> ConnState:
        self._cancel_all_timers()
        assert self.close_reason is not None
        # spec: CONN-40 (exactly once: closed is left by no rule)
        self._emit(Closed(self.close_reason, self._close_detail, self.peer_reason))
        return C.CLOSED

    def _abort_close(self) -> ConnState:
        self._emit(AbortTransport())  # spec: CONN-23
        return self._finish_close()
