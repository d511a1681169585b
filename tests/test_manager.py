"""The connection manager as a whole (spec/manager.md): the state it keeps between facts and the
order and content of the decisions it returns. Each rule on its own is tested in
test_manager_rules.py; here a ``ConnectionManager`` is driven fact by fact with a fixed key, a
seeded random source and explicit monotonic and wall-clock times."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from obscura_ref.machines.reasons import CloseReason
from obscura_ref.manager import bans as bans_module
from obscura_ref.manager.backoff import MAX_FAILURES, reconnect_delay
from obscura_ref.manager.bans import BanList
from obscura_ref.manager.groups import address_group
from obscura_ref.manager.manager import (
    AddressAdded,
    Admit,
    CloseBegan,
    Closed,
    ConnectionManager,
    Decision,
    Dial,
    DialFailed,
    Established,
    Evict,
    Fact,
    InboundOffered,
    Listening,
    ManagerStatus,
    Misbehaved,
    Opened,
    PeerType,
    Refuse,
    RttMeasured,
    SaveBans,
    Tick,
    WakeAt,
)
from obscura_ref.manager.settings import ManagerSettings

KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))
SEED = 2024
WALL = 1_700_000_000.0  # wall-clock time at monotonic time 0, unless a fact says otherwise
PORT = 8333
FAR = 100_000.0  # a rotation interval or partition timeout that never comes in a test

OUTBOUND, PERSISTENT, INBOUND, TEMPORARY = (
    PeerType.OUTBOUND,
    PeerType.PERSISTENT,
    PeerType.INBOUND,
    PeerType.TEMPORARY,
)
Address = tuple[str, int]


def at(ip: str, port: int = PORT) -> Address:
    return ip, port


def h(text: str, key: bytes = KEY) -> int:
    """H of section 2, restated."""
    return int.from_bytes(hashlib.sha256(key + text.encode()).digest()[:8], "big")


class Run:
    """A ConnectionManager and the clock of the facts it is given: monotonic time ``now``, and
    wall-clock time WALL + now unless a fact gives its own."""

    def __init__(
        self, *, key: bytes = KEY, seed: int = SEED, bans: BanList | None = None, **given: Any
    ) -> None:
        settings = ManagerSettings(**given)
        self.manager = ConnectionManager(settings, key, random.Random(seed), 0.0, bans)
        self.now = 0.0
        self.wall = WALL

    def __call__(
        self, fact: Fact, now: float | None = None, wall: float | None = None
    ) -> list[Decision]:
        if now is not None:
            assert now >= self.now
            self.now = now
        self.wall = WALL + self.now if wall is None else wall
        out = self.manager.handle(fact, self.now, self.wall)
        # Every answer ends with the one WakeAt that says when to tick next.
        assert [type(d) for d in out].count(WakeAt) == 1 and isinstance(out[-1], WakeAt)
        return out

    def status(self) -> ManagerStatus:
        return self.manager.status(self.now, self.wall)

    def book(self) -> set[Address]:
        return set(self.manager.book)


def decided(out: list[Decision]) -> list[Decision]:
    """The decisions without the final WakeAt."""
    return out[:-1]


def wake(out: list[Decision]) -> float:
    last = out[-1]
    assert isinstance(last, WakeAt)
    return last.time


def dials(out: Iterable[Decision]) -> list[Dial]:
    return [d for d in out if isinstance(d, Dial)]


def ban_list(*bans: tuple[str, float]) -> BanList:
    found = BanList()
    for ip, until in bans:
        found.ban(ip, until, "WIRE-5")
    return found


# Section 3: what counts, and the limits of dialling.


@pytest.mark.spec("LIM-12")
def test_a_connection_stops_counting_when_its_close_begins() -> None:
    run = Run(max_inbound_connections=2, max_total_connections=2, max_outbound_connections=0)
    assert decided(run(InboundOffered(1, at("10.1.0.1", 50001)), 1)) == [Admit(1)]
    assert decided(run(InboundOffered(2, at("10.2.0.1", 50002)), 2)) == [Admit(2)]
    # Full, and each candidate is the oldest of its group (step 1): refused, and not counted.
    refused = run(InboundOffered(3, at("10.3.0.1", 50003)), 3)
    assert decided(refused) == [Refuse(3, CloseReason.CONNECTION_LIMIT)]
    assert run.status().counts["inbound"] == 2
    # Its close has begun, not ended: peer 1 no longer holds a slot.
    assert decided(run(CloseBegan(1, CloseReason.PEER_CLOSED), 4)) == []
    assert run.status().counts["inbound"] == 1
    assert decided(run(InboundOffered(4, at("10.4.0.1", 50004)), 5)) == [Admit(4)]
    assert decided(run(Closed(1, CloseReason.PEER_CLOSED), 6)) == []
    assert run.status().counts["inbound"] == 2


def _seven_in_one_group(run: Run) -> None:
    """Inbound peers 1 to 7, all in 10.1.0.0/16, accepted at times 1 to 7; peer 7 measured fast."""
    for peer in range(1, 8):
        assert decided(run(InboundOffered(peer, at(f"10.1.0.{peer}", 50000 + peer)), peer)) == [
            Admit(peer)
        ]
    run(RttMeasured(7, 0.1), 8)


@pytest.mark.spec("LIM-16", "BAN-3", "LIM-12")
@pytest.mark.parametrize(("max_inbound", "max_total"), [(7, 20), (20, 7)])
def test_admission_bans_then_room_then_eviction(max_inbound: int, max_total: int) -> None:
    run = Run(
        bans=ban_list(("10.66.0.1", WALL + 1000)),
        max_inbound_connections=max_inbound,
        max_total_connections=max_total,
        max_outbound_connections=0,
    )
    # Rule 1 comes before rule 2: refused though there is room, and never counted.
    assert decided(run(InboundOffered(100, at("10.66.0.1", 40000)), 0)) == [
        Refuse(100, CloseReason.BANNED)
    ]
    _seven_in_one_group(run)
    assert run.status().counts["inbound"] == 7
    # Rule 1 before rule 3: a banned newcomer makes no one leave.
    assert decided(run(InboundOffered(101, at("10.66.0.1", 40001)), 9)) == [
        Refuse(101, CloseReason.BANNED)
    ]
    # Rule 3. The candidates are the seven: step 1 protects peer 1 (the oldest of the one
    # group), step 2 peer 7 (the only one measured), step 3 peers 2 to 5 (equal scores, the
    # older first), step 4 none of [6]: peer 6 is evicted, then the newcomer admitted.
    out = run(InboundOffered(8, at("10.9.0.1", 50008)), 10)
    assert decided(out) == [Evict(6, CloseReason.EVICTED), Admit(8)]
    status = run.status()
    assert status.counts["inbound"] == 7  # the evicted one stopped counting at once
    assert 6 not in status.scores and 8 in status.scores


@pytest.mark.spec("LIM-16", "LIM-12")
def test_a_peer_whose_close_began_is_no_candidate_for_eviction() -> None:
    run = Run(max_inbound_connections=7, max_total_connections=8, max_outbound_connections=0)
    _seven_in_one_group(run)
    run(CloseBegan(6, CloseReason.PEER_CLOSED), 9)
    assert decided(run(InboundOffered(8, at("10.9.0.1", 50008)), 10)) == [Admit(8)]
    # Now peers 1..5, 7 and 8: 1 and 8 protected by step 1 (two groups), 7 by step 2, 2..5 by
    # step 3: no one left to evict.
    assert decided(run(InboundOffered(9, at("10.9.0.2", 50009)), 11)) == [
        Refuse(9, CloseReason.CONNECTION_LIMIT)
    ]


@pytest.mark.spec("LIM-13", "LIM-12")
def test_no_outbound_dial_beyond_the_limit_dials_in_progress_counted() -> None:
    seeds = tuple(at(f"10.{i}.0.1") for i in range(1, 6))
    run = Run(max_outbound_connections=2, seed_nodes=seeds)
    first = dials(run(Tick(), 1))
    assert len(first) == 2 and {d.type for d in first} == {OUTBOUND}
    assert dials(run(Tick(), 2)) == []  # the two dials in progress count
    run(Opened(1, first[0].address, OUTBOUND), 3)
    assert dials(run(Opened(2, first[1].address, OUTBOUND), 3)) == []
    assert dials(run(Tick(), 4)) == []
    (again,) = dials(run(CloseBegan(1, CloseReason.HANDSHAKE_TIMEOUT), 5))
    assert again.type is OUTBOUND and again.address not in {d.address for d in first}
    assert dials(run(DialFailed(again.address, OUTBOUND), 6)) != []


@pytest.mark.spec("LIM-13", "RECO-7")
def test_no_temporary_dial_beyond_the_limit() -> None:
    seeds = tuple(at(f"10.{i}.0.1") for i in range(1, 6))
    run = Run(
        max_outbound_connections=0,
        max_temporary_connections=2,
        partition_timeout=10,
        seed_nodes=seeds,
    )
    assert dials(run(Tick(), 9)) == []  # not partitioned yet
    probes = dials(run(Tick(), 10))
    assert len(probes) == 2 and {d.type for d in probes} == {TEMPORARY}
    assert dials(run(Tick(), 11)) == []  # the two dials in progress count
    run(Opened(1, probes[0].address, TEMPORARY), 12)
    run(Opened(2, probes[1].address, TEMPORARY), 12)
    assert dials(run(Tick(), 13)) == []
    assert run.status().counts["temporary"] == 2
    (again,) = dials(run(CloseBegan(1, CloseReason.NETWORK_ERROR), 14))
    assert again.type is TEMPORARY and again.address not in {d.address for d in probes}


@pytest.mark.spec("LIM-14", "LIM-16")
def test_no_dial_of_any_type_beyond_the_total_limit() -> None:
    run = Run(
        max_outbound_connections=8,
        max_inbound_connections=5,
        max_total_connections=3,
        partition_timeout=10,
    )
    run(InboundOffered(1, at("10.1.0.1", 50001)), 0)
    run(InboundOffered(2, at("10.2.0.1", 50002)), 0)
    (first,) = dials(run(AddressAdded(at("10.3.0.1"), "application"), 1))
    assert dials(run(AddressAdded(at("10.4.0.1"), "application"), 1)) == []
    assert dials(run(AddressAdded(at("10.5.0.1"), "connect"), 1)) == []
    assert dials(run(AddressAdded(at("10.6.0.1"), "persistent"), 1)) == []
    assert dials(run(Tick(), 20)) == []  # partitioned, but no room for a temporary either
    # Inbound has room, the total has none: the eviction rule decides (both protected).
    assert decided(run(InboundOffered(3, at("10.7.0.1", 50003)), 21)) == [
        Refuse(3, CloseReason.CONNECTION_LIMIT)
    ]
    # One slot frees: one dial, the persistent connection first.
    assert dials(run(DialFailed(first.address, OUTBOUND), 22)) == [Dial(at("10.6.0.1"), PERSISTENT)]


# TYPE-2: temporary connections.


@pytest.mark.spec("TYPE-2")
def test_a_temporary_connection_is_closed_when_its_handshake_completes() -> None:
    run = Run(max_outbound_connections=0, partition_timeout=10, seed_nodes=(at("10.1.0.1"),))
    (probe,) = dials(run(Tick(), 10))
    assert probe == Dial(at("10.1.0.1"), TEMPORARY)
    run(Opened(1, probe.address, TEMPORARY), 10)
    assert decided(run(Established(1, 0), 12)) == [Evict(1, CloseReason.TEMPORARY_DONE)]
    assert run.status().counts["temporary"] == 0


@pytest.mark.spec("TYPE-2")
def test_a_temporary_connection_is_closed_at_its_deadline() -> None:
    run = Run(
        max_outbound_connections=0,
        partition_timeout=200,
        temporary_timeout=30,
        seed_nodes=(at("10.1.0.1"),),
    )
    (probe,) = dials(run(Tick(), 200))
    assert wake(run(Opened(1, probe.address, TEMPORARY), 200)) == 230
    assert decided(run(Tick(), 229.9)) == []
    # Closed at its deadline, and its address not dialled again until the close is over.
    assert decided(run(Tick(), 230)) == [Evict(1, CloseReason.TEMPORARY_TIMEOUT)]
    assert decided(run(Tick(), 230.5)) == []
    # An address that did not answer has failed: probed again after delay(1).
    out = run(Closed(1, CloseReason.TEMPORARY_TIMEOUT), 231)
    next_attempt = 231 + reconnect_delay(1, 30, 3600, random.Random(SEED).getrandbits(64))
    assert dials(out) == [] and run.status().waiting == [("10.1.0.1:8333", 1, next_attempt)]
    assert dials(run(Tick(), next_attempt)) == [probe]


# Section 6: misbehaviour and bans.


@pytest.mark.spec("BAN-1")
@pytest.mark.parametrize(
    ("requirement", "points"),
    [("WIRE-11", 20), ("HS-20", 50), ("KA-3", 0), ("WIRE-9", 100), ("WIRE-44", 100)],
)
def test_misbehaviour_adds_the_points_of_its_requirement(requirement: str, points: int) -> None:
    run = Run(max_outbound_connections=0)
    run(InboundOffered(1, at("10.1.0.1", 50001)), 1)
    run(InboundOffered(2, at("10.1.0.1", 50002)), 1)  # the same address, another port
    run(InboundOffered(3, at("10.1.0.2", 50003)), 1)
    out = decided(run(Misbehaved(1, requirement), 2))
    if points < 100:
        assert out == []
        # Points belong to the address: every connection from it loses them from its score.
        assert run.status().scores == {1: -points, 2: -points, 3: 0}
    else:
        assert Evict(2, CloseReason.BANNED) in out and len(out) == 2
        assert run.status().bans == [("10.1.0.1", WALL + 2 + 86_400)]


@pytest.mark.spec("BAN-1", "BAN-2", "BAN-3", "BAN-4")
def test_an_address_reaching_the_threshold_is_banned_its_connections_closed_and_saved() -> None:
    run = Run(max_outbound_connections=1, ban_duration=3600)
    assert dials(run(AddressAdded(at("10.1.0.1"), "application"), 0)) == [
        Dial(at("10.1.0.1"), OUTBOUND)
    ]
    run(Opened(1, at("10.1.0.1"), OUTBOUND), 0)
    run(InboundOffered(2, at("10.1.0.1", 50002)), 1)  # the one that misbehaves
    run(InboundOffered(3, at("10.1.0.1", 50003)), 1)
    run(CloseBegan(3, CloseReason.PEER_CLOSED), 2)  # no longer counts
    run(InboundOffered(4, at("10.1.0.2", 50004)), 3)  # same group, another address
    run(InboundOffered(5, at("10.1.0.1", 50005)), 4)
    for moment in (10, 11, 12, 13):
        assert decided(run(Misbehaved(2, "WIRE-11"), moment)) == []
    assert run.status().scores[5] == -80
    out = decided(run(Misbehaved(2, "HS-20"), 14))  # 130 points
    until = WALL + 14 + 3600
    document = {
        "version": 1,
        "bans": [{"address": "10.1.0.1", "until": until, "requirement": "HS-20"}],
    }
    assert len(out) == 3
    assert Evict(1, CloseReason.BANNED) in out and Evict(5, CloseReason.BANNED) in out
    assert SaveBans(document) in out
    status = run.status()
    assert status.bans == [("10.1.0.1", until)]
    assert status.counts == {"outbound": 0, "persistent": 0, "inbound": 2, "temporary": 0}
    assert status.scores == {2: 0, 4: 0}  # the points were cleared
    assert decided(run(InboundOffered(6, at("10.1.0.1", 50006)), 15)) == [
        Refuse(6, CloseReason.BANNED)
    ]
    run(CloseBegan(2, CloseReason.UNEXPECTED_MESSAGE), 15)
    # The outbound entry outlives its backoff but is not dialled while the ban lasts.
    run(Closed(1, CloseReason.BANNED), 16)
    for moment in (100, 1000, 3000, 3613):
        assert dials(run(Tick(), moment)) == []
    assert dials(run(Tick(), 3614)) == [Dial(at("10.1.0.1"), OUTBOUND)]


@pytest.mark.spec("BAN-2")
def test_a_dial_in_progress_to_an_address_banned_meanwhile_is_closed_when_it_opens() -> None:
    run = Run(max_outbound_connections=1)
    run(InboundOffered(1, at("10.1.0.1", 50001)), 0)
    run(CloseBegan(1, CloseReason.PEER_CLOSED), 1)
    (dial,) = dials(run(AddressAdded(at("10.1.0.1"), "application"), 2))
    run(InboundOffered(2, at("10.1.0.1", 50002)), 3)
    out = decided(run(Misbehaved(2, "WIRE-5"), 4))
    assert [d for d in out if isinstance(d, Evict)] == []  # the dial has no peer yet
    assert decided(run(Opened(3, dial.address, OUTBOUND), 5)) == [Evict(3, CloseReason.BANNED)]


@pytest.mark.spec("BAN-4", "BAN-5", "RECO-7")
@pytest.mark.parametrize("max_outbound", [8, 0])
def test_a_banned_address_in_the_book_is_never_dialled(max_outbound: int) -> None:
    banned = ("10.2.0.1", "10.3.0.1", "10.4.0.1")
    run = Run(
        bans=ban_list(*((ip, WALL + 500) for ip in banned)),
        max_outbound_connections=max_outbound,
        partition_timeout=10,
    )
    run(AddressAdded(at("10.2.0.1"), "seed"), 1)
    run(AddressAdded(at("10.3.0.1"), "persistent"), 1)
    run(AddressAdded(at("10.4.0.1"), "connect"), 1)
    run(AddressAdded(at("10.4.0.1"), "application"), 1)
    for moment in range(2, 500, 7):  # partitioned from 10: probes are considered too
        out = run(Tick(), moment)
        assert dials(out) == [] and wake(out) <= 500
    out = run(Tick(), 500)
    assert SaveBans({"version": 1, "bans": []}) in out
    assert {d.address for d in dials(out)} == {at(ip) for ip in banned}


@pytest.mark.spec("BAN-5")
def test_a_ban_ends_on_the_first_tick_at_its_end_in_wall_clock_time() -> None:
    run = Run(
        bans=ban_list(("10.2.0.1", WALL + 100), ("10.3.0.1", WALL + 300)),
        partition_timeout=1000,
        rotation_interval=1000,
    )
    assert wake(run(Tick(), 0)) == 100
    assert decided(run(Tick(), 99)) == []
    assert run.status().bans == [("10.2.0.1", WALL + 100), ("10.3.0.1", WALL + 300)]
    one_left = {
        "version": 1,
        "bans": [{"address": "10.3.0.1", "until": WALL + 300, "requirement": "WIRE-5"}],
    }
    out = run(Tick(), 100)
    assert decided(out) == [SaveBans(one_left)] and wake(out) == 300
    assert run.status().bans == [("10.3.0.1", WALL + 300)]
    # Bans run on the wall clock: a clock 100 s ahead of the monotonic one ends it sooner,
    # and the tick asked for is that many seconds away on the monotonic clock.
    assert wake(run(Tick(), 150, wall=WALL + 250)) == 200
    assert decided(run(Tick(), 200, wall=WALL + 300)) == [SaveBans({"version": 1, "bans": []})]
    assert run.status().bans == []


# Section 7: the address book and outbound connections.


def _best_first(entries: list[Address], used: set[str], count: int, key: bytes) -> list[Address]:
    """Section 7's order restated: a group without an outbound or persistent connection
    first, then the lower H(address); each dial puts its group in use."""
    chosen: list[Address] = []
    for _ in range(count):
        left = [e for e in entries if e not in chosen and e[0] not in {c[0] for c in chosen}]
        best = min(left, key=lambda e: (address_group(e[0]) in used, h(f"{e[0]}:{e[1]}", key)))
        chosen.append(best)
        used.add(address_group(best[0]))
    return chosen


BOOK = [
    at("10.1.0.1"),
    at("10.1.0.2"),
    at("10.1.0.3"),
    at("10.2.0.1"),
    at("10.2.0.2"),
    at("10.3.0.1"),
    at("10.4.0.1"),
    at("10.5.0.1", 9000),
]


@pytest.mark.spec("RECO-1")
@pytest.mark.parametrize("key", [KEY, OTHER_KEY])
def test_outbound_slots_are_filled_best_entry_first(key: bytes) -> None:
    run = Run(key=key, max_outbound_connections=6, seed_nodes=tuple(BOOK))
    out = run(AddressAdded(at("10.5.0.9"), "persistent"), 0)
    assert dials(out)[0] == Dial(at("10.5.0.9"), PERSISTENT)
    expected = _best_first(BOOK, {"10.5.0.0/16"}, 6, key)
    assert [d.address for d in dials(out)[1:]] == expected
    assert {d.type for d in dials(out)[1:]} == {OUTBOUND}
    # A lost connection frees its slot: the best entry left is dialled, its group counted.
    run(Opened(1, expected[0], OUTBOUND), 1)
    run(Established(1, 0), 2)
    (again,) = dials(run(CloseBegan(1, CloseReason.PING_TIMEOUT), 3))
    left = [e for e in BOOK if e not in expected]
    used = {address_group(e[0]) for e in [*expected[1:], at("10.5.0.9")]}
    assert [again.address] == _best_first(left, used, 1, key)


@pytest.mark.spec("RECO-2")
def test_never_an_own_address_nor_the_ip_of_a_connection_that_counts() -> None:
    run = Run(max_outbound_connections=8, partition_timeout=10)
    run(Listening(at("10.1.0.1")), 0)
    for source in ("application", "seed", "connect", "persistent"):
        assert dials(run(AddressAdded(at("10.1.0.1"), source), 0)) == []
    assert decided(run(InboundOffered(1, at("10.2.0.1", 50001)), 1)) == [Admit(1)]
    assert dials(run(AddressAdded(at("10.2.0.1"), "application"), 1)) == []
    assert dials(run(AddressAdded(at("10.2.0.1", 9000), "connect"), 1)) == []
    # Two ports of one address: one dial, the other waits while it counts.
    (third,) = dials(run(AddressAdded(at("10.3.0.1", 1), "application"), 2))
    assert dials(run(AddressAdded(at("10.3.0.1", 2), "application"), 2)) == []
    for moment in (5, 10, 20):  # partitioned from 10: no probe to them either
        assert dials(run(Tick(), moment)) == []
    (dial,) = dials(run(CloseBegan(1, CloseReason.PEER_CLOSED), 21))  # one of the two ports
    assert dial.address in {at("10.2.0.1"), at("10.2.0.1", 9000)}
    run(DialFailed(third.address, OUTBOUND), 22)
    for moment in (30, 60, 120, 600):
        assert at("10.1.0.1") not in {d.address for d in dials(run(Tick(), moment))}


@pytest.mark.spec("RECO-3")
def test_a_self_connection_takes_the_address_out_of_the_book() -> None:
    run = Run(max_outbound_connections=2, seed_nodes=(at("10.1.0.1"), at("10.2.0.1")))
    assert len(dials(run(AddressAdded(at("10.3.0.1"), "persistent"), 0))) == 3
    run(Opened(1, at("10.1.0.1"), OUTBOUND), 1)
    run(Opened(2, at("10.2.0.1"), OUTBOUND), 1)
    run(Opened(3, at("10.3.0.1"), PERSISTENT), 1)
    run(CloseBegan(1, CloseReason.SELF_CONNECTION), 2)
    assert at("10.1.0.1") not in run.book()
    run(Closed(1, CloseReason.SELF_CONNECTION), 3)
    # The peer found it: its Disconnect says self_connection.
    code = CloseReason.SELF_CONNECTION.code
    run(Closed(2, CloseReason.PEER_DISCONNECTED, peer_reason=code), 4)
    run(Closed(3, CloseReason.SELF_CONNECTION), 5)
    assert run.book() == set() and run.status().book == 0
    for moment in (60, 600, 6000):
        assert dials(run(Tick(), moment)) == []


@pytest.mark.spec("RECO-3", "RECO-4")
def test_a_disconnect_for_another_reason_keeps_the_address() -> None:
    run = Run(max_outbound_connections=1, seed_nodes=(at("10.1.0.1"),))
    run(Tick(), 0)
    run(Opened(1, at("10.1.0.1"), OUTBOUND), 0)
    run(Closed(1, CloseReason.PEER_DISCONNECTED, peer_reason=CloseReason.BANNED.code), 1)
    assert run.book() == {at("10.1.0.1")}
    assert [(text, n) for text, n, _ in run.status().waiting] == [("10.1.0.1:8333", 1)]


# Section 8: reconnection and backoff.


class Failing:
    """Fails a dial of ``address`` the way ``kind`` says and checks the next attempt against
    delay(n) with the draws of a twin of the manager's random source."""

    def __init__(self, run: Run, address: Address, kind: PeerType, interval: float, cap: float):
        self.run, self.address, self.kind = run, address, kind
        self.interval, self.cap = interval, cap
        self.twin = random.Random(SEED)
        self.peer = 0

    def expect(self, failures: int, close: float, out: list[Decision]) -> None:
        delay = reconnect_delay(failures, self.interval, self.cap, self.twin.getrandbits(64))
        next_attempt = close + delay
        assert dials(out) == []
        assert wake(out) == next_attempt
        text = f"{self.address[0]}:{self.address[1]}"
        assert self.run.status().waiting == [(text, failures, next_attempt)]
        # Not a moment before its time; at its time, dialled.
        assert dials(self.run(Tick(), next_attempt - 0.01)) == []
        assert dials(self.run(Tick(), next_attempt)) == [Dial(self.address, self.kind)]

    def dial_failed(self, failures: int) -> None:
        close = self.run.now + 1
        self.expect(failures, close, self.run(DialFailed(self.address, self.kind), close))

    def closed_before_handshake(self, failures: int, reason: CloseReason) -> None:
        self.peer += 1
        self.run(Opened(self.peer, self.address, self.kind), self.run.now + 1)
        self.run(CloseBegan(self.peer, reason), self.run.now + 1)
        close = self.run.now + 2
        self.expect(failures, close, self.run(Closed(self.peer, reason), close))

    def lost(self, failures: int) -> None:
        """Established, then lost: the close began at one time and ended later."""
        self.peer += 1
        self.run(Opened(self.peer, self.address, self.kind), self.run.now + 1)
        self.run(Established(self.peer, 0), self.run.now + 1)
        self.run(CloseBegan(self.peer, CloseReason.PING_TIMEOUT), self.run.now + 100)
        assert dials(self.run(Tick(), self.run.now + 100)) == []  # its close is not over
        close = self.run.now + 1
        out = self.run(Closed(self.peer, CloseReason.PING_TIMEOUT), close)
        self.expect(failures, close, out)


