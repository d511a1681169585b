"""Timers that always make progress: spec/connection.md KA-10 and spec/config.md CFG-5.

A timer fired at the deadline it was armed for acts; it is never armed again for that same
instant, which under a clock that does not move would fire it again without end."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obscura_ref.config import KEYS, ConfigError, NodeConfig, load
from obscura_ref.loop import EventLoop, TimerHandle
from obscura_ref.machines.connection import (
    MIN_DURATION,
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
    Timer,
    TimerExpired,
)
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.manager.settings import ManagerSettings
from obscura_ref.node import Node
from obscura_ref.wire import Disconnect, MessageType, Opaque, Ping, encode_frame

from .machine_harness import new_machine, sent_bytes
from .test_handshake import messages_in, peer_handshake

HANDSHAKE = encode_frame(peer_handshake())
ACTIVITY = encode_frame(Opaque(MessageType.Inv, b"inv"))
DAY = 86_400.0

# (moment counted from, duration) where the difference at the deadline rounds below the
# duration: (1000.1 + 300) - 1000.1 == 299.9999999999999 (spec/connection.md section 4).
ROUNDING = [(1000.1, 300.0), (1000.1, 0.3), (1.6, 2.5), (1000.1, 25.0)]


def test_the_rounding_cases_are_the_ones_a_difference_misjudges() -> None:
    for since, duration in ROUNDING:
        assert (since + duration) - since < duration, (since, duration)


def settings_with(**given: float) -> ConnectionSettings:
    """Settings whose other durations stay out of the way of the timer under test."""
    values: dict[str, Any] = {
        "connection_timeout": 7.0,
        "handshake_timeout": 7.0,
        "ping_interval": 5_000.0,
        "ping_timeout": 2_000.0,
        "inactivity_timeout": 10_000.0,
        "close_timeout": 7.0,
    }
    values.update(given)
    return ConnectionSettings(**values)


def established(settings: ConnectionSettings, last_received: float) -> PeerConnection:
    """An inbound machine whose peer's handshake, its last byte so far, came at
    ``last_received``."""
    machine, _, _ = new_machine(Direction.INBOUND, settings=settings, now=last_received - 0.5)
    machine.handle(BytesReceived(HANDSHAKE), last_received)
    assert machine.state is ConnState.ESTABLISHED and machine.last_received == last_received
    return machine


def fire_at_deadline(machine: PeerConnection, timer: Timer) -> tuple[float, list[Action]]:
    """Fire ``timer`` exactly at the deadline it is armed for, under a clock that stays there;
    check that nothing is armed for that instant or before it."""
    now = machine.armed_timers[timer]
    actions = machine.handle(TimerExpired(timer), now)
    assert_progress(actions, now)
    return now, actions


def assert_progress(actions: list[Action], now: float) -> None:
    rearmed = [a for a in actions if isinstance(a, ArmTimer) and a.deadline <= now]
    assert rearmed == [], f"armed again for the instant {now!r}"


def disconnect_reasons(actions: list[Action]) -> list[int]:
    return [m.reason for m in messages_in(sent_bytes(actions)) if isinstance(m, Disconnect)]


# ---- (a) each timer acts at its deadline ----------------------------------------------------


@pytest.mark.spec("KA-10", "KA-6")
@pytest.mark.parametrize(("since", "duration"), ROUNDING)
def test_the_inactivity_timer_closes_at_its_deadline(since: float, duration: float) -> None:
    machine = established(settings_with(inactivity_timeout=duration), since)
    assert machine.armed_timers[Timer.INACTIVITY] == since + duration
    _, actions = fire_at_deadline(machine, Timer.INACTIVITY)
    assert disconnect_reasons(actions) == [CloseReason.INACTIVITY_TIMEOUT.code]
    assert machine.state is ConnState.CLOSING


@pytest.mark.spec("KA-10", "KA-6")
@pytest.mark.parametrize(("since", "duration"), ROUNDING)
def test_the_inactivity_timer_rearmed_from_a_later_byte_closes_at_its_new_deadline(
    since: float, duration: float
) -> None:
    machine = established(settings_with(inactivity_timeout=duration), since - duration / 2)
    machine.handle(BytesReceived(ACTIVITY), since)
    _, actions = fire_at_deadline(machine, Timer.INACTIVITY)
    assert actions == [ArmTimer(Timer.INACTIVITY, since + duration)]  # from the later byte
    _, actions = fire_at_deadline(machine, Timer.INACTIVITY)
    assert disconnect_reasons(actions) == [CloseReason.INACTIVITY_TIMEOUT.code]


@pytest.mark.spec("KA-10", "KA-3")
@pytest.mark.parametrize(("since", "duration"), ROUNDING)
def test_the_pong_timer_closes_at_its_deadline(since: float, duration: float) -> None:
    """The ping is queued when its timer fires, at about ``since``; the pong timer is due
    ping_timeout later, and fires there with nothing received since the ping."""
    settings = settings_with(
        ping_interval=4 * duration, ping_timeout=duration, inactivity_timeout=20 * duration
    )
    machine = established(settings, since - settings.ping_interval)
    sent_at, actions = fire_at_deadline(machine, Timer.PING)
    assert [type(m) for m in messages_in(sent_bytes(actions))] == [Ping]
    assert machine.armed_timers[Timer.PONG] == sent_at + duration
    _, actions = fire_at_deadline(machine, Timer.PONG)
    assert disconnect_reasons(actions) == [CloseReason.PING_TIMEOUT.code]


@pytest.mark.spec("KA-10", "KA-3")
@pytest.mark.parametrize(("since", "duration"), ROUNDING)
def test_the_pong_timer_rearmed_from_a_later_byte_closes_at_its_new_deadline(
    since: float, duration: float
) -> None:
    """A byte at ``since``, after the ping, moves the pong timer to since + ping_timeout."""
    settings = settings_with(
        ping_interval=4 * duration, ping_timeout=duration, inactivity_timeout=20 * duration
    )
    machine = established(settings, since - settings.ping_interval - duration / 2)
    fire_at_deadline(machine, Timer.PING)
    machine.handle(BytesReceived(ACTIVITY), since)
    _, actions = fire_at_deadline(machine, Timer.PONG)
    assert actions == [ArmTimer(Timer.PONG, since + duration)]
    _, actions = fire_at_deadline(machine, Timer.PONG)
    assert disconnect_reasons(actions) == [CloseReason.PING_TIMEOUT.code]


@pytest.mark.spec("KA-10", "KA-1")
@pytest.mark.parametrize(("since", "duration"), ROUNDING)
def test_the_ping_timer_sends_at_its_deadline(since: float, duration: float) -> None:
    settings = settings_with(ping_interval=duration, ping_timeout=duration / 2)
    machine = established(settings, since)
    now, actions = fire_at_deadline(machine, Timer.PING)
    assert now == since + duration
    assert [type(m) for m in messages_in(sent_bytes(actions))] == [Ping]
    assert ArmTimer(Timer.PING, now + duration) in actions


@pytest.mark.spec("KA-10")
@pytest.mark.parametrize(("since", "duration"), ROUNDING)
def test_the_connect_handshake_and_close_timers_act_at_their_deadlines(
    since: float, duration: float
) -> None:
    settings = settings_with(
        connection_timeout=duration, handshake_timeout=duration, close_timeout=duration
    )
    outbound, _, _ = new_machine(Direction.OUTBOUND, settings=settings, now=since)
    _, actions = fire_at_deadline(outbound, Timer.CONNECT)
    assert outbound.state is ConnState.CLOSED and AbortTransport() in actions

    inbound, _, _ = new_machine(Direction.INBOUND, settings=settings, now=since)
    _, actions = fire_at_deadline(inbound, Timer.HANDSHAKE)
    assert disconnect_reasons(actions) == [CloseReason.HANDSHAKE_TIMEOUT.code]

    closing = established(settings, since - 1)
    closing.handle(CloseRequested(CloseReason.REQUESTED), since)
    _, actions = fire_at_deadline(closing, Timer.CLOSE)
    assert closing.state is ConnState.CLOSED
    assert any(isinstance(a, Closed) for a in actions)


# A clock in seconds that a node may meet (up to some 30 years), and every allowed duration.
clocks = st.floats(0, 1e9, allow_nan=False)
durations = st.floats(MIN_DURATION, DAY, allow_nan=False)
# None: fire the earliest armed timer at its deadline; a number f: bytes arrive at the fraction
# f of the way from now to that deadline.
steps = st.lists(st.one_of(st.none(), st.floats(0, 1)), max_size=16)


@pytest.mark.spec("KA-10")
@given(
    opened=clocks,
    pair=st.tuples(durations, durations).filter(lambda p: p[0] != p[1]),
    others=st.tuples(durations, durations, durations, durations),
    plan=steps,
)
def test_no_timer_is_ever_armed_for_the_instant_it_fires_at(
    opened: float,
    pair: tuple[float, float],
    others: tuple[float, float, float, float],
    plan: list[float | None],
) -> None:
    connect, handshake, inactivity, close = others
    settings = ConnectionSettings(
        connection_timeout=connect,
        handshake_timeout=handshake,
        ping_interval=max(pair),
        ping_timeout=min(pair),  # spec: KA-7
        inactivity_timeout=inactivity,
        close_timeout=close,
    )
    machine, _, started = new_machine(Direction.INBOUND, settings=settings, now=opened)
    assert_progress(started, opened)
    now = opened
    for step in [0.0, *plan, *[None] * 8]:  # the handshake first, then the plan, then time
        if not machine.armed_timers:
            break
        timer, deadline = min(machine.armed_timers.items(), key=lambda item: item[1])
        if step is None:
            now = deadline
            actions = machine.handle(TimerExpired(timer), now)
        else:
            now += step * (deadline - now)
            data = HANDSHAKE if machine.state is ConnState.HANDSHAKING else ACTIVITY
            actions = machine.handle(BytesReceived(data), now)
        assert_progress(actions, now)


# ---- (b) a loop under a frozen clock runs each due timer once -----------------------------


class FrozenClock:
    """A clock that stays at ``now`` until it is thawed, then runs on from there."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._thawed_at: float | None = None

    def thaw(self) -> None:
        self._thawed_at = time.monotonic()

    def __call__(self) -> float:
        if self._thawed_at is None:
            return self.now
        return self.now + time.monotonic() - self._thawed_at


