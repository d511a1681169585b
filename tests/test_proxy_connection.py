"""The connection machine's state `proxying` (spec/privacy.md section 4): each of its rules, fed
the bytes a fake SOCKS5 proxy would send."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from obscura_ref.machines.connection import ConnState, Direction, PeerConnection
from obscura_ref.machines.events import (
    AbortTransport,
    Action,
    ArmTimer,
    BytesReceived,
    CancelTimer,
    Closed,
    CloseRequested,
    EndOfStream,
    Established,
    LocalProtocolError,
    NodeLimit,
    ReleaseNonce,
    SendBytes,
    TcpConnected,
    Timer,
    TimerExpired,
    TransportFailed,
)
from obscura_ref.machines.handshake import LocalHandshake
from obscura_ref.machines.nonces import OwnNonces
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.transport.socks5 import Socks5Client, Socks5ErrorCode
from obscura_ref.wire import Handshake, Ping, decode_frames, encode_frame

from .machine_harness import SETTINGS, sent_bytes

PEER = ("192.0.2.7", 8333)
# What the client sends and a proxy answers (RFC 1928, RFC 1929), for the peer above.
GREETING = b"\x05\x01\x00"
GREETING_WITH_CREDENTIALS = b"\x05\x01\x02"
NO_AUTH_CHOSEN = b"\x05\x00"
CREDENTIALS_CHOSEN = b"\x05\x02"
CONNECT_REQUEST = b"\x05\x01\x00\x01" + bytes([192, 0, 2, 7]) + (8333).to_bytes(2, "big")
SUCCESS = b"\x05\x00\x00\x01" + bytes(4) + bytes(2)
REFUSED = b"\x05\x05\x00\x01" + bytes(4) + bytes(2)


def peer_handshake() -> Handshake:
    return Handshake(1, 5, 0x07, 0x11, "peer/1", b"\x07" * 32, 9, 42)


def proxied_machine(
    username: str | None = None, password: str | None = None
) -> tuple[PeerConnection, list[Action]]:
    """An outbound machine whose socket goes to a proxy, and its start's actions."""
    rng = random.Random(1)
    nonces = OwnNonces()
    machine = PeerConnection(
        Direction.OUTBOUND,
        0.0,
        SETTINGS,
        LocalHandshake(),
        nonces.issue(rng),
        1_700_000_000,
        nonces,
        rng,
        proxy=Socks5Client(*PEER, username, password),
    )
    return machine, machine.start()


def proxying() -> PeerConnection:
    """A proxied machine whose TCP connection to the proxy is open."""
    machine, _ = proxied_machine()
    machine.handle(TcpConnected(), 0.5)
    return machine


def asked_for_peer() -> PeerConnection:
    """A proxied machine that sent its CONNECT request and awaits the proxy's reply."""
    machine = proxying()
    machine.handle(BytesReceived(NO_AUTH_CHOSEN), 0.6)
    return machine


def closed(actions: Sequence[object]) -> Closed:
    (event,) = [a for a in actions if isinstance(a, Closed)]
    return event


def test_the_proxy_reasons_are_the_socks5_clients_codes() -> None:
    reasons = [CloseReason[code.name] for code in Socks5ErrorCode]
    assert [reason.label for reason in reasons] == [code.value for code in Socks5ErrorCode]
    assert [reason.code for reason in reasons] == [50, 51, 52, 53]
    assert not any(reason.value.sent or reason.value.misbehaviour for reason in reasons)
    assert {reason.requirement for reason in reasons} == {"PRIV-42"}


def test_only_an_outbound_connection_takes_a_proxy() -> None:
    rng = random.Random(1)
    nonces = OwnNonces()
    with pytest.raises(LocalProtocolError):
        PeerConnection(
            Direction.INBOUND,
            0.0,
            SETTINGS,
            LocalHandshake(),
            nonces.issue(rng),
            1,
            nonces,
            rng,
            proxy=Socks5Client(*PEER),
        )