@pytest.mark.spec("RECO-4", "RECO-5", "NODE-9")
def test_a_persistent_address_is_redialled_after_delay_n_whatever_its_failures() -> None:
    run = Run(
        reconnect_interval=10,
        reconnect_max_interval=35,
        rotation_interval=FAR,
        partition_timeout=FAR,
    )
    p = at("10.1.0.1")
    assert dials(run(AddressAdded(p, "persistent"), 0)) == [Dial(p, PERSISTENT)]
    failing = Failing(run, p, PERSISTENT, 10, 35)
    failing.dial_failed(1)
    failing.closed_before_handshake(2, CloseReason.CONNECT_TIMEOUT)
    failing.closed_before_handshake(3, CloseReason.HANDSHAKE_TIMEOUT)
    failing.lost(1)  # the completed handshake set n to 0
    for failures in range(2, MAX_FAILURES + 4):  # the cap from n = 3; never forgotten
        failing.dial_failed(failures)
    assert run.book() == {p}


@pytest.mark.spec("RECO-4", "RECO-6")
def test_a_non_persistent_entry_leaves_the_book_after_max_failures_in_a_row() -> None:
    run = Run(
        max_outbound_connections=1,
        reconnect_interval=30,
        reconnect_max_interval=3600,
        rotation_interval=FAR,
        partition_timeout=FAR,
    )
    a = at("10.1.0.1")
    assert dials(run(AddressAdded(a, "application"), 0)) == [Dial(a, OUTBOUND)]
    failing = Failing(run, a, OUTBOUND, 30, 3600)
    failing.dial_failed(1)
    failing.closed_before_handshake(2, CloseReason.NETWORK_ERROR)
    failing.lost(1)  # a completed handshake starts the count again
    for failures in range(2, MAX_FAILURES):
        failing.dial_failed(failures)
    # The fifth failure in a row: out of the book, never dialled again.
    out = run(DialFailed(a, OUTBOUND), run.now + 1)
    assert dials(out) == [] and run.book() == set() and run.status().waiting == []
    for moment in (1e4, 1e5, 1e6):
        assert dials(run(Tick(), moment)) == []