class Driver:
    """Carries a machine's timer actions out on an EventLoop, as the node does; counts the
    firings and stops a refire loop instead of hanging."""

    def __init__(self, loop: EventLoop, machine: PeerConnection) -> None:
        self.loop = loop
        self.machine = machine
        self.handles: dict[Timer, TimerHandle] = {}
        self.fired: list[Timer] = []

    def perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, ArmTimer | CancelTimer) and action.timer in self.handles:
                self.loop.cancel(self.handles.pop(action.timer))
            if isinstance(action, ArmTimer):
                self.arm(action.timer, action.deadline)

    def arm(self, timer: Timer, deadline: float) -> None:
        self.handles[timer] = self.loop.call_at(deadline, lambda: self.fire(timer))

    def fire(self, timer: Timer) -> None:
        self.fired.append(timer)
        assert len(self.fired) <= 16, f"{timer.value} fired again and again at one instant"
        del self.handles[timer]
        self.perform(self.machine.handle(TimerExpired(timer), self.loop.clock()))


@pytest.mark.spec("KA-10")
@pytest.mark.parametrize(("since", "duration"), ROUNDING)
def test_a_frozen_loop_fires_the_inactivity_timer_once_at_its_deadline(
    since: float, duration: float
) -> None:
    clock = FrozenClock(since)
    loop = EventLoop(clock)
    machine, _, started = new_machine(
        Direction.INBOUND, settings=settings_with(inactivity_timeout=duration), now=since
    )
    driver = Driver(loop, machine)
    driver.perform(started)
    driver.perform(machine.handle(BytesReceived(HANDSHAKE), since))
    clock.now = machine.armed_timers[Timer.INACTIVITY]
    loop.run_once(0)
    assert driver.fired == [Timer.INACTIVITY]
    assert machine.state is ConnState.CLOSING
    assert set(driver.handles) == {Timer.CLOSE} and loop.timers_pending == 1
    loop.close()