@pytest.mark.spec("PRIV-40", "CONN-2")
def test_tcp_connected_to_the_proxy_sends_the_greeting_and_keeps_the_connect_timer() -> None:
    machine, start = proxied_machine()
    assert start == [ArmTimer(Timer.CONNECT, SETTINGS.connection_timeout)]
    actions = machine.handle(TcpConnected(), 0.5)
    assert actions == [SendBytes(GREETING)]  # no handshake yet: the proxy is not the peer
    assert machine.state is ConnState.PROXYING
    assert machine.armed_timers == {Timer.CONNECT: SETTINGS.connection_timeout}


@pytest.mark.spec("PRIV-40")
def test_the_proxys_method_choice_sends_the_connect_request_for_the_peer() -> None:
    machine = proxying()
    assert machine.handle(BytesReceived(NO_AUTH_CHOSEN[:1]), 0.6) == []  # more is awaited
    assert machine.handle(BytesReceived(NO_AUTH_CHOSEN[1:]), 0.6) == [SendBytes(CONNECT_REQUEST)]
    assert machine.state is ConnState.PROXYING


@pytest.mark.spec("PRIV-41")
def test_credentials_are_offered_and_sent_to_the_proxy() -> None:
    machine, _ = proxied_machine("user", "pass")
    assert machine.handle(TcpConnected(), 0.5) == [SendBytes(GREETING_WITH_CREDENTIALS)]
    actions = machine.handle(BytesReceived(CREDENTIALS_CHOSEN), 0.6)
    assert actions == [SendBytes(b"\x01\x04user\x04pass")]
    assert machine.handle(BytesReceived(b"\x01\x00"), 0.7) == [SendBytes(CONNECT_REQUEST)]
    assert machine.state is ConnState.PROXYING


@pytest.mark.spec("PRIV-40", "CONN-3", "HS-1", "HS-21")
def test_the_proxys_success_goes_on_as_a_tcp_connection_to_the_peer() -> None:
    machine = asked_for_peer()
    assert machine.handle(BytesReceived(SUCCESS[:5]), 0.8) == []  # a reply cut in two
    actions = machine.handle(BytesReceived(SUCCESS[5:]), 0.9)
    assert actions[:2] == [
        CancelTimer(Timer.CONNECT),
        ArmTimer(Timer.HANDSHAKE, 0.9 + SETTINGS.handshake_timeout),
    ]
    frames, error = decode_frames(sent_bytes(actions))
    assert error is None
    assert [type(frame.message) for frame in frames] == [Handshake]
    assert machine.state is ConnState.HANDSHAKING
    assert machine.armed_timers == {Timer.HANDSHAKE: 0.9 + SETTINGS.handshake_timeout}


@pytest.mark.spec("PRIV-40", "CONN-3")
def test_bytes_after_the_proxys_reply_are_the_peers_first_frames() -> None:
    machine = asked_for_peer()
    peer = encode_frame(peer_handshake()) + encode_frame(Ping(9))
    actions = machine.handle(BytesReceived(SUCCESS + peer), 0.9)
    assert sum(isinstance(a, Established) for a in actions) == 1
    assert machine.state is ConnState.ESTABLISHED
    frames, error = decode_frames(sent_bytes(actions))
    assert error is None
    assert [type(frame.message).__name__ for frame in frames] == ["Handshake", "Pong"]