@pytest.mark.spec("RECO-4")
def test_adding_an_address_again_does_not_cut_its_backoff_short() -> None:
    run = Run(max_outbound_connections=1, rotation_interval=FAR, partition_timeout=FAR)
    a = at("10.1.0.1")
    run(AddressAdded(a, "seed"), 0)
    out = run(DialFailed(a, OUTBOUND), 1)
    next_attempt = wake(out)
    assert next_attempt > 1
    assert dials(run(AddressAdded(a, "application"), 2)) == []
    assert run.status().waiting == [("10.1.0.1:8333", 1, next_attempt)]
    assert dials(run(Tick(), next_attempt)) == [Dial(a, OUTBOUND)]


@pytest.mark.spec("RECO-3", "RECO-4")
def test_an_address_added_again_is_not_dialled_before_its_close_is_over() -> None:
    run = Run(max_outbound_connections=1, seed_nodes=(at("10.1.0.1"),))
    run(Tick(), 0)
    run(Opened(1, at("10.1.0.1"), OUTBOUND), 0)
    run(CloseBegan(1, CloseReason.SELF_CONNECTION), 1)  # out of the book
    assert run.book() == set()
    assert dials(run(AddressAdded(at("10.1.0.1"), "application"), 2)) == []
    assert dials(run(AddressAdded(at("10.1.0.1"), "persistent"), 2)) == []
    assert dials(run(Tick(), 3)) == []
    run(Closed(1, CloseReason.SELF_CONNECTION), 4)  # a self-connection: out again
    assert run.book() == set()