@pytest.mark.spec("KA-10")
@pytest.mark.parametrize(("since", "duration"), ROUNDING)
def test_a_frozen_loop_fires_the_pong_timer_once_at_its_deadline(
    since: float, duration: float
) -> None:
    settings = settings_with(
        ping_interval=4 * duration, ping_timeout=duration, inactivity_timeout=20 * duration
    )
    clock = FrozenClock(since - settings.ping_interval)
    loop = EventLoop(clock)
    machine, _, started = new_machine(Direction.INBOUND, settings=settings, now=clock.now)
    driver = Driver(loop, machine)
    driver.perform(started)
    driver.perform(machine.handle(BytesReceived(HANDSHAKE), clock.now))
    clock.now = machine.armed_timers[Timer.PING]
    loop.run_once(0)
    clock.now = machine.armed_timers[Timer.PONG]
    loop.run_once(0)
    assert driver.fired == [Timer.PING, Timer.PONG]
    assert machine.close_reason is CloseReason.PING_TIMEOUT
    loop.close()


@pytest.fixture
def frozen_nodes() -> Iterator[tuple[FrozenClock, EventLoop, Node, Node]]:
    clock = FrozenClock(1000.1)
    loop = EventLoop(clock)
    durations = ["ping_interval=1000", "ping_timeout=500", "inactivity_timeout=300"]
    a = Node(load(None, durations), loop=loop)
    b = Node(load(None, durations), loop=loop)
    yield clock, loop, a, b
    clock.thaw()  # a shutdown waits by the loop's clock
    for node in (a, b):
        node.shutdown(0.5)
    loop.close()


def is_established(node: Node) -> bool:
    """The node's one connection is established."""
    return [node.state_of(peer) for peer in node.peer_ids] == [ConnState.ESTABLISHED]