@pytest.mark.spec("PRIV-42")
@pytest.mark.parametrize(
    ("answers", "reason", "detail"),
    [
        ([b"\x05\xff"], CloseReason.PROXY_AUTH_FAILED, ""),
        ([b"\x05\x02"], CloseReason.PROXY_GARBAGE, "not offered"),
        ([NO_AUTH_CHOSEN, REFUSED], CloseReason.PROXY_REFUSED, "connection refused"),
        ([b"HTTP/1.1 400 Bad"], CloseReason.PROXY_GARBAGE, ""),
        ([NO_AUTH_CHOSEN, b"\x05\x00\x00\x09" + bytes(6)], CloseReason.PROXY_GARBAGE, ""),
    ],
    ids=["no_method", "unoffered_method", "refused", "not_socks", "bad_address_type"],
)
def test_a_proxys_failure_closes_at_once_with_its_reason(
    answers: list[bytes], reason: CloseReason, detail: str
) -> None:
    machine = proxying()
    for answer in answers[:-1]:
        machine.handle(BytesReceived(answer), 0.6)
    actions = machine.handle(BytesReceived(answers[-1]), 0.7)
    assert sent_bytes(actions) == b""  # nothing to say to a proxy, nothing to the peer
    assert AbortTransport() in actions
    assert any(isinstance(a, ReleaseNonce) for a in actions)
    assert closed(actions).reason is reason
    assert detail in closed(actions).detail
    assert machine.state is ConnState.CLOSED
    assert machine.armed_timers == {}


@pytest.mark.spec("PRIV-41", "PRIV-42")
def test_refused_credentials_close_with_proxy_auth_failed() -> None:
    machine, _ = proxied_machine("user", "wrong")
    machine.handle(TcpConnected(), 0.5)
    machine.handle(BytesReceived(CREDENTIALS_CHOSEN), 0.6)
    actions = machine.handle(BytesReceived(b"\x01\x01"), 0.7)
    assert closed(actions).reason is CloseReason.PROXY_AUTH_FAILED
    assert AbortTransport() in actions


@pytest.mark.spec("PRIV-42")
@pytest.mark.parametrize("before", [[], [NO_AUTH_CHOSEN], [NO_AUTH_CHOSEN, SUCCESS[:3]]])
def test_the_proxy_ending_the_stream_closes_with_proxy_closed(before: list[bytes]) -> None:
    machine = proxying()
    for answer in before:
        machine.handle(BytesReceived(answer), 0.6)
    actions = machine.handle(EndOfStream(), 0.7)
    assert closed(actions).reason is CloseReason.PROXY_CLOSED
    assert AbortTransport() in actions
    assert machine.state is ConnState.CLOSED


@pytest.mark.spec("CONN-2")
def test_a_proxy_that_never_answers_closes_with_connect_timeout() -> None:
    machine = asked_for_peer()
    assert machine.handle(TimerExpired(Timer.CONNECT), 1.0) == [
        ArmTimer(Timer.CONNECT, SETTINGS.connection_timeout)  # early: armed again (KA-8)
    ]
    actions = machine.handle(TimerExpired(Timer.CONNECT), SETTINGS.connection_timeout)
    assert sent_bytes(actions) == b""
    assert AbortTransport() in actions
    assert closed(actions).reason is CloseReason.CONNECT_TIMEOUT
    assert machine.state is ConnState.CLOSED


@pytest.mark.spec("CONN-34")
def test_a_transport_failure_while_proxying_closes_with_network_error() -> None:
    machine = proxying()
    actions = machine.handle(TransportFailed("connection reset"), 0.6)
    assert closed(actions) == Closed(CloseReason.NETWORK_ERROR, "connection reset", None)
    assert AbortTransport() in actions
    assert machine.state is ConnState.CLOSED


@pytest.mark.spec("CONN-21")
def test_a_local_close_while_proxying_aborts_without_a_disconnect() -> None:
    machine = asked_for_peer()
    actions = machine.handle(CloseRequested(CloseReason.SHUTTING_DOWN), 0.7)
    assert sent_bytes(actions) == b""
    assert AbortTransport() in actions
    assert closed(actions).reason is CloseReason.SHUTTING_DOWN
    assert machine.state is ConnState.CLOSED


@pytest.mark.spec("NODE-2")
def test_a_node_limit_while_proxying_aborts_with_its_reason() -> None:
    machine = proxying()
    actions = machine.handle(NodeLimit(CloseReason.MEMORY_BUDGET), 0.6)
    assert closed(actions).reason is CloseReason.MEMORY_BUDGET
    assert AbortTransport() in actions
    assert machine.state is ConnState.CLOSED