@pytest.mark.spec("RECO-8")
def test_a_requested_close_takes_the_address_out_of_the_book() -> None:
    run = Run(max_outbound_connections=1, seed_nodes=(at("10.1.0.1"),))
    out = run(AddressAdded(at("10.2.0.1"), "persistent"), 0)
    assert sorted(d.address for d in dials(out)) == [at("10.1.0.1"), at("10.2.0.1")]
    run(Opened(1, at("10.1.0.1"), OUTBOUND), 1)
    run(Opened(2, at("10.2.0.1"), PERSISTENT), 1)
    run(Established(1, 0), 2)
    run(Established(2, 0), 2)
    run(CloseBegan(1, CloseReason.REQUESTED), 3)
    assert run.book() == {at("10.2.0.1")}
    run(Closed(1, CloseReason.REQUESTED), 4)
    run(Closed(2, CloseReason.REQUESTED), 5)  # persistent, and no CloseBegan reported first
    assert run.book() == set()
    for moment in (60, 600, 6000):
        assert dials(run(Tick(), moment)) == []


# Section 9: rotation.


def _rotation_run(privacy_level: str) -> tuple[Run, Address]:
    """Four outbound peers 1..4 in 10.1 .. 10.4 and a persistent one (60) in 10.6, all
    established; peers 1 and 2 measured fast. One more entry waits in 10.4."""
    run = Run(
        max_outbound_connections=4,
        rotation_interval=100,
        partition_timeout=FAR,
        privacy_level=privacy_level,
        seed_nodes=tuple(at(f"10.{i}.0.1") for i in range(1, 5)),
    )
    out = run(AddressAdded(at("10.6.0.1"), "persistent"), 0)
    assert len(dials(out)) == 5
    run(Opened(60, at("10.6.0.1"), PERSISTENT), 0.5)  # the oldest, and scored the lowest
    run(Opened(4, at("10.4.0.1"), OUTBOUND), 1)
    run(Opened(3, at("10.3.0.1"), OUTBOUND), 2)
    run(Opened(1, at("10.1.0.1"), OUTBOUND), 3)
    run(Opened(2, at("10.2.0.1"), OUTBOUND), 3)
    for peer in (1, 2, 3, 4, 60):
        run(Established(peer, 0), 5)
    run(RttMeasured(1, 0.5), 5)
    run(RttMeasured(2, 0.5), 5)
    same = at("10.4.0.2")
    assert dials(run(AddressAdded(same, "application"), 6)) == []
    return run, same


