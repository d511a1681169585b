"""A stateful property test of the connection machine: random events, random bytes and valid
frames, in any order, against the invariants of spec/connection.md."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from obscura_ref.machines.connection import (
    CONNECTION_TRANSITIONS,
    TIMERS_OF_STATE,
    ConnState,
    Direction,
    Input,
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
    LocalProtocolError,
    MessageReceived,
    Misbehaviour,
    RttMeasured,
    SendBytes,
    SendMessage,
    TcpConnected,
    Timer,
    TimerExpired,
    TransportClosed,
    TransportFailed,
)
from obscura_ref.machines.reasons import LOCAL_REASONS, CloseReason
from obscura_ref.wire import (
    Disconnect,
    MessageType,
    Opaque,
    Ping,
    Pong,
    decode_frames,
    encode_frame,
)

from .machine_harness import new_machine
from .strategies import messages
from .test_handshake import peer_handshake

frames = st.one_of(
    st.builds(lambda: encode_frame(peer_handshake())),
    st.builds(lambda m: encode_frame(m), messages),
    st.builds(lambda n: encode_frame(Pong(n)), st.integers(0, 3)),
)


class ConnectionMachineRun(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.machine: PeerConnection | None = None
        self.now = 0.0
        self.timers: dict[object, float] = {}  # as the loop would see them, from the actions
        self.sending_closed = False  # a Disconnect or a transport close has been emitted
        self.closed_events: list[Closed] = []
        self.actions: list[Action] = []
        self.last_ping: int | None = None
        self.close_begun = False

    @rule(outbound=st.booleans(), seed=st.integers(0, 2**32))
    @precondition(lambda self: self.machine is None)
    def open(self, outbound: bool, seed: int) -> None:
        direction = Direction.OUTBOUND if outbound else Direction.INBOUND
        self.machine, _, start = new_machine(direction, seed=seed)
        self.record(start)

    def record(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendBytes):
                # spec: CONN-25 -- nothing after the Disconnect or the transport close.
                assert not self.sending_closed, "bytes sent after the close began"
                decoded, _ = decode_frames(action.data)
                for frame in decoded:
                    if isinstance(frame.message, Disconnect):
                        self.sending_closed = True
                    elif isinstance(frame.message, Ping):
                        self.last_ping = frame.message.nonce
            elif isinstance(action, CloseTransport | AbortTransport):
                self.sending_closed = True
                self.close_begun = True
            elif isinstance(action, MessageReceived | Established | RttMeasured):
                assert not self.close_begun, f"{action!r} after the close began"
            elif isinstance(action, ArmTimer):
                self.timers[action.timer] = action.deadline
            elif isinstance(action, CancelTimer):
                self.timers.pop(action.timer, None)
            elif isinstance(action, Closed):
                assert isinstance(action.reason, CloseReason)
                self.closed_events.append(action)
            elif isinstance(action, Misbehaviour):
                assert action.reason.value.misbehaviour
        self.actions += actions

    def feed(self, event: Event, allowed_to_fail: bool = False) -> None:
        assert self.machine is not None
        try:
            actions = self.machine.handle(event, self.now)
        except LocalProtocolError:
            assert allowed_to_fail, f"refused {event!r} in {self.machine.state.value}"
            return
        self.record(actions)

    def input_allowed(self, input_: Input) -> bool:
        assert self.machine is not None
        return (self.machine.state, input_) in CONNECTION_TRANSITIONS

    @precondition(lambda self: self.machine is not None)
    @rule()
    def tcp_connected(self) -> None:
        self.feed(TcpConnected(), allowed_to_fail=not self.input_allowed(Input.TCP_CONNECTED))

    @precondition(lambda self: self.machine is not None)
    @rule(data=st.one_of(st.binary(max_size=80), frames))
    def bytes_received(self, data: bytes) -> None:
        self.feed(BytesReceived(data), allowed_to_fail=not self.input_allowed(Input.BYTES_RECEIVED))

    @precondition(lambda self: self.machine is not None)
    @rule(event=st.sampled_from([EndOfStream(), TransportFailed("reset"), TransportClosed()]))
    def transport(self, event: Event) -> None:
        input_ = {
            EndOfStream: Input.END_OF_STREAM,
            TransportFailed: Input.TRANSPORT_FAILED,
            TransportClosed: Input.TRANSPORT_CLOSED,
        }[type(event)]
        self.feed(event, allowed_to_fail=not self.input_allowed(input_))

    @precondition(lambda self: self.machine is not None)
    @rule(reason=st.sampled_from(sorted(LOCAL_REASONS, key=lambda r: r.code)))
    def close(self, reason: CloseReason) -> None:
        self.feed(CloseRequested(reason), allowed_to_fail=not self.input_allowed(Input.CLOSE))

    @precondition(lambda self: self.machine is not None)
    @rule(payload=st.binary(max_size=20))
    def send(self, payload: bytes) -> None:
        self.feed(
            SendMessage(Opaque(MessageType.Inv, payload)),
            allowed_to_fail=not self.input_allowed(Input.SEND),
        )

    @precondition(lambda self: self.machine is not None and bool(self.timers))
    @rule()
    def earliest_timer_fires(self) -> None:
        timer, deadline = min(self.timers.items(), key=lambda item: item[1])
        self.now = max(self.now, deadline)
        del self.timers[timer]
        self.feed(TimerExpired(timer))  # type: ignore[arg-type]

    @precondition(lambda self: self.machine is not None)
    @rule(delay=st.floats(0, 100), timer_index=st.integers(0, 5))
    def time_passes_and_any_timer_fires(self, delay: float, timer_index: int) -> None:
        self.now += delay
        timer = list(Timer)[timer_index]
        if self.timers.get(timer, float("inf")) <= self.now:
            del self.timers[timer]  # a timer that fires is no longer armed, for the loop too
        self.feed(TimerExpired(timer))  # stale or early ones are ignored (KA-8)

    @precondition(lambda self: self.machine is not None)
    @rule(nonce=st.integers(0, 2**64 - 1))
    def peer_ping(self, nonce: int) -> None:
        self.feed(
            BytesReceived(encode_frame(Ping(nonce))),
            allowed_to_fail=not self.input_allowed(Input.BYTES_RECEIVED),
        )

    @precondition(lambda self: self.machine is not None)
    @rule()
    def peer_handshake(self) -> None:
        self.feed(
            BytesReceived(encode_frame(peer_handshake())),
            allowed_to_fail=not self.input_allowed(Input.BYTES_RECEIVED),
        )

    @precondition(lambda self: self.machine is not None and self.last_ping is not None)
    @rule()
    def peer_answers_the_last_ping(self) -> None:
        assert self.last_ping is not None
        self.feed(
            BytesReceived(encode_frame(Pong(self.last_ping))),
            allowed_to_fail=not self.input_allowed(Input.BYTES_RECEIVED),
        )

    @precondition(lambda self: self.machine is not None)
    @rule(payload=st.binary(max_size=20))
    def peer_sends_a_message(self, payload: bytes) -> None:
        self.feed(
            BytesReceived(encode_frame(Opaque(MessageType.Blocks, payload))),
            allowed_to_fail=not self.input_allowed(Input.BYTES_RECEIVED),
        )

    @invariant()
    def timers_belong_to_the_state(self) -> None:
        if self.machine is None:
            return
        armed = self.machine.armed_timers
        assert set(armed) <= TIMERS_OF_STATE[self.machine.state]
        assert armed == self.timers  # the loop's view and the machine's agree

    @invariant()
    def every_close_has_one_reason(self) -> None:
        if self.machine is None:
            return
        if self.machine.state is ConnState.CLOSED:
            assert len(self.closed_events) == 1
            assert self.closed_events[0].reason is self.machine.close_reason
        else:
            assert self.closed_events == []
        if self.machine.state is ConnState.CLOSING:
            assert self.machine.close_reason is not None


@pytest.mark.spec("CONN-25", "CONN-40", "KA-8", "CONN-41")
def test_random_runs_keep_the_invariants() -> None:
    run_state_machine_as_test(ConnectionMachineRun, settings=settings(max_examples=300))
