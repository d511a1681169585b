"""The connection machine: spec/connection.md. Every (state, input) pair, then each rule."""

from __future__ import annotations

import dataclasses
import gc
import random
import weakref
from typing import Any

import pytest

from obscura_ref.machines.connection import (
    CONNECTION_TRANSITIONS,
    TIMERS_OF_STATE,
    ConnectionSettings,
    ConnState,
    Direction,
    Input,
    PeerConnection,
)
from obscura_ref.machines.events import (
    AbortTransport,
    ArmTimer,
    BytesReceived,
    CancelTimer,
    Closed,
    CloseRequested,
    CloseTransport,
    EndOfStream,
    Event,
    LocalProtocolError,
    MessageReceived,
    Misbehaviour,
    NodeLimit,
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
from obscura_ref.machines.handshake import LocalHandshake
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.wire import (
    Disconnect,
    Handshake,
    MessageType,
    Opaque,
    Ping,
    Pong,
    encode_frame,
)

from .machine_harness import SETTINGS, new_machine, sent_bytes
from .test_handshake import closed_of, messages_in, peer_handshake
from .test_proxy_connection import proxied_machine

FRAME_OF_INPUT = {
    Input.HANDSHAKE_FRAME: encode_frame(peer_handshake()),
    Input.PING_FRAME: encode_frame(Ping(77)),
    Input.PONG_FRAME: encode_frame(Pong(78)),
    Input.DISCONNECT_FRAME: encode_frame(Disconnect(1)),
    Input.OTHER_FRAME: encode_frame(Opaque(MessageType.Blocks, b"block")),
    Input.DUMMY_FRAME: encode_frame(Opaque(MessageType.Dummy, b"nothing")),
    # The magic, then a type no registry has: a frame's start, so never taken for the start of
    # an encrypted-first connection (PRIV-53).
    Input.INVALID_FRAME: bytes.fromhex("4f425800") + b"\xff" * 12,
}
TIMER_OF_INPUT = {
    Input.CONNECT_TIMER: Timer.CONNECT,
    Input.HANDSHAKE_TIMER: Timer.HANDSHAKE,
    Input.PING_TIMER: Timer.PING,
    Input.PONG_TIMER: Timer.PONG,
    Input.INACTIVITY_TIMER: Timer.INACTIVITY,
    Input.CLOSE_TIMER: Timer.CLOSE,
    Input.SHAPE_TIMER: Timer.SHAPE,
    Input.DUMMY_TIMER: Timer.DUMMY,
}
# Armed on a shaped encrypted connection only (spec/privacy.md section 5), which these plaintext
# machines are not: tests/test_secure_connection.py runs them.
SHAPING_TIMERS = {Timer.SHAPE, Timer.DUMMY}
OTHER_EVENTS: dict[Input, Event] = {
    Input.TCP_CONNECTED: TcpConnected(),
    Input.BYTES_RECEIVED: BytesReceived(b""),
    Input.END_OF_STREAM: EndOfStream(),
    Input.TRANSPORT_FAILED: TransportFailed("connection reset"),
    Input.TRANSPORT_CLOSED: TransportClosed(),
    Input.SEND: SendMessage(Opaque(MessageType.Inv, b"i")),
    Input.CLOSE: CloseRequested(CloseReason.REQUESTED),
    Input.NODE_LIMIT: NodeLimit(CloseReason.SEND_QUEUE_FULL),
}


def machine_in(state: ConnState) -> tuple[PeerConnection, float]:
    """A machine in ``state`` with every timer of that state armed, and the time it is at."""
    if state is ConnState.CONNECTING:
        machine, _, _ = new_machine(Direction.OUTBOUND)
        return machine, 0.0
    if state is ConnState.PROXYING:  # the TCP connection to the proxy is open (PRIV-40)
        machine, _ = proxied_machine()
        machine.handle(TcpConnected(), 0.0)
        return machine, 0.0
    if state is ConnState.SECURING:  # both handshakes offer encryption (PRIV-11)
        machine, _, _ = new_machine(Direction.INBOUND, local=LocalHandshake(privacy_features=0x80))
        offer = dataclasses.replace(peer_handshake(), privacy_features=0x80)
        machine.handle(BytesReceived(encode_frame(offer)), 1.0)
        return machine, 1.0
    machine, _, _ = new_machine(Direction.INBOUND)
    if state is ConnState.HANDSHAKING:
        return machine, 0.0
    machine.handle(BytesReceived(encode_frame(peer_handshake())), 1.0)
    now = 1.0 + SETTINGS.ping_interval
    machine.handle(TimerExpired(Timer.PING), now)  # a ping is outstanding: PONG armed too
    if state is ConnState.ESTABLISHED:
        return machine, now
    machine.handle(CloseRequested(CloseReason.REQUESTED), now)
    if state is ConnState.CLOSING:
        return machine, now
    machine.handle(TransportClosed(), now)
    return machine, now


def event_for(input_: Input) -> Event:
    if input_ in FRAME_OF_INPUT:
        return BytesReceived(FRAME_OF_INPUT[input_])
    if input_ in TIMER_OF_INPUT:
        return TimerExpired(TIMER_OF_INPUT[input_])
    return OTHER_EVENTS[input_]


@pytest.mark.spec("CONN-41", "KA-8", "CONN-24")
# A record error needs an encrypted machine: tests/test_secure_connection.py feeds those.
@pytest.mark.parametrize(
    "input_", [i for i in Input if i is not Input.BROKEN_RECORD], ids=lambda i: i.value
)
@pytest.mark.parametrize("state", list(ConnState), ids=lambda s: s.value)
def test_every_state_and_input_pair(state: ConnState, input_: Input) -> None:
    machine, now = machine_in(state)
    assert set(machine.armed_timers) == TIMERS_OF_STATE[state] - SHAPING_TIMERS
    event = event_for(input_)
    later = now + 1000.0  # past every deadline
    decodes = state in (ConnState.HANDSHAKING, ConnState.ESTABLISHED)
    if input_ in FRAME_OF_INPUT and state is ConnState.SECURING:
        # Bytes in securing are the Noise handshake's: a frame there closes the connection
        # (PRIV-23), and a Disconnect is the initiator's rejection (CONN-22).
        machine.handle(event, later)
        assert machine.state is ConnState.CLOSING
        return
    if input_ in FRAME_OF_INPUT and state is ConnState.PROXYING:
        # Bytes in proxying are the proxy's: no frame's first byte is SOCKS5's version, so each
        # breaks RFC 1928 and closes the connection at once (PRIV-42).
        actions = machine.handle(event, later)
        assert machine.state is ConnState.CLOSED
        assert closed_of(actions).reason is CloseReason.PROXY_GARBAGE
        return
    if input_ in FRAME_OF_INPUT and not decodes:
        # Frames only exist where bytes are decoded; elsewhere the bytes are refused
        # (connecting: nothing can arrive) or discarded undecoded (closing, closed).
        if state is ConnState.CONNECTING:
            with pytest.raises(LocalProtocolError):
                machine.handle(event, later)
        else:
            actions = machine.handle(event, later)
            assert not any(isinstance(a, SendBytes | MessageReceived) for a in actions)
            assert machine.state is state
        return
    if input_ in TIMER_OF_INPUT and TIMER_OF_INPUT[input_] not in TIMERS_OF_STATE[state]:
        assert machine.handle(event, later) == []  # not armed here: ignored
        assert machine.state is state
        return
    rule = CONNECTION_TRANSITIONS.get((state, input_))
    if rule is None:
        with pytest.raises(LocalProtocolError):
            machine.handle(event, later)
        return
    actions = machine.handle(event, later)
    assert machine.state in rule.targets
    assert set(machine.armed_timers) <= TIMERS_OF_STATE[machine.state]
    if machine.state is ConnState.CLOSED and state is not ConnState.CLOSED:
        assert sum(isinstance(a, Closed) for a in actions) == 1
    if state is ConnState.CLOSED:
        assert actions == []


def test_the_table_covers_every_frame_input_where_frames_are_decoded() -> None:
    for state in (ConnState.HANDSHAKING, ConnState.ESTABLISHED):
        for input_ in FRAME_OF_INPUT:
            assert (state, input_) in CONNECTION_TRANSITIONS
        assert (state, Input.BYTES_RECEIVED) in CONNECTION_TRANSITIONS


# What the driver asks of the machine instead of comparing states (node.py): each property
# and the states it is true in.
STATES_OF_PROPERTY: dict[str, set[ConnState]] = {
    "is_connecting": {ConnState.CONNECTING},
    "is_open": {ConnState.HANDSHAKING, ConnState.SECURING, ConnState.ESTABLISHED},
    "accepts_app_messages": {ConnState.ESTABLISHED},
    "reads": {
        ConnState.PROXYING,
        ConnState.HANDSHAKING,
        ConnState.SECURING,
        ConnState.ESTABLISHED,
        ConnState.CLOSING,
    },
    "is_closing": {ConnState.CLOSING},
    "is_live": {
        ConnState.CONNECTING,
        ConnState.PROXYING,
        ConnState.HANDSHAKING,
        ConnState.SECURING,
        ConnState.ESTABLISHED,
    },
}


@pytest.mark.parametrize("name", list(STATES_OF_PROPERTY))
def test_state_properties_hold_exactly_in_the_states_they_name(name: str) -> None:
    holds_in = {state for state in ConnState if getattr(machine_in(state)[0], name)}
    assert holds_in == STATES_OF_PROPERTY[name]


def established(now: float = 1.0) -> PeerConnection:
    machine, _, _ = new_machine(Direction.INBOUND)
    machine.handle(BytesReceived(encode_frame(peer_handshake())), now)
    assert machine.state is ConnState.ESTABLISHED
    return machine


@pytest.mark.spec("CONN-2")
def test_connect_timeout_abandons_without_sending() -> None:
    machine, _, _ = new_machine(Direction.OUTBOUND, now=0.0)
    actions = machine.handle(TimerExpired(Timer.CONNECT), SETTINGS.connection_timeout)
    assert sent_bytes(actions) == b""
    assert AbortTransport() in actions
    assert closed_of(actions).reason is CloseReason.CONNECT_TIMEOUT
    assert machine.state is ConnState.CLOSED


@pytest.mark.spec("CONN-10")
def test_opaque_messages_are_delivered_in_order_even_in_one_chunk() -> None:
    machine = established()
    messages = [Opaque(MessageType.Inv, bytes([i])) for i in range(5)]
    actions = machine.handle(BytesReceived(b"".join(encode_frame(m) for m in messages)), 2.0)
    assert [a.message for a in actions if isinstance(a, MessageReceived)] == messages


@pytest.mark.spec("CONN-11")
def test_application_sends_only_opaque_messages_and_only_when_established() -> None:
    machine, _, _ = new_machine(Direction.INBOUND)
    with pytest.raises(LocalProtocolError):
        machine.handle(SendMessage(Opaque(MessageType.Inv, b"x")), 0.5)
    machine.handle(BytesReceived(encode_frame(peer_handshake())), 1.0)
    for internal in (Ping(1), Pong(1), Disconnect(1), peer_handshake()):
        with pytest.raises(LocalProtocolError):
            machine.handle(SendMessage(internal), 2.0)
    actions = machine.handle(SendMessage(Opaque(MessageType.Inv, b"x")), 2.0)
    assert messages_in(sent_bytes(actions)) == [Opaque(MessageType.Inv, b"x")]


@pytest.mark.spec("KA-1", "KA-3")
def test_pings_go_out_every_interval_with_fresh_nonces() -> None:
    machine = established(now=1.0)
    first_deadline = 1.0 + SETTINGS.ping_interval
    assert machine.armed_timers[Timer.PING] == first_deadline
    nonces = []
    now = first_deadline
    for _ in range(3):
        actions = machine.handle(TimerExpired(Timer.PING), now)
        (ping,) = messages_in(sent_bytes(actions))
        assert isinstance(ping, Ping)
        nonces.append(ping.nonce)
        assert ArmTimer(Timer.PONG, now + SETTINGS.ping_timeout) in actions
        assert ArmTimer(Timer.PING, now + SETTINGS.ping_interval) in actions
        machine.handle(BytesReceived(encode_frame(Pong(ping.nonce))), now + 0.25)
        now += SETTINGS.ping_interval
    assert len(set(nonces)) == 3


@pytest.mark.spec("KA-2")
def test_a_ping_is_answered_with_its_nonce_at_once() -> None:
    machine = established()
    actions = machine.handle(BytesReceived(encode_frame(Ping(0xABCDEF))), 2.0)
    assert messages_in(sent_bytes(actions)) == [Pong(0xABCDEF)]


@pytest.mark.spec("KA-3")
def test_no_pong_and_no_byte_within_ping_timeout_closes() -> None:
    machine = established(now=0.0)
    machine.handle(TimerExpired(Timer.PING), SETTINGS.ping_interval)
    deadline = SETTINGS.ping_interval + SETTINGS.ping_timeout
    actions = machine.handle(TimerExpired(Timer.PONG), deadline)
    assert messages_in(sent_bytes(actions)) == [Disconnect(CloseReason.PING_TIMEOUT.code)]
    assert machine.close_reason is CloseReason.PING_TIMEOUT


@pytest.mark.spec("KA-3")
def test_bytes_still_arriving_keep_an_unanswered_ping_alive() -> None:
    # A large frame still arriving holds the pong back: the silence, not the ping, is timed.
    machine = established(now=0.0)
    sent_at = SETTINGS.ping_interval
    machine.handle(TimerExpired(Timer.PING), sent_at)
    big = encode_frame(Opaque(MessageType.Blocks, bytes(100_000)))
    machine.handle(BytesReceived(big[:50_000]), sent_at + SETTINGS.ping_timeout - 1)
    deadline = sent_at + SETTINGS.ping_timeout
    actions = machine.handle(TimerExpired(Timer.PONG), deadline)
    assert actions == [ArmTimer(Timer.PONG, deadline - 1 + SETTINGS.ping_timeout)]
    machine.handle(BytesReceived(big[50_000:]), deadline + 1)
    (ping,) = [a for a in [machine.outstanding_ping] if a is not None]
    actions = machine.handle(BytesReceived(encode_frame(Pong(ping[0]))), deadline + 2)
    assert RttMeasured(deadline + 2 - sent_at) in actions
    assert machine.state is ConnState.ESTABLISHED


@pytest.mark.spec("KA-9")
def test_no_second_ping_while_one_is_outstanding() -> None:
    settings = ConnectionSettings(ping_interval=10, ping_timeout=4)
    machine, _, _ = new_machine(Direction.INBOUND, settings=settings)
    machine.handle(BytesReceived(encode_frame(peer_handshake())), 0.0)
    first = machine.handle(TimerExpired(Timer.PING), 10.0)
    assert len(messages_in(sent_bytes(first))) == 1
    # Bytes keep arriving, so the unanswered ping is not yet a timeout ...
    machine.handle(BytesReceived(encode_frame(Ping(1))), 13.9)
    machine.handle(TimerExpired(Timer.PONG), 14.0)
    machine.handle(BytesReceived(encode_frame(Ping(2))), 17.0)
    # ... and the next interval sends no second ping.
    again = machine.handle(TimerExpired(Timer.PING), 20.0)
    assert sent_bytes(again) == b"" and ArmTimer(Timer.PING, 30.0) in again


@pytest.mark.spec("KA-4")
def test_round_trip_time_is_measured() -> None:
    machine = established(now=0.0)
    actions = machine.handle(TimerExpired(Timer.PING), 10.0)
    (ping,) = messages_in(sent_bytes(actions))
    assert isinstance(ping, Ping)
    actions = machine.handle(BytesReceived(encode_frame(Pong(ping.nonce))), 10.375)
    assert RttMeasured(0.375) in actions and CancelTimer(Timer.PONG) in actions
    assert machine.last_rtt == 0.375
    assert Timer.PONG not in machine.armed_timers


@pytest.mark.spec("KA-5")
def test_an_unsolicited_pong_is_reported_and_ignored() -> None:
    machine = established()
    actions = machine.handle(BytesReceived(encode_frame(Pong(5))), 2.0)
    assert actions == [UnsolicitedPong(5)]
    assert machine.state is ConnState.ESTABLISHED


@pytest.mark.spec("KA-6")
def test_inactivity_closes_only_after_a_full_silent_period() -> None:
    settings = ConnectionSettings(ping_interval=100, ping_timeout=50, inactivity_timeout=30)
    machine, _, _ = new_machine(Direction.INBOUND, settings=settings)
    machine.handle(BytesReceived(encode_frame(peer_handshake())), 0.0)
    assert machine.armed_timers[Timer.INACTIVITY] == 30.0
    machine.handle(BytesReceived(encode_frame(Opaque(MessageType.Inv, b""))), 20.0)
    actions = machine.handle(TimerExpired(Timer.INACTIVITY), 30.0)
    assert actions == [ArmTimer(Timer.INACTIVITY, 50.0)]  # re-armed from the last byte
    actions = machine.handle(TimerExpired(Timer.INACTIVITY), 50.0)
    assert messages_in(sent_bytes(actions)) == [Disconnect(CloseReason.INACTIVITY_TIMEOUT.code)]


@pytest.mark.spec("KA-7")
@pytest.mark.parametrize(
    "values",
    [
        {"ping_interval": 10, "ping_timeout": 10},
        {"ping_interval": 10, "ping_timeout": 11},
        {"handshake_timeout": 0},
        {"close_timeout": -1},
        {"inactivity_timeout": True},
    ],
)
def test_settings_out_of_range_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ConnectionSettings(**values)


@pytest.mark.spec("KA-8")
def test_a_stale_timer_is_ignored_and_an_early_one_armed_again() -> None:
    machine = established(now=0.0)
    early = SETTINGS.ping_interval - 0.5
    assert machine.handle(TimerExpired(Timer.PING), early) == [
        ArmTimer(Timer.PING, SETTINGS.ping_interval)
    ]
    assert machine.armed_timers[Timer.PING] == SETTINGS.ping_interval
    assert machine.handle(TimerExpired(Timer.HANDSHAKE), 500.0) == []
    assert machine.handle(TimerExpired(Timer.PONG), 500.0) == []


@pytest.mark.spec("CONN-20", "CONN-25")
def test_local_close_sends_disconnect_after_queued_frames_then_nothing_more() -> None:
    machine = established()
    sent = machine.handle(SendMessage(Opaque(MessageType.Inv, b"first")), 2.0)
    actions = machine.handle(CloseRequested(CloseReason.SHUTTING_DOWN), 2.0)
    kinds = [type(a) for a in actions if isinstance(a, SendBytes | CloseTransport)]
    assert kinds == [SendBytes, CloseTransport]
    assert messages_in(sent_bytes(sent + actions)) == [
        Opaque(MessageType.Inv, b"first"),
        Disconnect(CloseReason.SHUTTING_DOWN.code),
    ]
    later = machine.handle(BytesReceived(encode_frame(Ping(1))), 2.5)
    later += machine.handle(EndOfStream(), 2.6)
    assert sent_bytes(later) == b""
    with pytest.raises(LocalProtocolError):
        machine.handle(SendMessage(Opaque(MessageType.Inv, b"late")), 2.7)
    actions = machine.handle(TransportClosed(), 3.0)
    assert closed_of(actions).reason is CloseReason.SHUTTING_DOWN


def test_only_local_reasons_can_be_requested() -> None:
    machine = established()
    with pytest.raises(LocalProtocolError):
        machine.handle(CloseRequested(CloseReason.PING_TIMEOUT), 2.0)


@pytest.mark.spec("CONN-21", "CONN-26")
def test_close_while_connecting_is_immediate_and_repeated_closes_are_done() -> None:
    machine, _, _ = new_machine(Direction.OUTBOUND)
    actions = machine.handle(CloseRequested(CloseReason.REQUESTED), 1.0)
    assert sent_bytes(actions) == b"" and AbortTransport() in actions
    assert closed_of(actions).reason is CloseReason.REQUESTED
    assert machine.handle(CloseRequested(CloseReason.SHUTTING_DOWN), 2.0) == []
    other = established()
    other.handle(CloseRequested(CloseReason.REQUESTED), 2.0)
    assert other.handle(CloseRequested(CloseReason.SHUTTING_DOWN), 2.1) == []
    assert other.close_reason is CloseReason.REQUESTED


@pytest.mark.spec("CONN-22")
def test_a_received_disconnect_closes_without_reply_and_reports_its_code() -> None:
    machine = established()
    actions = machine.handle(BytesReceived(encode_frame(Disconnect(4242))), 2.0)
    assert sent_bytes(actions) == b""
    assert CloseTransport() in actions
    actions = machine.handle(TransportClosed(), 2.1)
    closed = closed_of(actions)
    assert closed.reason is CloseReason.PEER_DISCONNECTED and closed.peer_reason == 4242


@pytest.mark.spec("CONN-23")
def test_a_close_that_cannot_flush_is_aborted_at_close_timeout() -> None:
    machine = established()
    actions = machine.handle(CloseRequested(CloseReason.REQUESTED), 2.0)
    assert ArmTimer(Timer.CLOSE, 2.0 + SETTINGS.close_timeout) in actions
    actions = machine.handle(TimerExpired(Timer.CLOSE), 2.0 + SETTINGS.close_timeout)
    assert actions[0] == AbortTransport()
    assert closed_of(actions).reason is CloseReason.REQUESTED


@pytest.mark.spec("CONN-24")
def test_frames_after_the_one_that_closed_are_discarded() -> None:
    machine = established()
    chunk = (
        encode_frame(Opaque(MessageType.Inv, b"1"))
        + encode_frame(Disconnect(1))
        + encode_frame(Opaque(MessageType.Inv, b"2"))
        + encode_frame(Ping(3))
    )
    actions = machine.handle(BytesReceived(chunk), 2.0)
    assert [a.message for a in actions if isinstance(a, MessageReceived)] == [
        Opaque(MessageType.Inv, b"1")
    ]
    assert sent_bytes(actions) == b""  # no pong for the ping after the Disconnect


@pytest.mark.spec("CONN-30", "CONN-31")
def test_garbage_closes_with_invalid_message_and_names_the_wire_rule() -> None:
    machine = established()
    actions = machine.handle(BytesReceived(b"\x4f\x42\x58\x01"), 2.0)
    assert messages_in(sent_bytes(actions)) == [Disconnect(CloseReason.INVALID_MESSAGE.code)]
    (fault,) = [a for a in actions if isinstance(a, Misbehaviour)]
    assert fault.reason is CloseReason.INVALID_MESSAGE and fault.requirement == "WIRE-5"


@pytest.mark.spec("CONN-33")
def test_end_of_stream_closes_without_disconnect() -> None:
    machine = established()
    actions = machine.handle(EndOfStream(), 2.0)
    assert sent_bytes(actions) == b"" and CloseTransport() in actions
    assert machine.close_reason is CloseReason.PEER_CLOSED
    cut = established()
    cut.handle(BytesReceived(encode_frame(Ping(1))[:10]), 2.0)
    actions = cut.handle(EndOfStream(), 2.1)
    assert sent_bytes(actions) == b""
    (fault,) = [a for a in actions if isinstance(a, Misbehaviour)]
    assert fault.requirement == "WIRE-11" and cut.close_reason is CloseReason.INVALID_MESSAGE


@pytest.mark.spec("CONN-34", "CONN-40")
def test_transport_failure_closes_at_once_and_reports_once() -> None:
    machine = established()
    actions = machine.handle(TransportFailed("connection reset by peer"), 2.0)
    closed = closed_of(actions)
    assert closed.reason is CloseReason.NETWORK_ERROR and "reset" in closed.detail
    assert machine.state is ConnState.CLOSED and machine.armed_timers == {}
    for event in (TransportClosed(), EndOfStream(), BytesReceived(b"x"), TransportFailed("again")):
        assert machine.handle(event, 3.0) == []


def test_machines_refuse_use_before_start() -> None:
    machine = PeerConnection(
        Direction.INBOUND, 0.0, SETTINGS, LocalHandshake(), 1, 0, set(), random.Random(1)
    )
    with pytest.raises(LocalProtocolError):
        machine.handle(EndOfStream(), 1.0)
    machine.start()
    with pytest.raises(LocalProtocolError):
        machine.start()


def test_handshake_frame_type_is_what_the_initiator_sends() -> None:
    machine, _, _ = new_machine(Direction.OUTBOUND)
    assert isinstance(messages_in(sent_bytes(machine.handle(TcpConnected(), 0.0)))[0], Handshake)


def test_a_machine_runs_the_rows_of_the_table_as_they_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The table stays the source: a machine looks up the handler a row names when the row
    # applies, so a changed row is the row that runs.
    machine = established()
    row = (ConnState.ESTABLISHED, Input.PING_FRAME)
    ignored = dataclasses.replace(CONNECTION_TRANSITIONS[row], handler="_ignore")
    monkeypatch.setitem(CONNECTION_TRANSITIONS, row, ignored)
    assert sent_bytes(machine.handle(BytesReceived(encode_frame(Ping(7))), 2.0)) == b""


def test_a_machine_is_freed_without_the_garbage_collector() -> None:
    # Nothing of a machine refers back to it, so a node's closed connections go at once.
    machine = established()
    machine.handle(BytesReceived(encode_frame(Ping(7))), 2.0)
    machine.handle(TimerExpired(Timer.PING), 1.0 + SETTINGS.ping_interval)
    ref = weakref.ref(machine)
    gc.disable()
    try:
        del machine
        assert ref() is None
    finally:
        gc.enable()


def test_an_observer_is_told_each_rule_and_each_frame_sent() -> None:
    from obscura_ref.machines.connection import FrameSent, Observation, RuleApplied

    seen: list[Observation] = []
    machine, _, _ = new_machine(Direction.INBOUND)
    machine.observer = seen.append
    machine.handle(BytesReceived(encode_frame(peer_handshake()) + encode_frame(Ping(9))), 1.0)
    rules = [(o.state, o.input) for o in seen if isinstance(o, RuleApplied)]
    assert rules == [
        (ConnState.HANDSHAKING, Input.BYTES_RECEIVED),
        (ConnState.HANDSHAKING, Input.HANDSHAKE_FRAME),
        (ConnState.ESTABLISHED, Input.PING_FRAME),
    ]
    sent = [o.message for o in seen if isinstance(o, FrameSent)]
    assert [type(m).__name__ for m in sent] == ["Handshake", "Pong"]
    assert all(o.size > 16 and not o.sealed for o in seen if isinstance(o, FrameSent))
