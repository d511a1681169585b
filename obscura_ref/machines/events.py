"""What goes into the machines (events) and what comes out (actions).

A machine never touches a socket or a clock: the loop turns what happens into an event, passes
it with the current monotonic time, and carries out the actions returned, in order.

The classes are slotted: some of them are made for every frame, and slots make that cheaper.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..wire import DecodeError, Message
from .reasons import CloseReason


class Timer(Enum):
    """The timers of spec/connection.md section 4; each is armed in one state only."""

    # Compared by identity, so hashed by identity: timers key dicts on every arming, and
    # Enum's own hash is a call into Python.
    __hash__ = object.__hash__

    CONNECT = "connect"
    HANDSHAKE = "handshake"
    PING = "ping"
    PONG = "pong"
    INACTIVITY = "inactivity"
    CLOSE = "close"
    SHAPE = "shape"  # the next held send is due (spec/privacy.md PRIV-60)
    DUMMY = "dummy"  # the next dummy message is due (spec/privacy.md PRIV-61)


# Events: from the transport, from the clock, and from the local application.


@dataclass(frozen=True, slots=True)
class TcpConnected:
    """The outbound TCP connection is open."""


@dataclass(frozen=True, slots=True)
class BytesReceived:
    """Bytes read from the peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The peer ended its side of the stream (a read returned no bytes)."""


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """A socket error: reset, refused, unreachable, ..."""

    detail: str


@dataclass(frozen=True, slots=True)
class NodeLimit:
    """The node closes the connection at once, for a limit of its own resources: the send
    queue is full (NODE-2), the peer takes none of our bytes (NODE-11), or the node's memory
    budget is reached (NODE-14). The reason is one of ``NODE_LIMIT_REASONS``."""

    reason: CloseReason


@dataclass(frozen=True, slots=True)
class TransportClosed:
    """The transport wrote what was queued and closed, as CloseTransport asked."""


@dataclass(frozen=True, slots=True)
class TimerExpired:
    """A timer the machine armed reached its deadline."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class SendMessage:
    """The application sends an opaque message."""

    message: Message


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """The application or the node closes the connection, with a local reason."""

    reason: CloseReason


Event = (
    TcpConnected
    | BytesReceived
    | EndOfStream
    | TransportFailed
    | TransportClosed
    | NodeLimit
    | TimerExpired
    | SendMessage
    | CloseRequested
)


# Actions: for the transport, for the timer heap, and for the application.


@dataclass(frozen=True, slots=True)
class SendBytes:
    """Queue these bytes for the peer, after everything queued before."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CloseTransport:
    """Write everything queued, then end the sending side; keep reading and discarding until
    the peer ends its side (spec: NODE-4; a connection refused at admission is not waited
    for); then close and report TransportClosed."""


@dataclass(frozen=True, slots=True)
class AbortTransport:
    """Close the transport now, dropping whatever is still queued; nothing more is reported."""


@dataclass(frozen=True, slots=True)
class ArmTimer:
    """Fire ``timer`` at monotonic time ``deadline``; arming an armed timer moves it, and a
    timer that fires is no longer armed."""

    timer: Timer
    deadline: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Clear one of the timers."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class ReleaseNonce:
    """This connection's handshake nonce is no longer outstanding (spec: HS-13)."""

    nonce: int


@dataclass(frozen=True)
class Negotiated:
    """What both sides agreed on, and what the peer said of itself (spec/handshake.md).

    Made once per connection, so not slotted like the per-frame classes: it keeps a
    ``__dict__`` for ``vars()``."""

    version: int
    features: int
    privacy_features: int
    peer_version: int
    peer_user_agent: str
    peer_best_block_hash: bytes
    peer_best_block_height: int
    peer_timestamp: int


@dataclass(frozen=True, slots=True)
class Established:
    """The handshake completed: the negotiated values (spec: HS-17), for an encrypted
    connection its session id, the Noise handshake hash (spec: PRIV-21, PRIV-35), and the
    handshake nonce of the side that dialled (spec/manager.md RECO-10)."""

    negotiated: Negotiated
    session_id: bytes | None = None
    # The handshake nonce of the side that dialled: which of two connections between the
    # same two nodes is kept (spec/manager.md RECO-10).
    dialler_nonce: int | None = None


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """An opaque message for the application."""

    message: Message


@dataclass(frozen=True, slots=True)
class RttMeasured:
    """A pong answered the outstanding ping, this many seconds after the ping was queued."""

    seconds: float


@dataclass(frozen=True, slots=True)
class UnsolicitedPong:
    """A pong answered no outstanding ping (spec: KA-5)."""

    nonce: int


@dataclass(frozen=True, slots=True)
class Misbehaviour:
    """The peer broke a rule: the reason and the requirement it broke, for scoring and bans."""

    reason: CloseReason
    requirement: str
    detail: str
    wire_error: DecodeError | None = None


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection is closed; reported exactly once (spec: CONN-40)."""

    reason: CloseReason
    detail: str
    peer_reason: int | None = None  # the code of the peer's Disconnect, if it sent one


Action = (
    SendBytes
    | CloseTransport
    | AbortTransport
    | ArmTimer
    | CancelTimer
    | ReleaseNonce
    | Established
    | MessageReceived
    | RttMeasured
    | UnsolicitedPong
    | Misbehaviour
    | Closed
)


class LocalProtocolError(Exception):
    """The local side used a machine wrongly (sent before the handshake, fed an event its state
    cannot have): a bug in the caller, never something a peer can cause."""