@pytest.mark.spec("PRIV-10", "RECO-5")
def test_rotation_closes_the_weakest_outbound_and_refills_from_other_groups() -> None:
    run, same = _rotation_run("standard")
    assert decided(run(Tick(), 99)) == []
    # One of four (max(1, 4 // 4)): the lowest score, 11 for peers 3 and 4, the older of them.
    # The persistent peer is older and as low, but never rotated. The only entry left is in
    # 10.4, the rotated group: with no entry of another group, it is chosen all the same.
    out = run(Tick(), 100)
    assert decided(out) == [Evict(4, CloseReason.ROTATED), Dial(same, OUTBOUND)]
    assert wake(out) == 200
    run(Opened(5, same, OUTBOUND), 101)
    run(Established(5, 0), 102)
    decided(run(Closed(4, CloseReason.ROTATED), 103))
    # With an entry of another group in the book, the next rotation's replacement comes from
    # it, though 10.4.0.1 is due again and its group holds no connection once 5 goes.
    assert dials(run(AddressAdded(at("10.5.0.1"), "application"), 152)) == []
    out = run(Tick(), 200)
    evicted = [d for d in decided(out) if isinstance(d, Evict)]
    assert len(evicted) == 1
    assert dials(out) == [Dial(at("10.5.0.1"), OUTBOUND)]


@pytest.mark.spec("PRIV-10")
def test_privacy_level_none_never_rotates() -> None:
    run, _ = _rotation_run("none")
    for moment in range(100, 2000, 50):
        assert decided(run(Tick(), moment)) == []


# Section 10: partitions.


@pytest.mark.spec("RECO-7")
def test_a_silent_node_dials_temporary_connections_seeds_first() -> None:
    seeds = (at("10.1.0.1"), at("10.2.0.1"), at("10.3.0.1"))
    run = Run(
        max_outbound_connections=1,
        max_temporary_connections=2,
        partition_timeout=60,
        seed_nodes=seeds,
    )
    out = run(AddressAdded(at("10.4.0.1"), "application"), 0)
    run(AddressAdded(at("10.5.0.1"), "application"), 0)
    (outbound,) = dials(out)
    assert dials(run(Tick(), 59)) == [] and not run.status().partitioned
    probes = dials(run(Tick(), 60))
    assert run.status().partitioned
    everything = [*seeds, at("10.4.0.1"), at("10.5.0.1")]
    left = [e for e in everything if e != outbound.address]
    left.sort(key=lambda e: (e not in seeds, h(f"{e[0]}:{e[1]}")))
    assert probes == [Dial(e, TEMPORARY) for e in left[:2]]


