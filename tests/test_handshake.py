"""The handshake: spec/handshake.md, through the connection machine and back to back."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obscura_ref.machines.connection import ConnState, Direction
from obscura_ref.machines.events import (
    ArmTimer,
    BytesReceived,
    Closed,
    Established,
    LocalProtocolError,
    MessageReceived,
    Misbehaviour,
    ReleaseNonce,
    TcpConnected,
    Timer,
    TimerExpired,
)
from obscura_ref.machines.handshake import (
    MIN_COMPATIBLE_VERSION,
    PROTOCOL_VERSION,
    Accepted,
    HandshakeProtocol,
    HandshakeState,
    LocalHandshake,
    Rejected,
    Role,
)
from obscura_ref.machines.nonces import OwnNonces
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.wire import (
    Disconnect,
    Handshake,
    MessageType,
    Opaque,
    Ping,
    decode_frames,
    encode_frame,
)

from .machine_harness import SETTINGS, Pair, new_machine, sent_bytes


def peer_handshake(version: int = 1, nonce: int = 42, **fields: object) -> Handshake:
    values: dict[str, object] = {
        "version": version,
        "timestamp": 5,
        "features": 0x07,
        "privacy_features": 0x11,
        "user_agent": "peer/1",
        "best_block_hash": b"\x07" * 32,
        "best_block_height": 9,
        "nonce": nonce,
    }
    values.update(fields)
    return Handshake(**values)  # type: ignore[arg-type]


def messages_in(data: bytes) -> list[object]:
    frames, error = decode_frames(data)
    assert error is None
    return [frame.message for frame in frames]


def closed_of(actions: Sequence[object]) -> Closed:
    (closed,) = [a for a in actions if isinstance(a, Closed)]
    return closed


@pytest.mark.spec("HS-1", "HS-21", "CONN-3")
def test_initiator_sends_its_handshake_first_when_tcp_connects() -> None:
    machine, _, start = new_machine(Direction.OUTBOUND, now=100.0)
    assert start == [ArmTimer(Timer.CONNECT, 100.0 + SETTINGS.connection_timeout)]
    actions = machine.handle(TcpConnected(), 101.0)
    (first,) = messages_in(sent_bytes(actions))
    assert isinstance(first, Handshake) and first.nonce == machine.handshake.nonce
    assert ArmTimer(Timer.HANDSHAKE, 101.0 + SETTINGS.handshake_timeout) in actions
    assert machine.state is ConnState.HANDSHAKING


@pytest.mark.spec("HS-2", "HS-3", "HS-21", "CONN-1")
def test_responder_is_silent_until_it_accepts_then_answers_at_once() -> None:
    machine, _, start = new_machine(Direction.INBOUND, now=7.0)
    assert machine.state.value == "handshaking"
    assert start == [ArmTimer(Timer.HANDSHAKE, 7.0 + SETTINGS.handshake_timeout)]
    # Half a handshake: nothing sent yet.
    frame = encode_frame(peer_handshake())
    assert sent_bytes(machine.handle(BytesReceived(frame[:30]), 8.0)) == b""
    actions = machine.handle(BytesReceived(frame[30:]), 8.0)
    (reply,) = messages_in(sent_bytes(actions))
    assert isinstance(reply, Handshake) and reply.nonce == machine.handshake.nonce
    assert machine.state is ConnState.ESTABLISHED


@pytest.mark.spec("HS-14", "HS-17", "HS-13")
def test_established_reports_the_negotiated_record_and_releases_the_nonce() -> None:
    machine, nonces, _ = new_machine(
        Direction.INBOUND, local=LocalHandshake(features=0x0D, privacy_features=0x31)
    )
    own = machine.handshake.nonce
    assert own in nonces
    actions = machine.handle(BytesReceived(encode_frame(peer_handshake())), 1.0)
    assert ReleaseNonce(own) in actions
    (established,) = [a for a in actions if isinstance(a, Established)]
    n = established.negotiated
    assert (n.version, n.features, n.privacy_features) == (1, 0x05, 0x11)
    assert (n.peer_version, n.peer_user_agent, n.peer_timestamp) == (1, "peer/1", 5)
    assert (n.peer_best_block_hash, n.peer_best_block_height) == (b"\x07" * 32, 9)
    assert machine.negotiated == n


versions = st.integers(0, 5)


@pytest.mark.spec("HS-10", "HS-15", "HS-16", "HS-17")
@given(
    version_a=versions,
    min_a=versions,
    version_b=versions,
    min_b=versions,
    features_a=st.integers(0, 0xFFFF_FFFF),
    features_b=st.integers(0, 0xFFFF_FFFF),
    privacy_a=st.integers(0, 0xFFFF_FFFF),
    privacy_b=st.integers(0, 0xFFFF_FFFF),
    chunk=st.one_of(st.none(), st.integers(1, 40)),
)
def test_back_to_back_machines_agree_or_close_with_the_version_reason(
    version_a: int,
    min_a: int,
    version_b: int,
    min_b: int,
    features_a: int,
    features_b: int,
    privacy_a: int,
    privacy_b: int,
    chunk: int | None,
) -> None:
    local_a = LocalHandshake(
        version=version_a,
        min_compatible_version=min_a,
        features=features_a,
        privacy_features=privacy_a,
        user_agent="a/1",
    )
    local_b = LocalHandshake(
        version=version_b,
        min_compatible_version=min_b,
        features=features_b,
        privacy_features=privacy_b,
        user_agent="b/2",
    )
    pair = Pair(local_a, local_b, chunk=chunk)
    pair.connect()
    a, b = pair.a.machine, pair.b.machine
    if version_a < min_b:  # the responder checks first and rejects
        assert closed_of(pair.b.actions).reason is CloseReason.INCOMPATIBLE_VERSION
        assert closed_of(pair.a.actions).reason is CloseReason.PEER_DISCONNECTED
        assert closed_of(pair.a.actions).peer_reason == CloseReason.INCOMPATIBLE_VERSION.code
        assert not any(isinstance(x, Established) for x in pair.b.actions)
    elif version_b < min_a:  # the responder accepted; the initiator rejects its reply
        assert closed_of(pair.a.actions).reason is CloseReason.INCOMPATIBLE_VERSION
        assert closed_of(pair.b.actions).peer_reason == CloseReason.INCOMPATIBLE_VERSION.code
    else:
        assert a.state is b.state is ConnState.ESTABLISHED
        assert a.negotiated is not None and b.negotiated is not None
        assert a.negotiated.version == b.negotiated.version == min(version_a, version_b)
        assert a.negotiated.features == b.negotiated.features == features_a & features_b
        assert (
            a.negotiated.privacy_features
            == b.negotiated.privacy_features
            == (privacy_a & privacy_b)
        )
        # Each side's record of the other is what the other sent (HS-17).
        assert (a.negotiated.peer_version, a.negotiated.peer_user_agent) == (version_b, "b/2")
        assert (b.negotiated.peer_version, b.negotiated.peer_user_agent) == (version_a, "a/1")


@pytest.mark.spec("HS-12", "HS-13")
def test_a_node_connected_to_itself_closes_with_self_connection() -> None:
    pair = Pair(shared_nonces=True)
    pair.connect()
    assert not any(isinstance(x, Established) for x in pair.a.actions + pair.b.actions)
    # The responder side finds the initiator side's nonce among its own.
    assert closed_of(pair.b.actions).reason is CloseReason.SELF_CONNECTION
    assert closed_of(pair.a.actions).peer_reason == CloseReason.SELF_CONNECTION.code
    assert len(pair.a.nonces) == 0  # both nonces released


@pytest.mark.spec("HS-11", "HS-12")
def test_initiator_checks_nonce_before_version() -> None:
    machine, _, _ = new_machine(Direction.OUTBOUND, local=LocalHandshake(min_compatible_version=2))
    machine.handle(TcpConnected(), 0.0)
    bad_twice = peer_handshake(version=1, nonce=machine.handshake.nonce)
    actions = machine.handle(BytesReceived(encode_frame(bad_twice)), 1.0)
    assert messages_in(sent_bytes(actions)) == [Disconnect(CloseReason.SELF_CONNECTION.code)]


@pytest.mark.spec("HS-11", "HS-10")
def test_responder_checks_version_before_nonce() -> None:
    machine, _, _ = new_machine(Direction.INBOUND, local=LocalHandshake(min_compatible_version=2))
    bad_twice = peer_handshake(version=1, nonce=machine.handshake.nonce)
    actions = machine.handle(BytesReceived(encode_frame(bad_twice)), 1.0)
    assert messages_in(sent_bytes(actions)) == [Disconnect(CloseReason.INCOMPATIBLE_VERSION.code)]


@pytest.mark.spec("HS-20", "CONN-31")
@pytest.mark.parametrize(
    "message", [Ping(1), Opaque(MessageType.Inv, b"x")], ids=["ping", "opaque"]
)
def test_anything_but_a_handshake_first_is_unexpected(message: object) -> None:
    machine, _, _ = new_machine(Direction.INBOUND)
    actions = machine.handle(BytesReceived(encode_frame(message)), 1.0)  # type: ignore[arg-type]
    assert messages_in(sent_bytes(actions)) == [Disconnect(CloseReason.UNEXPECTED_MESSAGE.code)]
    (fault,) = [a for a in actions if isinstance(a, Misbehaviour)]
    assert fault.reason is CloseReason.UNEXPECTED_MESSAGE and fault.requirement == "HS-20"


@pytest.mark.spec("HS-20")
def test_a_second_handshake_is_unexpected() -> None:
    machine, _, _ = new_machine(Direction.INBOUND)
    machine.handle(BytesReceived(encode_frame(peer_handshake())), 1.0)
    actions = machine.handle(BytesReceived(encode_frame(peer_handshake())), 2.0)
    assert messages_in(sent_bytes(actions)) == [Disconnect(CloseReason.UNEXPECTED_MESSAGE.code)]
    assert machine.state is ConnState.CLOSING


@pytest.mark.spec("CONN-30")
def test_a_handshake_that_does_not_decode_is_invalid_message() -> None:
    machine, _, _ = new_machine(Direction.INBOUND)
    payload = peer_handshake().encode()[:40]
    frame = encode_frame(Opaque(MessageType.Inv, payload))
    broken = frame[:4] + b"\x01" + frame[5:]  # the type byte says Handshake
    actions = machine.handle(BytesReceived(broken), 1.0)
    assert messages_in(sent_bytes(actions)) == [Disconnect(CloseReason.INVALID_MESSAGE.code)]
    (fault,) = [a for a in actions if isinstance(a, Misbehaviour)]
    assert fault.wire_error is not None and fault.requirement == "WIRE-33"


@pytest.mark.spec("HS-22")
def test_silence_until_the_handshake_timeout_closes() -> None:
    machine, _, _ = new_machine(Direction.INBOUND, now=10.0)
    deadline = 10.0 + SETTINGS.handshake_timeout
    early = machine.handle(TimerExpired(Timer.HANDSHAKE), deadline - 0.001)
    assert early == [ArmTimer(Timer.HANDSHAKE, deadline)]
    actions = machine.handle(TimerExpired(Timer.HANDSHAKE), deadline)
    assert messages_in(sent_bytes(actions)) == [Disconnect(CloseReason.HANDSHAKE_TIMEOUT.code)]
    assert (
        machine.state is ConnState.CLOSING and machine.close_reason is CloseReason.HANDSHAKE_TIMEOUT
    )


@pytest.mark.spec("HS-13")
def test_own_nonces_are_fresh_and_released() -> None:
    class Repeating(random.Random):
        def __init__(self, values: list[int]) -> None:
            super().__init__()
            self.values = values

        def getrandbits(self, k: int, /) -> int:
            return self.values.pop(0)

    nonces = OwnNonces()
    rng = Repeating([5, 5, 5, 9])
    assert nonces.issue(rng) == 5
    assert nonces.issue(rng) == 9  # 5 is outstanding: drawn again
    nonces.release(5)
    assert 5 not in nonces and 9 in nonces


def test_handshake_machine_refuses_calls_out_of_order() -> None:
    protocol = HandshakeProtocol(Role.RESPONDER, LocalHandshake(), 1, 0, set())
    with pytest.raises(LocalProtocolError):
        protocol.start()
    outcome = protocol.receive(peer_handshake())
    assert isinstance(outcome, Accepted) and outcome.reply is not None
    assert protocol.state is HandshakeState.COMPLETE
    with pytest.raises(LocalProtocolError):
        protocol.receive(peer_handshake())
    rejecting = HandshakeProtocol(Role.INITIATOR, LocalHandshake(), 1, 0, {42})
    rejecting.start()
    assert isinstance(rejecting.receive(peer_handshake(nonce=42)), Rejected)
    assert rejecting.state is HandshakeState.FAILED


def test_constants_are_the_origins() -> None:
    assert (PROTOCOL_VERSION, MIN_COMPATIBLE_VERSION) == (1, 1)
    assert SETTINGS.handshake_timeout > 0


@pytest.mark.spec("HS-23")
def test_before_the_handshake_no_frame_may_exceed_a_handshake() -> None:
    machine, _, _ = new_machine(Direction.INBOUND)
    header_only = encode_frame(Opaque(MessageType.Blocks, bytes(1025)))[:16]
    actions = machine.handle(BytesReceived(header_only), 1.0)
    assert messages_in(sent_bytes(actions)) == [Disconnect(CloseReason.INVALID_MESSAGE.code)]
    (fault,) = [a for a in actions if isinstance(a, Misbehaviour)]
    assert fault.requirement == "WIRE-15" and "limit of 1024" in fault.detail


@pytest.mark.spec("HS-23")
def test_the_limit_lifts_for_the_frame_right_after_the_handshake() -> None:
    machine, _, _ = new_machine(Direction.INBOUND)
    big = Opaque(MessageType.Blocks, bytes(50_000))
    actions = machine.handle(BytesReceived(encode_frame(peer_handshake()) + encode_frame(big)), 1.0)
    assert machine.state.value == "established"
    assert [a.message for a in actions if isinstance(a, MessageReceived)] == [big]


@pytest.mark.spec("WIRE-46")
def test_a_node_sets_only_assigned_feature_bits_by_default() -> None:
    from obscura_ref.wire import Feature, PrivacyFeature

    local = LocalHandshake()
    assert local.features & ~sum(Feature) == 0
    assert local.privacy_features & ~sum(PrivacyFeature) == 0
