"""The handshake machine, ``HandshakeProtocol`` (spec/handshake.md).

It validates the peer's handshake, detects a connection to this node itself, negotiates the
version and the features, and says what to send. It does not own the node's set of outstanding
nonces: it is given a read-only view of it. Timeouts and messages other than handshakes are the
connection machine's business (spec/connection.md).
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from enum import Enum

from .. import __version__
from ..wire import Handshake
from ..wire.registry import PrivacyFeature
from .events import LocalProtocolError, Negotiated
from .reasons import CloseReason
from .table import Rule

PROTOCOL_VERSION = 1  # spec/handshake.md section 1
MIN_COMPATIBLE_VERSION = 1


class Role(Enum):
    INITIATOR = "initiator"  # opened the TCP connection (outbound)
    RESPONDER = "responder"  # accepted it (inbound)


@dataclass(frozen=True)
class LocalHandshake:
    """What this node says of itself in every handshake it sends."""

    version: int = PROTOCOL_VERSION
    min_compatible_version: int = MIN_COMPATIBLE_VERSION
    features: int = 0x01  # spec: WIRE-46 (only assigned bits: BasicTransactions)
    privacy_features: int = 0
    user_agent: str = f"obscura-ref/{__version__}"
    best_block_hash: bytes = bytes(32)
    best_block_height: int = 0
    # spec: PRIV-12 (the privacy level requires EncryptedTransport of the peer)
    requires_encryption: bool = False


# spec/handshake.md table 3.1: the checks each role makes, in order (spec: HS-11). The orders
# differ because the origin's do.
CHECK_ORDER: dict[Role, tuple[str, ...]] = {
    Role.INITIATOR: ("nonce", "version", "encryption"),
    Role.RESPONDER: ("version", "nonce", "encryption"),
}


class HandshakeState(Enum):
    IDLE = "idle"  # initiator: the TCP connection does not exist yet
    AWAITING_REPLY = "awaiting_reply"  # initiator: sent its handshake, awaits the responder's
    AWAITING_HANDSHAKE = "awaiting_handshake"  # responder: awaits the initiator's handshake
    COMPLETE = "complete"
    FAILED = "failed"


class HandshakeInput(Enum):
    START = "start"  # the TCP connection exists (initiator)
    PEER_HANDSHAKE = "peer_handshake"  # a handshake frame from the peer decoded


H = HandshakeState
HANDSHAKE_TRANSITIONS: dict[tuple[HandshakeState, HandshakeInput], Rule[HandshakeState]] = {
    (H.IDLE, HandshakeInput.START): Rule(
        "_send_first", (H.AWAITING_REPLY,), ("HS-1",), "send own handshake"
    ),
    (H.AWAITING_REPLY, HandshakeInput.PEER_HANDSHAKE): Rule(
        "_check_reply",
        (H.COMPLETE, H.FAILED),
        ("HS-11", "HS-14"),
        "check nonce, then version (table 3.1); negotiate",
    ),
    (H.AWAITING_HANDSHAKE, HandshakeInput.PEER_HANDSHAKE): Rule(
        "_check_and_answer",
        (H.COMPLETE, H.FAILED),
        ("HS-2", "HS-3", "HS-11", "HS-14"),
        "check version, then nonce (table 3.1); send own handshake; negotiate",
    ),
}


@dataclass(frozen=True)
class Accepted:
    negotiated: Negotiated
    reply: Handshake | None  # the responder's own handshake, to send now


@dataclass(frozen=True)
class Rejected:
    reason: CloseReason
    detail: str


Outcome = Accepted | Rejected


class HandshakeProtocol:
    def __init__(
        self,
        role: Role,
        local: LocalHandshake,
        nonce: int,
        timestamp: int,
        own_nonces: Container[int],
    ) -> None:
        self.role = role
        self.local = local
        self.nonce = nonce
        self._timestamp = timestamp
        self._own_nonces = own_nonces  # the node's set, read only (spec: HS-12)
        self.state = H.IDLE if role is Role.INITIATOR else H.AWAITING_HANDSHAKE
        # Built now, so that a local handshake that could not be sent (a user agent over its
        # limit, say) is refused when the machine is made, not halfway through a step.
        self._own = self._build_own()
        self._peer: Handshake | None = None
        self._outcome: Outcome | None = None
        # The connection is encrypted from its first byte: the handshakes travel sealed, and
        # EncryptedTransport has no further effect (spec/privacy.md PRIV-12, section 3.5).
        self.encrypted = False

    def start(self) -> Handshake:
        """Initiator only: the handshake to send as the connection's first frame."""
        self._fire(HandshakeInput.START)
        return self.own_handshake()

    def receive(self, peer: Handshake) -> Outcome:
        """The peer's handshake: accept it (and say what to reply) or reject it with a reason."""
        self._peer = peer
        self._fire(HandshakeInput.PEER_HANDSHAKE)
        assert self._outcome is not None
        return self._outcome

    @property
    def dialler_nonce(self) -> int | None:
        """The nonce of the side that opened the connection (the initiator's), once the
        peer's handshake has arrived: both ends know it, so both order two connections
        between them alike (spec/manager.md RECO-10)."""
        if self.role is Role.INITIATOR:
            return self.nonce
        return None if self._peer is None else self._peer.nonce

    def own_handshake(self) -> Handshake:
        return self._own

    def _build_own(self) -> Handshake:
        return Handshake(
            version=self.local.version,
            timestamp=self._timestamp,
            features=self.local.features,
            privacy_features=self.local.privacy_features,
            user_agent=self.local.user_agent,
            best_block_hash=self.local.best_block_hash,
            best_block_height=self.local.best_block_height,
            nonce=self.nonce,
        )

    def _fire(self, input_: HandshakeInput) -> None:
        rule = HANDSHAKE_TRANSITIONS.get((self.state, input_))
        if rule is None:
            raise LocalProtocolError(f"handshake in state {self.state.value} cannot {input_.value}")
        handler: Callable[[], HandshakeState] = getattr(self, rule.handler)
        next_state = handler()
        assert next_state in rule.targets, (self.state, input_, next_state)
        self.state = next_state

    # Handlers: each returns the next state.

    def _send_first(self) -> HandshakeState:
        return H.AWAITING_REPLY  # the connection machine sends it first (connection.py)

    def _check_reply(self) -> HandshakeState:
        return self._judge(reply=None)

    def _check_and_answer(self) -> HandshakeState:
        # spec: HS-2, HS-3 (its own handshake goes out only once the initiator's is accepted)
        return self._judge(reply=self.own_handshake())

    def _judge(self, reply: Handshake | None) -> HandshakeState:
        assert self._peer is not None
        checks = {
            "nonce": self._check_nonce,
            "version": self._check_version,
            "encryption": self._check_encryption,
        }
        for name in CHECK_ORDER[self.role]:  # spec: HS-11
            rejected = checks[name](self._peer)
            if rejected is not None:
                self._outcome = rejected
                return H.FAILED
        self._outcome = Accepted(negotiate(self.local, self._peer), reply)
        return H.COMPLETE

    def _check_version(self, peer: Handshake) -> Rejected | None:
        if peer.version < self.local.min_compatible_version:  # spec: HS-10
            return Rejected(
                CloseReason.INCOMPATIBLE_VERSION,
                f"peer version {peer.version} is below {self.local.min_compatible_version}",
            )
        return None

    def _check_nonce(self, peer: Handshake) -> Rejected | None:
        if peer.nonce in self._own_nonces:  # spec: HS-12
            return Rejected(CloseReason.SELF_CONNECTION, f"nonce {peer.nonce:#018x} is our own")
        return None

    def _check_encryption(self, peer: Handshake) -> Rejected | None:
        offered = peer.privacy_features & PrivacyFeature.EncryptedTransport
        required = self.local.requires_encryption and not self.encrypted
        if required and not offered:  # spec: PRIV-12
            return Rejected(
                CloseReason.ENCRYPTION_REQUIRED, "the peer's handshake does not offer encryption"
            )
        return None


def negotiate(local: LocalHandshake, peer: Handshake) -> Negotiated:
    """The values both sides agree on (spec/handshake.md section 4)."""
    return Negotiated(
        version=min(local.version, peer.version),  # spec: HS-15
        features=local.features & peer.features,  # spec: HS-16
        # spec: HS-16, WIRE-47 (a bitwise AND: each bit is one flag, negotiated on its own)
        privacy_features=local.privacy_features & peer.privacy_features,
        peer_version=peer.version,
        peer_user_agent=peer.user_agent,  # spec: HS-17
        peer_best_block_hash=peer.best_block_hash,
        peer_best_block_height=peer.best_block_height,
        peer_timestamp=peer.timestamp,
    )