@pytest.mark.spec("RECO-7")
def test_no_probe_into_a_group_that_holds_a_connection_or_a_dial_in_progress() -> None:
    run = Run(
        max_outbound_connections=1,
        partition_timeout=10,
        seed_nodes=(at("10.1.0.1"), at("10.1.0.2")),
    )
    (outbound,) = dials(run(Tick(), 0))
    assert dials(run(Tick(), 10)) == []  # partitioned, but 10.1 holds the dial in progress
    run(Opened(1, outbound.address, OUTBOUND), 11)
    assert dials(run(Tick(), 12)) == []
    assert dials(run(AddressAdded(at("10.2.0.1"), "application"), 13)) == [
        Dial(at("10.2.0.1"), TEMPORARY)
    ]


@pytest.mark.spec("RECO-7")
def test_established_connections_all_in_one_group_are_a_partition() -> None:
    run = Run(max_outbound_connections=2, seed_nodes=(at("10.1.0.1"), at("10.1.0.2")))
    assert len(dials(run(Tick(), 0))) == 2
    run(Opened(1, at("10.1.0.1"), OUTBOUND), 0)
    run(Opened(2, at("10.1.0.2"), OUTBOUND), 0)
    run(Established(1, 0), 1)
    assert not run.status().partitioned  # one established connection is not a partition
    run(Established(2, 0), 1)
    assert run.status().partitioned
    assert dials(run(AddressAdded(at("10.2.0.1"), "application"), 2)) == [
        Dial(at("10.2.0.1"), TEMPORARY)
    ]


@pytest.mark.spec("RECO-7")
def test_the_silence_is_counted_from_the_last_established_connection() -> None:
    run = Run(max_outbound_connections=1, partition_timeout=60, rotation_interval=FAR)
    run(AddressAdded(at("10.1.0.1"), "seed"), 0)
    run(Opened(1, at("10.1.0.1"), OUTBOUND), 0)
    run(Established(1, 0), 1)
    run(AddressAdded(at("10.2.0.1"), "application"), 2)
    # Nothing for a long while, then the only outbound connection is lost: not partitioned
    # before 60 s more without one.
    out = run(CloseBegan(1, CloseReason.PING_TIMEOUT), 500)
    assert dials(out) == [Dial(at("10.2.0.1"), OUTBOUND)]
    assert not run.status().partitioned
    out = run(AddressAdded(at("10.3.0.1"), "application"), 501)
    assert dials(out) == [] and wake(out) == 560
    assert dials(run(Tick(), 559)) == []
    assert dials(run(Tick(), 560)) == [Dial(at("10.3.0.1"), TEMPORARY)]


@pytest.mark.spec("RECO-7", "TYPE-2")
def test_a_probe_that_answers_is_dialled_as_outbound_once_closed() -> None:
    run = Run(max_outbound_connections=1, partition_timeout=60, seed_nodes=(at("10.1.0.1"),))
    (outbound,) = dials(run(Tick(), 0))
    run(Opened(1, outbound.address, OUTBOUND), 1)
    run(AddressAdded(at("10.2.0.1"), "application"), 2)
    (probe,) = dials(run(Tick(), 60))
    assert probe == Dial(at("10.2.0.1"), TEMPORARY)
    run(Opened(2, probe.address, TEMPORARY), 60)
    run(CloseBegan(1, CloseReason.HANDSHAKE_TIMEOUT), 61)  # a free outbound slot
    # Its handshake completes: closed as done; its address waits for that close to end.
    assert decided(run(Established(2, 0), 62)) == [Evict(2, CloseReason.TEMPORARY_DONE)]
    assert dials(run(Closed(2, CloseReason.TEMPORARY_DONE), 63)) == [Dial(at("10.2.0.1"), OUTBOUND)]


@pytest.mark.spec("RECO-7")
def test_a_probe_that_answers_while_the_slots_are_full_makes_room_for_itself() -> None:
    run = Run(
        max_outbound_connections=2,
        rotation_interval=FAR,
        seed_nodes=(at("10.1.0.1"), at("10.1.0.2")),
    )
    assert len(dials(run(Tick(), 0))) == 2
    run(Opened(1, at("10.1.0.1"), OUTBOUND), 0)
    run(Opened(2, at("10.1.0.2"), OUTBOUND), 0)
    run(Established(1, 0), 0)
    run(Established(2, 0), 0)  # both in 10.1: partitioned
    run(RttMeasured(1, 0.5), 0)  # peer 2 scores lower
    (probe,) = dials(run(AddressAdded(at("10.2.0.1"), "application"), 1))
    run(Opened(3, probe.address, TEMPORARY), 1)
    assert decided(run(Established(3, 0), 2)) == [Evict(3, CloseReason.TEMPORARY_DONE)]
    # Once the probe is closed, the weakest outbound connection of the most crowded group
    # makes room, and the address that answered takes the slot.
    out = decided(run(Closed(3, CloseReason.TEMPORARY_DONE), 3))
    assert out == [Evict(2, CloseReason.ROTATED), Dial(at("10.2.0.1"), OUTBOUND)]
    # It is not probed again for partition_timeout, though the node is still partitioned.
    assert [d for d in dials(run(Tick(), 4)) if d.type is TEMPORARY] == []


# Section 11: monitoring.


@pytest.mark.spec("NODE-9")
def test_status_reports_counts_groups_scores_bans_and_waiting_entries() -> None:
    run = Run(
        bans=ban_list(("10.9.0.1", WALL + 500)),
        max_outbound_connections=2,
        reconnect_interval=1000,
        reconnect_max_interval=3600,
        rotation_interval=FAR,
        partition_timeout=FAR,
    )
    run(AddressAdded(at("10.1.0.1"), "application"), 0)
    run(Opened(1, at("10.1.0.1"), OUTBOUND), 0)
    run(Established(1, 0b101), 10)  # two assigned feature bits
    run(RttMeasured(1, 1.5), 11)
    run(RttMeasured(1, 2.5), 12)  # the lowest is kept
    run(AddressAdded(at("10.6.0.1"), "persistent"), 13)  # dialled: counts, no connection yet
    run(InboundOffered(2, at("10.1.0.2", 50002)), 20)
    run(InboundOffered(3, at("10.3.0.1", 50003)), 21)
    run(Misbehaved(3, "WIRE-11"), 22)
    assert dials(run(AddressAdded(at("10.4.0.1"), "application"), 30)) == [
        Dial(at("10.4.0.1"), OUTBOUND)
    ]
    run(DialFailed(at("10.4.0.1"), OUTBOUND), 31)
    next_attempt = 31 + reconnect_delay(1, 1000, 3600, random.Random(SEED).getrandbits(64))
    status = run.manager.status(195, WALL + 195)  # 3 whole minutes after the handshake
    assert status.counts == {"outbound": 1, "persistent": 1, "inbound": 2, "temporary": 0}
    assert status.groups == {"10.1.0.0/16": 2, "10.3.0.0/16": 1}
    assert status.scores == {1: 10 + 15 + 3 + 2 * 5, 2: 0, 3: -20}
    assert status.bans == [("10.9.0.1", WALL + 500)]
    assert status.waiting == [("10.4.0.1:8333", 1, next_attempt)]
    assert run.manager.status(195, WALL + 500).bans == []


