"""Close reasons (spec/connection.md section 5): why a connection closed, and its code.

The code is what a ``Disconnect`` carries on the wire for the reasons a node sends; the other
reasons describe closes that send nothing and are only reported locally.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class ReasonInfo:
    code: int
    sent: bool  # carried by a Disconnect this node sends
    misbehaviour: bool  # the peer broke a rule: reported as a Misbehaviour event
    requirement: str  # the rule that closes with this reason
    meaning: str


class CloseReason(Enum):
    """Every reason a connection can close with; the table of spec/connection.md section 5 is
    generated from these values."""

    REQUESTED = ReasonInfo(1, True, False, "CONN-20", "the local application closed it")
    SHUTTING_DOWN = ReasonInfo(2, True, False, "NODE-5", "the local node is stopping")
    CONNECTION_LIMIT = ReasonInfo(
        3, True, False, "LIM-16", "the node is full and the eviction rule found no peer to evict"
    )
    BANNED = ReasonInfo(4, True, False, "BAN-3", "the peer's address is banned (spec/manager.md)")
    EVICTED = ReasonInfo(
        5, True, False, "LIM-17", "the node evicted this inbound peer to admit a newcomer"
    )
    ROTATED = ReasonInfo(6, True, False, "PRIV-10", "the node rotated this outbound connection")
    TEMPORARY_DONE = ReasonInfo(
        7, True, False, "TYPE-2", "a temporary connection's purpose is met: the address answers"
    )
    DUPLICATE_CONNECTION = ReasonInfo(
        8,
        True,
        False,
        "RECO-10",
        "another connection with the peer's address is established; this one's dialler's "
        "handshake nonce is the greater",
    )
    INVALID_MESSAGE = ReasonInfo(
        10, True, True, "CONN-30", "the peer sent bytes that do not decode (spec/wire.md)"
    )
    UNEXPECTED_MESSAGE = ReasonInfo(
        11, True, True, "HS-20", "the peer sent a message its state does not allow"
    )
    INCOMPATIBLE_VERSION = ReasonInfo(
        12, True, False, "HS-10", "the peer's version is below the minimum compatible version"
    )
    SELF_CONNECTION = ReasonInfo(
        13, True, False, "HS-12", "the peer's handshake nonce is one of this node's own"
    )
    ENCRYPTION_REQUIRED = ReasonInfo(
        14, True, False, "PRIV-12", "this node requires encryption and the peer does not offer it"
    )
    HANDSHAKE_TIMEOUT = ReasonInfo(
        20, True, False, "HS-22", "the handshake did not complete within handshake_timeout"
    )
    PING_TIMEOUT = ReasonInfo(
        21, True, False, "KA-3", "a ping went unanswered and nothing arrived for ping_timeout"
    )
    INACTIVITY_TIMEOUT = ReasonInfo(
        22, True, False, "KA-6", "no byte was received for inactivity_timeout"
    )
    TEMPORARY_TIMEOUT = ReasonInfo(
        24, True, False, "TYPE-2", "a temporary connection was not done within temporary_timeout"
    )
    CONNECT_TIMEOUT = ReasonInfo(
        23, False, False, "CONN-2", "the TCP connection did not open within connection_timeout"
    )
    PEER_DISCONNECTED = ReasonInfo(
        30, False, False, "CONN-22", "the peer sent a Disconnect (its reason is reported apart)"
    )
    PEER_CLOSED = ReasonInfo(31, False, False, "CONN-33", "the peer ended the stream")
    NETWORK_ERROR = ReasonInfo(
        32, False, False, "CONN-34", "the transport failed (reset, refused, unreachable, ...)"
    )
    SEND_QUEUE_FULL = ReasonInfo(
        33, False, False, "NODE-2", "more than max_send_queue bytes would be queued for the peer"
    )
    SEND_STALLED = ReasonInfo(
        34, False, False, "NODE-11", "the peer took none of our queued bytes for inactivity_timeout"
    )
    MEMORY_BUDGET = ReasonInfo(
        35, False, False, "NODE-14", "the node's memory budget was reached and this peer held most"
    )
    # The encrypted transport (spec/privacy.md section 3). None is a misbehaviour: bytes that
    # fail here can be a broken line's or an on-path attacker's as much as the peer's, and a
    # ban would let such an attacker have honest peers banned. The record reasons are sent,
    # sealed (PRIV-36); the Noise ones are not, as no key may exist yet (PRIV-34).
    NOISE_FAILED = ReasonInfo(
        40, False, False, "PRIV-22", "the Noise handshake failed: a bad tag or a low-order key"
    )
    NOISE_OUT_OF_PLACE = ReasonInfo(
        41, False, False, "PRIV-23", "the peer sent a frame where its Noise message belongs"
    )
    RECORD_FORGED = ReasonInfo(
        42, True, False, "PRIV-27", "a sealed record whose length or body does not authenticate"
    )
    RECORD_REPLAYED = ReasonInfo(
        43, True, False, "PRIV-28", "a sealed record that was already received, sent again"
    )
    RECORD_REORDERED = ReasonInfo(
        44, True, False, "PRIV-28", "a sealed record that belongs later in the stream"
    )
    RECORD_TRUNCATED = ReasonInfo(
        45, False, False, "PRIV-29", "the peer ended the stream inside a sealed record"
    )
    RECORD_TOO_LARGE = ReasonInfo(
        46, True, False, "PRIV-26", "a sealed record longer than MAX_RECORD"
    )
    RECORD_NOT_ONE_FRAME = ReasonInfo(
        47, True, False, "PRIV-30", "a sealed record that ends inside its frame"
    )
    NO_GARBAGE_TERMINATOR = ReasonInfo(
        48, True, False, "PRIV-55", "no garbage terminator within MAX_GARBAGE + 16 bytes"
    )

    # Connecting through a SOCKS5 proxy (spec/privacy.md section 4): nothing is sent, as the
    # peer was never reached, and none is the peer's fault. The labels are Socks5ErrorCode's.
    PROXY_AUTH_FAILED = ReasonInfo(
        50, False, False, "PRIV-42", "the proxy accepted none of the offered methods or credentials"
    )
    PROXY_REFUSED = ReasonInfo(
        51, False, False, "PRIV-42", "the proxy answered the CONNECT with a failure"
    )
    PROXY_GARBAGE = ReasonInfo(
        52, False, False, "PRIV-42", "the proxy sent bytes that break RFC 1928 or RFC 1929"
    )
    PROXY_CLOSED = ReasonInfo(
        53, False, False, "PRIV-42", "the proxy ended the stream before it reported success"
    )

    @property
    def code(self) -> int:
        return self.value.code

    @property
    def label(self) -> str:
        """The reason's name as the spec writes it, e.g. ``ping_timeout``."""
        return self.name.lower()

    @property
    def requirement(self) -> str:
        return self.value.requirement


# Reasons of a NodeLimit event: the node's own resources (spec: NODE-2, NODE-11, NODE-14).
NODE_LIMIT_REASONS = frozenset(
    {CloseReason.SEND_QUEUE_FULL, CloseReason.SEND_STALLED, CloseReason.MEMORY_BUDGET}
)

# Reasons a local caller may give in a CloseRequested event (spec: CONN-20).
LOCAL_REASONS = frozenset(
    {
        CloseReason.REQUESTED,
        CloseReason.SHUTTING_DOWN,
        CloseReason.CONNECTION_LIMIT,
        CloseReason.BANNED,
        CloseReason.EVICTED,
        CloseReason.ROTATED,
        CloseReason.DUPLICATE_CONNECTION,
        CloseReason.TEMPORARY_DONE,
        CloseReason.TEMPORARY_TIMEOUT,
    }
)

# The reasons a Disconnect can carry, by code (spec/connection.md section 5).
_SENT_BY_CODE = {reason.code: reason for reason in CloseReason if reason.value.sent}


def sent_reason(code: int) -> CloseReason | None:
    """The reason a received Disconnect's code names, or None for a code no sent reason has
    (a receiver accepts any code: spec/wire.md WIRE-61)."""
    return _SENT_BY_CODE.get(code)
