"""Target ``handshake``: the handshake machine, ``HandshakeProtocol``, judging any peer
handshake (spec/handshake.md).

Input: a flags byte (role, whether encryption is required, whether the connection is encrypted
from its first byte), this node's version, minimum compatible version, features and privacy
features (u32 each) and one outstanding nonce of its own (u64), then the peer's handshake payload
as it travels; a payload that does not decode is the decoder's business and ends the input.
Checked on every input, against the rules written out again here from the spec:

- the checks are made in the role's order and the first that fails closes with its reason
  (HS-10, HS-11, HS-12, PRIV-12); otherwise the values are negotiated (HS-15, HS-16, HS-17);
- a responder answers only an accepted handshake (HS-2, HS-3), an initiator never;
- the handshake it sends re-encodes and decodes back to itself (WIRE-40, WIRE-41, WIRE-42);
- a second handshake from the peer is refused as a caller's error (LocalProtocolError).
"""

from __future__ import annotations

from obscura_ref.machines.events import LocalProtocolError
from obscura_ref.machines.handshake import (
    CHECK_ORDER,
    Accepted,
    HandshakeProtocol,
    HandshakeState,
    LocalHandshake,
    Rejected,
    Role,
)
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.wire import DecodeError, Handshake, decode_frames, encode_frame
from obscura_ref.wire.registry import PrivacyFeature

from .common import Reader, Writer, check

INITIATOR, REQUIRES_ENCRYPTION, ENCRYPTED_FIRST, OWN_NONCE = 1, 2, 4, 8
TIMESTAMP = 1_700_000_000


def encode(
    flags: int,
    version: int,
    min_compatible: int,
    features: int,
    privacy_features: int,
    own_nonce: int,
    peer_payload: bytes,
) -> bytes:
    """The input for these local values and this peer payload (for seeds)."""
    writer = Writer().byte(flags)
    for value in (version, min_compatible, features, privacy_features):
        writer.uint(value, 4)
    return writer.uint(own_nonce, 8).raw(peer_payload).bytes()


def expected(role: Role, local: LocalHandshake, encrypted: bool, own: int, peer: Handshake) -> str:
    """The reason's label of the first check that fails, or "" (spec/handshake.md table 3.1)."""
    failing = {
        "nonce": peer.nonce == own,  # spec: HS-12
        "version": peer.version < local.min_compatible_version,  # spec: HS-10
        "encryption": local.requires_encryption  # spec: PRIV-12
        and not encrypted
        and not peer.privacy_features & PrivacyFeature.EncryptedTransport,
    }
    reasons = {
        "nonce": CloseReason.SELF_CONNECTION,
        "version": CloseReason.INCOMPATIBLE_VERSION,
        "encryption": CloseReason.ENCRYPTION_REQUIRED,
    }
    for name in CHECK_ORDER[role]:  # spec: HS-11
        if failing[name]:
            return reasons[name].label
    return ""


def run(data: bytes) -> None:
    reader = Reader(data)
    flags = reader.byte()
    role = Role.INITIATOR if flags & INITIATOR else Role.RESPONDER
    local = LocalHandshake(
        version=reader.uint(4),
        min_compatible_version=reader.uint(4),
        features=reader.uint(4),
        privacy_features=reader.uint(4),
        requires_encryption=bool(flags & REQUIRES_ENCRYPTION),
    )
    own_nonce = reader.uint(8)
    try:
        peer, _ = Handshake.decode(reader.rest())
    except DecodeError:
        return  # a named error of the wire layer: the decoder target's checks
    protocol = HandshakeProtocol(role, local, own_nonce, TIMESTAMP, {own_nonce})
    protocol.encrypted = bool(flags & ENCRYPTED_FIRST)
    own = protocol.own_handshake()
    frames, error = decode_frames(encode_frame(own))
    check(error is None and [f.message for f in frames] == [own], "own handshake round trip")
    if role is Role.INITIATOR:
        check(protocol.start() == own, "the initiator's first frame is not its handshake")
    outcome = protocol.receive(peer)

    want = expected(role, local, protocol.encrypted, own_nonce, peer)
    if want:
        check(isinstance(outcome, Rejected), f"accepted; {want} expected")
        assert isinstance(outcome, Rejected)
        check(outcome.reason.label == want, f"rejected {outcome.reason.label}; {want} expected")
        check(protocol.state is HandshakeState.FAILED, f"state {protocol.state} after a reject")
    else:
        check(isinstance(outcome, Accepted), f"rejected {outcome}; accepted expected")
        assert isinstance(outcome, Accepted)
        n = outcome.negotiated
        check(n.version == min(local.version, peer.version), "version (HS-15)")
        check(n.features == local.features & peer.features, "features (HS-16)")
        check(n.privacy_features == local.privacy_features & peer.privacy_features, "HS-16")
        check(
            (n.peer_version, n.peer_user_agent, n.peer_best_block_hash, n.peer_timestamp)
            == (peer.version, peer.user_agent, peer.best_block_hash, peer.timestamp),
            "the peer's values are not reported as sent (HS-17)",
        )
        check(n.peer_best_block_height == peer.best_block_height, "height (HS-17)")
        # spec: HS-2, HS-3 (the responder answers with its own handshake, the initiator never)
        reply = own if role is Role.RESPONDER else None
        check(outcome.reply == reply, f"reply {outcome.reply}; {reply} expected")
        check(protocol.state is HandshakeState.COMPLETE, f"state {protocol.state} after accept")
    try:
        protocol.receive(peer)
    except LocalProtocolError:
        pass  # a machine that has judged one handshake takes no other
    else:
        check(False, "a second handshake was judged")