# WakeAt: the earliest of the times the spec needs.


@pytest.mark.spec("PRIV-10", "BAN-5", "TYPE-2", "RECO-4")
def test_wake_at_is_the_earliest_time_needed() -> None:
    run = Run(
        bans=ban_list(("10.9.0.1", WALL + 300)),
        max_outbound_connections=2,
        reconnect_interval=100,
        reconnect_max_interval=1000,
        rotation_interval=400,
        temporary_timeout=30,
        partition_timeout=FAR,
        seed_nodes=(at("10.1.0.1"), at("10.1.0.2")),
    )
    assert len(dials(run(Tick(), 0))) == 2
    run(Opened(1, at("10.1.0.1"), OUTBOUND), 0)
    run(Opened(2, at("10.1.0.2"), OUTBOUND), 0)
    run(Established(1, 0), 0)
    run(Established(2, 0), 0)  # both in one group: partitioned
    assert wake(run(Tick(), 1)) == 300  # the ban's end, before the rotation at 400
    (probe,) = dials(run(AddressAdded(at("10.2.0.1"), "application"), 5))
    assert probe == Dial(at("10.2.0.1"), TEMPORARY)
    assert wake(run(Opened(3, probe.address, TEMPORARY), 5)) == 35  # its deadline
    run(CloseBegan(1, CloseReason.PING_TIMEOUT), 6)
    out = run(Closed(1, CloseReason.PING_TIMEOUT), 7)
    next_attempt = 7 + reconnect_delay(1, 100, 1000, random.Random(SEED).getrandbits(64))
    assert 35 < next_attempt < 300 and wake(out) == 35
    assert wake(run(Tick(), 35)) == next_attempt  # the temporary closed: the next attempt
    assert wake(run(Tick(), next_attempt)) == pytest.approx(300)  # wall time rounded
    assert wake(run(Tick(), 300)) == 400
    assert wake(run(Tick(), 400)) == 800


# A random run: facts in any order, the invariants after every one.

IPS = [f"10.{g}.0.{i}" for g in (1, 2, 3) for i in (1, 2)]
OWN = at("10.1.0.1")
ADDRESSES = [at(ip) for ip in IPS] + [at("10.2.0.1", 9000)]
REASONS = [
    CloseReason.PEER_CLOSED,
    CloseReason.NETWORK_ERROR,
    CloseReason.HANDSHAKE_TIMEOUT,
    CloseReason.PING_TIMEOUT,
    CloseReason.PEER_DISCONNECTED,
    CloseReason.SELF_CONNECTION,
    CloseReason.REQUESTED,
    CloseReason.SHUTTING_DOWN,
]
MISBEHAVIOUR = {
    "WIRE-5": CloseReason.INVALID_MESSAGE,
    "WIRE-11": CloseReason.INVALID_MESSAGE,
    "HS-20": CloseReason.UNEXPECTED_MESSAGE,
}


@dataclass
class _Known:
    address: Address
    type: PeerType
    counts: bool = True
    closing: CloseReason | None = None  # its close began, for this reason
    established: bool = False
    opened_at: float = 0.0