def run_until(loop: EventLoop, done: Callable[[], bool]) -> None:
    """Run a loop whose clock is frozen, by the wall clock."""
    give_up = time.monotonic() + 5
    while not done():
        assert time.monotonic() < give_up
        loop.run_once(0.02)


@pytest.mark.spec("KA-10")
def test_two_nodes_on_a_frozen_clock_close_at_the_inactivity_deadline_in_one_tick(
    frozen_nodes: tuple[FrozenClock, EventLoop, Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both nodes' last byte came at 1000.1; at 1300.1 one run_once fires each inactivity
    timer once, and both sides close without any timer firing again."""
    clock, loop, a, b = frozen_nodes
    peer = a.connect(*b.listen("127.0.0.2", 0))
    run_until(loop, lambda: b.inbound_count() == 1 and all(map(is_established, (a, b))))
    assert a.peer_ids == [peer]
    fired: list[Timer] = []
    handle = PeerConnection.handle

    def counting(self: PeerConnection, event: Any, now: float) -> list[Action]:
        if isinstance(event, TimerExpired):
            fired.append(event.timer)
            assert len(fired) <= 16, f"{event.timer.value} fired again and again at {now!r}"
        return handle(self, event, now)

    monkeypatch.setattr(PeerConnection, "handle", counting)
    clock.now = 1000.1 + 300
    loop.run_once(0)
    assert fired == [Timer.INACTIVITY, Timer.INACTIVITY]
    assert [b.state_of(p) for p in b.peer_ids] == [ConnState.CLOSING]
    # The second to fire may find the first side's Disconnect waiting: that side is then not
    # silent (NODE-12), and closes on the Disconnect instead, in the next passes, while the
    # frozen clock fires nothing again.
    run_until(loop, lambda: a.state_of(peer) is not ConnState.ESTABLISHED)
    assert fired == [Timer.INACTIVITY, Timer.INACTIVITY]


# ---- (c) the least duration ------------------------------------------------------------------

DURATION_KEYS = [
    "connection_timeout",
    "handshake_timeout",
    "ping_interval",
    "ping_timeout",
    "inactivity_timeout",
    "close_timeout",
    "reconnect_interval",
    "temporary_timeout",
    "ban_duration",
    "reconnect_max_interval",
    "rotation_interval",
    "partition_timeout",
]
CONNECTION_KEYS = DURATION_KEYS[:6]
MANAGER_KEYS = DURATION_KEYS[6:]
TOO_SHORT = [MIN_DURATION / 2, math.nextafter(MIN_DURATION, 0), 1e-9, 0]


def test_the_duration_keys_are_every_key_of_seconds() -> None:
    assert MIN_DURATION == 0.001
    assert sorted(k.name for k in KEYS if k.kind is float) == sorted(DURATION_KEYS)


@pytest.mark.spec("CFG-5", "CFG-3")
@pytest.mark.parametrize("key", DURATION_KEYS)
@pytest.mark.parametrize("value", TOO_SHORT)
def test_the_configuration_refuses_a_duration_below_the_least_naming_the_key(
    key: str, value: float
) -> None:
    with pytest.raises(ConfigError) as info:
        load(None, [f"{key}={value!r}"])
    assert info.value.key == key and str(info.value).startswith(f"{key}: ")
    assert NodeConfig().with_values({key: MIN_DURATION}, "test").values[key] == MIN_DURATION


@pytest.mark.spec("CFG-5")
@pytest.mark.parametrize("key", CONNECTION_KEYS)
@pytest.mark.parametrize("value", TOO_SHORT)
def test_connection_settings_refuse_a_duration_below_the_least(key: str, value: float) -> None:
    with pytest.raises(ValueError, match=key):
        ConnectionSettings(**{**least_connection_settings(), key: value})


@pytest.mark.spec("CFG-5")
@pytest.mark.parametrize("key", MANAGER_KEYS)
@pytest.mark.parametrize("value", TOO_SHORT)
def test_manager_settings_refuse_a_duration_below_the_least(key: str, value: float) -> None:
    with pytest.raises(ValueError, match=key):
        ManagerSettings(**{**least_manager_settings(), key: value})


def least_connection_settings() -> dict[str, Any]:
    # ping_timeout stays below ping_interval (KA-7)
    return {key: MIN_DURATION for key in CONNECTION_KEYS} | {"ping_interval": 2 * MIN_DURATION}


def least_manager_settings() -> dict[str, Any]:
    return {key: MIN_DURATION for key in MANAGER_KEYS}


def test_the_least_durations_themselves_are_accepted() -> None:
    ConnectionSettings(**least_connection_settings())
    ManagerSettings(**least_manager_settings())