class ManagerRun(RuleBasedStateMachine):
    """The node's side: it carries out every decision and reports what a node would."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.peers: dict[int, _Known] = {}
        self.pending: list[Dial] = []  # dials decided, neither opened nor failed yet
        self.admitted: set[int] = set()
        self.refused: set[int] = set()
        self.bans: dict[str, float] = {}
        self.next_peer = 1
        self.next_rotation = 0.0
        self.wake = 0.0

    @initialize(
        limits=st.tuples(
            st.integers(0, 3), st.integers(0, 3), st.integers(0, 5), st.integers(0, 2)
        ),
        seed=st.integers(0, 2**32),
        privacy=st.sampled_from(["none", "standard"]),
    )
    def start(self, limits: tuple[int, int, int, int], seed: int, privacy: str) -> None:
        outbound, inbound, total, temporary = limits
        self.settings = ManagerSettings(
            max_outbound_connections=outbound,
            max_inbound_connections=inbound,
            max_total_connections=total,
            max_temporary_connections=temporary,
            temporary_timeout=30,
            ban_duration=300,
            reconnect_interval=5,
            reconnect_max_interval=60,
            rotation_interval=100,
            partition_timeout=50,
            privacy_level=privacy,
            seed_nodes=(ADDRESSES[2], ADDRESSES[4]),
        )
        self.manager = ConnectionManager(self.settings, KEY, random.Random(seed), 0.0)
        self.next_rotation = self.settings.rotation_interval
        self.feed(Listening(OWN))

    # ---- the node's view, kept from the decisions ---------------------------------------

    def wall(self) -> float:
        return WALL + self.now

    def banned(self, ip: str) -> bool:
        return self.bans.get(ip, -1.0) > self.wall()

    def counting(self) -> list[tuple[Address, PeerType]]:
        """Every connection that counts, the dials in progress included (LIM-12)."""
        found = [(k.address, k.type) for k in self.peers.values() if k.counts]
        return found + [(d.address, d.type) for d in self.pending]

    def feed(self, fact: Fact, offered: int | None = None) -> None:
        out = self.manager.handle(fact, self.now, self.wall())
        assert [type(d) for d in out].count(WakeAt) == 1 and isinstance(out[-1], WakeAt)
        answered = []
        for decision in out[:-1]:
            if isinstance(decision, Dial):
                self.check_dial(decision)
                self.pending.append(decision)
            elif isinstance(decision, Admit | Refuse):
                assert decision.peer == offered, "only the newcomer is admitted or refused"
                answered.append(decision)
                if isinstance(decision, Admit):
                    assert not self.banned(self.peers[decision.peer].address[0])  # BAN-3
                    self.admitted.add(decision.peer)
                else:
                    self.refused.add(decision.peer)
                    self.begin_close(decision.peer, decision.reason)
            elif isinstance(decision, Evict):
                known = self.peers.get(decision.peer)
                assert known is not None and known.counts, f"{decision} names no counting peer"
                self.begin_close(decision.peer, decision.reason)
            elif isinstance(decision, SaveBans):
                bans = decision.document["bans"]
                assert isinstance(bans, list)
                self.bans = {ban["address"]: ban["until"] for ban in bans}
        if offered is not None:
            assert len(answered) == 1, "every accepted connection is admitted or refused"
        assert not self.admitted & self.refused
        self.wake = out[-1].time
        self.check_wake()

    def check_dial(self, dial: Dial) -> None:
        ip = dial.address[0]
        assert not self.banned(ip), f"{dial} to a banned address"  # BAN-4
        assert dial.address != OWN, f"{dial} to the node's own address"  # RECO-2
        assert ip not in {a[0] for a, _ in self.counting()}, f"{dial}: its IP counts"
        closing = {k.address for k in self.peers.values() if k.closing and k.type is not INBOUND}
        assert dial.address not in closing, f"{dial} while its close is not over"  # section 8

    def check_wake(self) -> None:
        needed = [self.next_rotation]
        needed += [self.now + max(0.0, until - self.wall()) for until in self.bans.values()]
        needed += [
            k.opened_at + self.settings.temporary_timeout
            for k in self.peers.values()
            if k.type is TEMPORARY and k.counts
        ]
        assert self.wake <= min(needed)

    def begin_close(self, peer: int, reason: CloseReason) -> None:
        known = self.peers[peer]
        known.counts = False
        known.closing = known.closing or reason

    def new_peer(self) -> int:
        self.next_peer += 1
        return self.next_peer - 1

    def live(self) -> list[int]:
        return sorted(self.peers)

    # ---- what happens ---------------------------------------------------------------

    @rule(ip=st.sampled_from(IPS))
    def offer(self, ip: str) -> None:
        peer = self.new_peer()
        address = at(ip, 40000 + peer)
        self.peers[peer] = _Known(address, INBOUND, opened_at=self.now)
        self.feed(InboundOffered(peer, address), offered=peer)

    @precondition(lambda self: bool(self.pending))
    @rule(index=st.integers(0, 10), fails=st.booleans())
    def carry_out_a_dial(self, index: int, fails: bool) -> None:
        dial = self.pending.pop(index % len(self.pending))
        if fails:
            self.feed(DialFailed(dial.address, dial.type))
            return
        peer = self.new_peer()
        self.peers[peer] = _Known(dial.address, dial.type, opened_at=self.now)
        self.feed(Opened(peer, dial.address, dial.type))

    def pick(self, index: int, counting: bool = True) -> int | None:
        chosen = [p for p in self.live() if self.peers[p].counts or not counting]
        return chosen[index % len(chosen)] if chosen else None

    @rule(index=st.integers(0, 20), features=st.integers(0, 63))
    def establish(self, index: int, features: int) -> None:
        peer = self.pick(index)
        if peer is None or self.peers[peer].established:
            return
        self.peers[peer].established = True
        self.feed(Established(peer, features))

    @rule(index=st.integers(0, 20), seconds=st.sampled_from([0.2, 1.5, 3.0]))
    def measure(self, index: int, seconds: float) -> None:
        peer = self.pick(index)
        if peer is not None and self.peers[peer].established:
            self.feed(RttMeasured(peer, seconds))

    @rule(index=st.integers(0, 20), requirement=st.sampled_from(sorted(MISBEHAVIOUR)))
    def misbehave(self, index: int, requirement: str) -> None:
        peer = self.pick(index)
        if peer is None:
            return
        self.feed(Misbehaved(peer, requirement))
        if self.peers[peer].counts:  # the connection that broke the rule begins its close
            self.begin_close(peer, MISBEHAVIOUR[requirement])
            self.feed(CloseBegan(peer, MISBEHAVIOUR[requirement]))

    @rule(index=st.integers(0, 20), reason=st.sampled_from(REASONS))
    def close_begins(self, index: int, reason: CloseReason) -> None:
        peer = self.pick(index)
        if peer is not None:
            self.begin_close(peer, reason)
            self.feed(CloseBegan(peer, reason))

    @rule(index=st.integers(0, 20), reason=st.sampled_from(REASONS), sent=st.booleans())
    def close_ends(self, index: int, reason: CloseReason, sent: bool) -> None:
        peer = self.pick(index, counting=False)
        if peer is None:
            return
        known = self.peers.pop(peer)
        reason = known.closing or reason
        # A peer's Disconnect may say it found a self-connection (RECO-3).
        self_connection = reason is CloseReason.PEER_DISCONNECTED and sent
        code = CloseReason.SELF_CONNECTION.code if self_connection else None
        self.feed(Closed(peer, reason, peer_reason=code))

    @rule(
        address=st.sampled_from(ADDRESSES),
        source=st.sampled_from(["seed", "application", "persistent"]),
    )
    def add_address(self, address: Address, source: str) -> None:
        self.feed(AddressAdded(address, source))

    def tick(self) -> None:
        if self.now >= self.next_rotation:
            self.next_rotation = self.now + self.settings.rotation_interval
        self.feed(Tick())
        # After a tick no temporary connection outlives its deadline (TYPE-2), and no ban
        # that is over is kept in the saved document (BAN-5).
        late = self.now - self.settings.temporary_timeout  # dialled then or before: timed out
        for known in self.peers.values():
            assert not (known.type is TEMPORARY and known.counts and known.opened_at <= late)
        assert all(until > self.wall() for until in self.bans.values())

    @rule(seconds=st.sampled_from([0.5, 5.0, 31.0, 70.0, 150.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self.tick()

    @rule()
    def the_tick_asked_for(self) -> None:
        self.now = max(self.now, self.wake)
        self.tick()

    # ---- after every step -----------------------------------------------------------

    @invariant()
    def counts_within_the_limits(self) -> None:
        if not hasattr(self, "manager"):
            return
        counting = self.counting()
        kinds = [kind for _, kind in counting]
        assert kinds.count(OUTBOUND) <= self.settings.max_outbound_connections  # LIM-13
        assert kinds.count(TEMPORARY) <= self.settings.max_temporary_connections  # LIM-13
        assert kinds.count(INBOUND) <= self.settings.max_inbound_connections  # LIM-16
        assert len(counting) <= self.settings.max_total_connections  # LIM-14, LIM-16
        status = self.manager.status(self.now, self.wall())
        assert status.counts == {kind.value: kinds.count(kind) for kind in PeerType}  # LIM-12

    @invariant()
    def no_banned_address_keeps_a_connection(self) -> None:
        for known in self.peers.values():
            assert not (known.counts and self.banned(known.address[0])), known  # BAN-2


@pytest.mark.spec("LIM-12", "LIM-13", "LIM-14", "LIM-16", "BAN-2", "BAN-3", "BAN-4", "RECO-2")
def test_random_runs_keep_the_invariants() -> None:
    run_state_machine_as_test(
        ManagerRun, settings=settings(max_examples=200, stateful_step_count=60)
    )


@pytest.mark.spec("BAN-9")
def test_bans_are_bounded_and_the_soonest_to_end_goes_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bans_module, "MAX_BANS", 3)
    kept = bans_module.BanList()
    for index, until in enumerate((50.0, 10.0, 30.0, 40.0)):
        kept.ban(f"127.0.0.{index + 1}", until, "WIRE-9")
    assert [(b.address, b.until) for b in sorted(kept.bans(), key=lambda b: b.until)] == [
        ("127.0.0.3", 30.0),
        ("127.0.0.4", 40.0),
        ("127.0.0.1", 50.0),
    ]
