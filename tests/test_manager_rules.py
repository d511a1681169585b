"""The connection manager's rules (spec/manager.md sections 2 to 10): each function on its own,
the decision vectors against the spec's words restated here without the reference, and broken
variants of each rule that the vectors must catch."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obscura_ref.conformance import decision
from obscura_ref.conformance.results import FAILED
from obscura_ref.manager import (
    backoff,
    bans,
    book,
    eviction,
    groups,
    partition,
    rotation,
    score,
)
from obscura_ref.manager.backoff import MAX_FAILURES, forgotten, reconnect_delay, unit_draw
from obscura_ref.manager.bans import (
    BAN_THRESHOLD,
    MAX_MISBEHAVIOUR_RECORDS,
    Ban,
    BanFileError,
    BanList,
    MisbehaviourRecords,
    misbehaviour_points,
)
from obscura_ref.manager.book import BookEntry, choose_outbound, may_dial_outbound
from obscura_ref.manager.eviction import choose_eviction
from obscura_ref.manager.groups import address_group, canonical_ip, keyed_hash
from obscura_ref.manager.partition import choose_probes, partitioned, probe_slots
from obscura_ref.manager.rotation import choose_rotation
from obscura_ref.manager.score import PeerFacts
from obscura_ref.wire import ERROR_REQUIREMENTS

ROOT = Path(__file__).resolve().parent.parent
# The decision kinds of the manager's rules (obscura_ref/conformance/decision.py).
KINDS = (
    "address_group",
    "score",
    "evict",
    "misbehaviour",
    "ban_expiry",
    "backoff",
    "select_outbound",
    "rotate",
    "partition",
)
KEY = bytes(range(32))
Json = dict[str, Any]


def _cases(kind: str | None = None) -> list[tuple[str, Json, Json]]:
    """The checked-in cases of one kind, or of every kind of the manager's rules."""
    kinds = KINDS if kind is None else (kind,)
    return [c for c in decision.load_cases(ROOT) if c[2]["decision"] in kinds]


def _facts(peer: int, ip: str, opened_at: float, **more: Any) -> PeerFacts:
    """A peer established a second after it was accepted, with no feature, unless told."""
    return PeerFacts(
        peer,
        ip,
        opened_at,
        more.pop("established_at", opened_at + 1.0),
        more.pop("min_rtt", None),
        more.pop("features", 0),
        **more,
    )


# Section 2: address groups and the key.


@pytest.mark.spec("LIM-10")
def test_address_groups() -> None:
    assert address_group("203.0.113.7") == address_group("203.0.255.1") == "203.0.0.0/16"
    assert address_group("127.1.0.1") == "127.1.0.0/16" != address_group("127.2.0.1")
    assert address_group("2001:db8:ffff::1") == address_group("2001:DB8::1") == "2001:db8::/32"
    assert address_group("2001:0:abcd::1") == "2001:0::/32"  # each word written on its own
    assert address_group("::1") == "0:0::/32"
    assert address_group("::ffff:203.0.113.7") == address_group("::ffff:cb00:7107")
    assert address_group("::ffff:203.0.113.7") == "203.0.0.0/16"
    assert address_group("::203.0.113.7") == "0:0::/32"  # IPv4-compatible is not mapped


@pytest.mark.parametrize("text", ["", "localhost", "203.0.113", "1.2.3.4:80", "[::1]", "1::2::3"])
def test_an_address_group_of_what_is_not_an_ip_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        address_group(text)


@pytest.mark.spec("LIM-11")
def test_keyed_hash_is_the_first_8_bytes_of_sha256_of_key_and_text() -> None:
    # Known answers: SHA-256("abc") is ba7816bf8f01cfea 4141..., SHA-256 of 32 zero bytes is
    # 66687aadf862bd77 6c8f... (FIPS 180-2 and the common test value).
    assert keyed_hash(b"", "abc") == keyed_hash(b"ab", "c") == 0xBA7816BF8F01CFEA
    assert keyed_hash(bytes(32), "") == 0x66687AADF862BD77
    assert keyed_hash(KEY, "grüße") == int.from_bytes(
        hashlib.sha256(KEY + "grüße".encode()).digest()[:8], "big"
    )
    assert keyed_hash(KEY, "a") != keyed_hash(bytes(32), "a")


def test_canonical_ip_writes_each_address_one_way() -> None:
    assert canonical_ip("2001:DB8:0:0::1") == "2001:db8::1"
    assert canonical_ip("::ffff:cb00:7107") == "::ffff:203.0.113.7"  # whatever Python's own form
    assert canonical_ip("10.1.0.1") == "10.1.0.1"
    with pytest.raises(ValueError):
        canonical_ip("localhost")


# Section 4: the score.


@pytest.mark.spec("LIM-15")
def test_score_is_the_sum_of_the_table() -> None:
    now = 10_000.0
    handshaking = PeerFacts(1, "10.0.0.1", 0.0, None, None, None)
    assert score.score(handshaking, now) == 0
    full = PeerFacts(1, "10.0.0.1", 0.0, now - 600.0, 0.5, 0x0B, misbehaviour=20)
    assert score.score(full, now) == 10 + 30 + 10 + 15 - 20
    ages = {59.9: 10, 60.0: 11, 1799.0: 39, 1800.0: 40, 1e6: 40}
    for age, points in ages.items():
        assert score.score(PeerFacts(1, "10.0.0.1", 0.0, now - age, None, 0), now) == points
    rtts = {0.0: 30, 0.999: 30, 1.0: 15, 1.999: 15, 2.0: 3, 60.0: 3}
    for rtt, points in rtts.items():
        assert score.score(PeerFacts(1, "10.0.0.1", 0.0, now, rtt, 0), now) == 10 + points
    assert score.score(PeerFacts(1, "10.0.0.1", 0.0, now, None, 0xFFFF_FFFF), now) == 40
    assert score.score(PeerFacts(1, "10.0.0.1", 0.0, None, None, None, 7), now) == -7


# Section 5: eviction.


def _crowd(count: int, group: str, first_peer: int, opened_at: float) -> list[PeerFacts]:
    return [
        _facts(first_peer + n, f"{group}.{n // 200}.{n % 200 + 1}", opened_at + n)
        for n in range(count)
    ]


@pytest.mark.spec("LIM-17")
def test_eviction_protects_a_small_node_whole() -> None:
    assert choose_eviction([], 0.0, KEY) is None
    four_groups = [_facts(n, f"10.{n}.0.1", float(n)) for n in range(4)]
    assert choose_eviction(four_groups, 100.0, KEY) is None
    sixteen = four_groups + [_facts(10 + n, "10.9.0.1", 50.0, min_rtt=0.1) for n in range(8)]
    sixteen += [_facts(20 + n, "10.8.0.1", 60.0, features=0x3F) for n in range(4)]
    assert choose_eviction(sixteen, 10_000.0, KEY) is None
    assert choose_eviction([*sixteen, _facts(99, "10.7.0.1", 99.0)], 10_000.0, KEY) == 99


@pytest.mark.spec("LIM-17")
def test_an_attacker_with_many_addresses_in_few_groups_loses_a_peer() -> None:
    honest = [
        _facts(n, f"10.{n}.0.1", float(n), min_rtt=0.05 * n, features=0x03) for n in range(1, 9)
    ]
    attacker = _crowd(40, "10.100", 100, 1000.0) + _crowd(40, "10.101", 200, 1000.5)
    for _ in range(20):
        victim = choose_eviction(honest + attacker, 5000.0, KEY)
        assert victim in {p.peer for p in attacker}
        attacker = [p for p in attacker if p.peer != victim]
    assert len(attacker) == 60


peer_facts = st.builds(
    PeerFacts,
    peer=st.integers(0, 50),
    ip=st.sampled_from(
        [
            "10.1.0.1",
            "10.1.0.2",
            "10.2.0.1",
            "10.3.0.1",
            "2001:db8::1",
            "::ffff:10.1.0.3",
            "10.4.0.1",
            "10.5.0.1",
        ]
    ),
    opened_at=st.sampled_from([0.0, 1.0, 2.0, 500.0]),
    established_at=st.sampled_from([None, 3.0, 900.0]),
    min_rtt=st.sampled_from([None, 0.5, 1.5, 0.5]),
    features=st.sampled_from([None, 0, 0x3F]),
    misbehaviour=st.sampled_from([0, 20]),
)


@pytest.mark.spec("LIM-17")
@given(st.lists(peer_facts, max_size=40, unique_by=lambda p: p.peer), st.randoms())
def test_eviction_does_not_depend_on_the_order_of_candidates(
    candidates: list[PeerFacts], rng: random.Random
) -> None:
    victim = choose_eviction(candidates, 1000.0, KEY)
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    assert choose_eviction(shuffled, 1000.0, KEY) == victim
    assert victim is None or victim in {p.peer for p in candidates}
    if len(candidates) <= eviction.PROTECT_BY_GROUP:
        assert victim is None  # each in its group's top, or protected by a later step


# Section 6: misbehaviour and bans.


@pytest.mark.spec("BAN-1")
def test_points_by_the_requirement_broken() -> None:
    for requirement in ERROR_REQUIREMENTS.values():
        assert misbehaviour_points(requirement) == (20 if requirement == "WIRE-11" else 100)
    assert misbehaviour_points("WIRE-15") == 100  # payload_too_large under the handshake limit
    assert misbehaviour_points("HS-20") == 50
    assert misbehaviour_points("KA-3") == misbehaviour_points("") == 0


@pytest.mark.spec("BAN-1")
def test_records_reach_the_threshold_then_start_again() -> None:
    records = MisbehaviourRecords()
    assert [records.add("10.0.0.1", "WIRE-11", float(n), 60.0) for n in range(5)] == [
        False,
        False,
        False,
        False,
        True,
    ]
    assert records.points("10.0.0.1") == 0 and len(records) == 0
    assert not records.add("10.0.0.1", "HS-20", 5.0, 60.0)
    assert records.points("10.0.0.1") == 50
    assert not records.add("10.0.0.1", "KA-3", 6.0, 60.0)  # nothing to add
    assert records.points("10.0.0.1") == 50
    assert records.points("10.0.0.2") == 0


@pytest.mark.spec("BAN-1")
def test_records_are_forgotten_after_ban_duration() -> None:
    records = MisbehaviourRecords()
    records.add("10.0.0.1", "HS-20", 0.0, 60.0)
    records.add("10.0.0.2", "WIRE-11", 30.0, 60.0)
    records.add("10.0.0.3", "WIRE-11", 59.0, 60.0)
    records.forget(60.0, 60.0)  # the first is exactly ban_duration old
    assert [records.points(f"10.0.0.{n}") for n in (1, 2, 3)] == [0, 20, 20]
    assert not records.add("10.0.0.2", "WIRE-11", 89.0, 60.0)  # renewed, so kept
    records.forget(118.9, 60.0)
    assert [records.points(f"10.0.0.{n}") for n in (2, 3)] == [40, 20]
    records.forget(119.0, 60.0)
    assert [records.points(f"10.0.0.{n}") for n in (2, 3)] == [40, 0]


def test_records_keep_at_most_max_misbehaviour_records() -> None:
    records = MisbehaviourRecords()
    for n in range(MAX_MISBEHAVIOUR_RECORDS + 1):
        records.add(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", "WIRE-11", float(n), 1e9)
    assert len(records) == MAX_MISBEHAVIOUR_RECORDS
    assert records.points("10.0.0.0") == 0  # the oldest went first
    assert records.points("10.0.0.1") == 20


@pytest.mark.spec("BAN-5")
def test_a_ban_is_over_once_wall_reaches_its_end() -> None:
    found = BanList()
    found.ban("10.0.0.1", 100.0, "HS-20")
    found.ban("10.0.0.2", 50.0, "WIRE-9")
    assert found.next_expiry() == 50.0
    assert found.is_banned("10.0.0.1", 99.999) and not found.is_banned("10.0.0.1", 100.0)
    assert not found.is_banned("10.0.0.3", 0.0)
    assert found.expire(49.0) == []
    assert found.expire(100.0) == [Ban("10.0.0.1", 100.0, "HS-20"), Ban("10.0.0.2", 50.0, "WIRE-9")]
    assert found.next_expiry() is None and found.bans() == []


@pytest.mark.spec("BAN-7")
def test_the_ban_file_round_trip_drops_bans_that_are_over() -> None:
    found = BanList()
    for address, until in (("2001:db8::1", 300.0), ("10.0.0.9", 100.0), ("10.0.0.1", 200.0)):
        found.ban(address, until, "HS-20")
    document = json.loads(json.dumps(found.to_document()))
    assert document == {
        "version": 1,
        "bans": [
            {"address": "10.0.0.1", "until": 200.0, "requirement": "HS-20"},
            {"address": "10.0.0.9", "until": 100.0, "requirement": "HS-20"},
            {"address": "2001:db8::1", "until": 300.0, "requirement": "HS-20"},
        ],
    }
    assert BanList.from_document(document, 0.0).bans() == found.bans()
    loaded = BanList.from_document(document, 200.0)
    assert [ban.address for ban in loaded.bans()] == ["2001:db8::1"]
    hand_written = {
        "version": 1,
        "bans": [{"address": "2001:DB8::2", "until": 9, "requirement": ""}],
    }
    assert BanList.from_document(hand_written, 0.0).is_banned("2001:db8::2", 8.0)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "exactly"),
        ({"version": 1}, "exactly"),
        ({"version": 1, "bans": [], "more": 1}, "exactly"),
        ({"version": 2, "bans": []}, "version must be 1"),
        ({"version": True, "bans": []}, "version must be 1"),
        ({"version": 1, "bans": {}}, '"bans" must be a list'),
        ({"version": 1, "bans": [[]]}, "ban 1: must be an object"),
        ({"version": 1, "bans": [{"address": "10.0.0.1", "until": 1}]}, "ban 1: must be"),
        ({"version": 1, "bans": [{"address": 7, "until": 1, "requirement": ""}]}, "text"),
        ({"version": 1, "bans": [{"address": "host", "until": 1, "requirement": ""}]}, "not an IP"),
        (
            {"version": 1, "bans": [{"address": "10.0.0.1", "until": "1", "requirement": ""}]},
            "until",
        ),
        (
            {"version": 1, "bans": [{"address": "10.0.0.1", "until": math.inf, "requirement": ""}]},
            "until",
        ),
        (
            {"version": 1, "bans": [{"address": "10.0.0.1", "until": False, "requirement": ""}]},
            "until",
        ),
        (
            {"version": 1, "bans": [{"address": "10.0.0.1", "until": 1, "requirement": 5}]},
            "requirement must be text",
        ),
        (
            {"version": 1, "bans": [{"address": "10.0.0.1", "until": 1, "requirement": ""}] * 2},
            "ban 2: 10.0.0.1 is banned twice",
        ),
    ],
)
def test_what_is_not_a_ban_file_is_named(document: object, message: str) -> None:
    with pytest.raises(BanFileError, match=message):
        BanList.from_document(document, 0.0)


# Section 8: backoff.


@pytest.mark.spec("RECO-4")
def test_the_draw_and_the_delay() -> None:
    assert unit_draw(0) == unit_draw(2047) == 0.0
    assert unit_draw(2**63) == 0.5
    assert unit_draw(2**64 - 1) == 1 - 2**-53 < 1.0
    assert reconnect_delay(1, 30.0, 3600.0, 2**63) == 30.0
    assert reconnect_delay(2, 30.0, 3600.0, 0) == 45.0
    assert reconnect_delay(8, 30.0, 3600.0, 2**63) == 3600.0
    assert reconnect_delay(10**9, 30.0, 3600.0, 0) == 2700.0  # no overflow, the cap
    with pytest.raises(ValueError):
        reconnect_delay(0, 30.0, 3600.0, 0)


@pytest.mark.spec("RECO-6", "RECO-9")
def test_an_entry_is_forgotten_at_max_failures_unless_persistent_or_a_seed() -> None:
    assert not forgotten(MAX_FAILURES - 1, persistent=False)
    assert forgotten(MAX_FAILURES, persistent=False)
    assert not forgotten(10**6, persistent=True)
    assert not forgotten(10**6, persistent=False, seed=True)


# Section 7: the book.


def test_book_entries_are_written_ip_port() -> None:
    assert BookEntry("10.1.0.1", 9000, "seed").text == "10.1.0.1:9000"
    assert BookEntry("2001:DB8::1", 8333, "seed").text == "[2001:db8::1]:8333"
    assert BookEntry("::ffff:10.1.0.2", 1, "seed").text == "[::ffff:10.1.0.2]:1"
    assert BookEntry("::ffff:a01:2", 1, "seed").group == "10.1.0.0/16"
    assert BookEntry("10.1.0.1", 1, "persistent").persistent
    assert not BookEntry("10.1.0.1", 1, "connect").persistent


def _choose(entries: Sequence[BookEntry], **more: Any) -> BookEntry | None:
    options: dict[str, Any] = {
        "now": 100.0,
        "key": KEY,
        "own": set(),
        "connected_ips": set(),
        "used_groups": set(),
        "excluded_groups": set(),
        "banned": lambda ip: False,
    }
    return choose_outbound(entries, **{**options, **more})


@pytest.mark.spec("RECO-1", "RECO-2")
def test_choose_outbound() -> None:
    x, y = BookEntry("10.1.0.1", 9000, "seed"), BookEntry("10.2.0.1", 9000, "seed", failures=3)
    # The lower H(address) first, whatever the failures (E-22).
    a, b = sorted([x, y], key=lambda e: keyed_hash(KEY, e.text))
    assert _choose([]) is None
    assert _choose([a, b]) is a and _choose([b, a]) is a
    assert _choose([a, b], used_groups={a.group}) is b
    assert _choose([a, b], excluded_groups={a.group}) is b
    assert _choose([a, b], own={(a.host, 9000)}) is b
    assert _choose([a, b], connected_ips={a.host}) is b
    assert _choose([a, b], banned=lambda ip: ip == a.host) is b
    assert _choose([BookEntry(a.host, 9000, "seed", next_attempt=100.5), b]) is b
    # A persistent entry is reopened as a persistent connection (RECO-5), never as outbound.
    assert _choose([BookEntry("10.1.0.1", 9000, "persistent")]) is None


@pytest.mark.spec("LIM-13", "LIM-14")
def test_limits_of_dialling() -> None:
    assert may_dial_outbound(7, 100, 8, 133) and not may_dial_outbound(8, 100, 8, 133)
    assert not may_dial_outbound(0, 133, 8, 133)
    assert probe_slots(0, 0, 2, 133) == 2 and probe_slots(1, 0, 2, 133) == 1
    assert probe_slots(0, 132, 2, 133) == 1 and probe_slots(3, 140, 2, 133) == 0


# Sections 9 and 10: rotation and partitions.


@pytest.mark.spec("PRIV-10")
def test_rotation() -> None:
    now = 10_000.0
    peers = [_facts(n, f"10.{n}.0.1", 1000.0 + n, features=(1 << n) - 1) for n in range(1, 9)]
    assert choose_rotation(peers, 8, now) == [1, 2]
    assert choose_rotation(peers[:4], 8, now) == [1]
    assert choose_rotation(peers[:3], 8, now) == []
    persistent = [_facts(9, "10.9.0.1", 0.0, persistent=True)]
    assert choose_rotation(persistent + peers[:4], 8, now) == [1]
    assert choose_rotation(
        [_facts(9, "10.9.0.1", 0.0, established_at=None), *peers[:4]], 8, now
    ) == [1]


@pytest.mark.spec("RECO-7")
def test_partitioned() -> None:
    one, other = "10.1.0.1", "10.1.0.2"
    assert not partitioned([], None, 0.0, 119.9, 120.0)
    assert partitioned([], None, 0.0, 120.0, 120.0)
    assert not partitioned([], 50.0, 0.0, 169.0, 120.0)
    assert partitioned([one, other], 200.0, 0.0, 200.0, 120.0)
    assert not partitioned([one], 200.0, 0.0, 200.0, 120.0)
    assert not partitioned([one, "10.2.0.1"], 200.0, 0.0, 200.0, 120.0)


@pytest.mark.spec("RECO-7")
def test_probes() -> None:
    entries = [
        BookEntry("10.1.0.1", 9000, "application"),
        BookEntry("10.2.0.1", 9000, "seed", failures=3),
        BookEntry("10.2.0.2", 9000, "seed", failures=4),
        BookEntry("10.3.0.1", 9000, "seed"),
        BookEntry("10.4.0.1", 9000, "persistent"),
    ]
    options: dict[str, Any] = {
        "now": 0.0,
        "key": KEY,
        "own": set(),
        "connected_ips": set(),
        "banned": lambda ip: False,
    }
    chosen = choose_probes(entries, connected_groups={"10.3.0.0/16"}, free_slots=5, **options)
    assert [e.text for e in chosen] == ["10.2.0.1:9000", "10.1.0.1:9000"]
    assert choose_probes(entries, connected_groups=set(), free_slots=0, **options) == []


# The vectors, by the spec's words restated here without the reference.


def _h(key_hex: str, text: str) -> int:
    return int.from_bytes(
        hashlib.sha256(bytes.fromhex(key_hex) + text.encode()).digest()[:8], "big"
    )


def _group_says(ip: str) -> str:
    address = ipaddress.ip_address(ip)
    if address.version == 6 and address.packed[:12] == bytes(10) + b"\xff\xff":
        address = ipaddress.IPv4Address(address.packed[12:])
    if address.version == 4:
        first, second = str(address).split(".")[:2]
        return f"{first}.{second}.0.0/16"
    words = address.exploded.split(":")
    return f"{int(words[0], 16):x}:{int(words[1], 16):x}::/32"


def _score_says(peer: Json, now: float) -> int:
    points: int = -peer["misbehaviour"]
    if peer["established_at"] is not None:
        points += 10 + min(30, math.floor((now - peer["established_at"]) / 60))
    rtt = peer["min_rtt"]
    if rtt is not None:
        points += 30 if rtt < 1 else 15 if rtt < 2 else 3
    if peer["features"] is not None:
        points += 5 * bin(peer["features"] & 0x3F).count("1")
    return points


def _evict_says(given: Json) -> Json:
    now, key = given["now"], given["key"]

    def age(c: Json) -> tuple[float, int]:
        return c["opened_at"], c["peer"]

    rest = sorted(given["candidates"], key=age)
    top = sorted({_group_says(c["ip"]) for c in rest}, key=lambda g: _h(key, g))[-4:]
    rest = [
        c
        for c in rest
        if c not in [min((d for d in rest if _group_says(d["ip"]) == g), key=age) for g in top]
    ]
    fast = sorted(
        (c for c in rest if c["min_rtt"] is not None), key=lambda c: (c["min_rtt"], age(c))
    )[:8]
    rest = [c for c in rest if c not in fast]
    best = sorted(rest, key=lambda c: (-_score_says(c, now), age(c)))[:4]
    rest = [c for c in rest if c not in best]
    rest = rest[len(rest) // 2 :]
    if not rest:
        return {"evict": None}
    by_group: dict[str, list[Json]] = {}
    for c in rest:
        by_group.setdefault(_group_says(c["ip"]), []).append(c)
    group = max(
        by_group,
        key=lambda g: (len(by_group[g]), max(c["opened_at"] for c in by_group[g]), _h(key, g)),
    )
    victim = min(by_group[group], key=lambda c: (_score_says(c, now), -c["opened_at"], c["peer"]))
    return {"evict": victim["peer"]}


def _misbehaviour_says(given: Json) -> Json:
    table = {"WIRE-11": 20, "HS-20": 50, "WIRE-15": 100}
    table |= {req: 100 for req in ERROR_REQUIREMENTS.values() if req != "WIRE-11"}
    records: dict[str, list[float]] = {}  # ip -> [points, last report]
    outcomes = []
    for report in given["reports"]:
        ip, wall = report["ip"], report["wall"]
        records = {a: r for a, r in records.items() if wall - r[1] < given["ban_duration"]}
        points = table.get(report["requirement"], 0)
        record = records.setdefault(ip, [0, wall])
        if points:
            record[0] += points
            record[1] = wall
        until = None
        if record[0] >= 100:
            del records[ip]
            until = wall + given["ban_duration"]
        outcomes.append({"points": records.get(ip, [0])[0], "banned_until": until})
    return {"reports": outcomes}


def _ban_expiry_says(given: Json) -> Json:
    ends = {ban["address"]: ban["until"] for ban in given["bans"]}
    left = sorted(a for a, until in ends.items() if given["wall"] < until)
    return {
        "banned": left,
        "expired": sorted(a for a in ends if a not in left),
        "next_expiry": min((ends[a] for a in left), default=None),
    }


def _backoff_says(given: Json) -> Json:
    n = given["failures"]
    if not given["persistent"] and not given.get("seed", False) and n >= 5:
        return {"removed": True}
    u = (int(given["u64"]) >> 11) / 2**53
    growth = given["reconnect_interval"] * 2.0 ** (n - 1) if n <= 1024 else math.inf
    return {
        "removed": False,
        "delay": min(given["reconnect_max_interval"], growth) * (0.75 + 0.5 * u),
    }


def _text(entry: Json) -> str:
    host = str(ipaddress.ip_address(entry["host"]))
    if host.startswith("::ffff:") and "." not in host:  # Python before 3.13
        host = "::ffff:" + str(ipaddress.IPv4Address(ipaddress.ip_address(host).packed[12:]))
    return f"[{host}]:{entry['port']}" if ":" in host else f"{host}:{entry['port']}"


def _due(given: Json, entry: Json, ips: set[str]) -> bool:
    own = {(o["host"], o["port"]) for o in given["own"]}
    return (
        entry["source"] != "persistent"
        and entry["next_attempt"] <= given["now"]
        and entry["host"] not in given["banned"]
        and (entry["host"], entry["port"]) not in own
        and entry["host"] not in ips
    )


def _select_outbound_says(given: Json) -> Json:
    connections = [dict(c) for c in given["connections"]]
    excluded = {_group_says(ip) for ip in given["rotated"]}
    dials = []
    while (
        sum(c["type"] == "outbound" for c in connections) < given["max_outbound_connections"]
        and len(connections) < given["max_total_connections"]
    ):
        used = {
            _group_says(c["ip"]) for c in connections if c["type"] in ("outbound", "persistent")
        }
        ips = {c["ip"] for c in connections}
        choices = [
            e
            for e in given["entries"]
            if _due(given, e, ips) and _group_says(e["host"]) not in excluded
        ]
        if not choices:
            break
        best = min(
            choices,
            key=lambda e: (
                _group_says(e["host"]) in used,
                _h(given["key"], _text(e)),
            ),
        )
        dials.append(_text(best))
        connections.append({"ip": best["host"], "type": "outbound"})
    return {"dials": dials}


def _rotate_says(given: Json) -> Json:
    established = [
        p for p in given["outbound"] if p["established_at"] is not None and not p["persistent"]
    ]
    if len(established) < given["max_outbound_connections"] / 2:
        return {"rotate": []}
    established.sort(key=lambda p: (_score_says(p, given["now"]), p["opened_at"], p["peer"]))
    return {"rotate": sorted(p["peer"] for p in established[: max(1, len(established) // 4)])}


def _partition_says(given: Json) -> Json:
    connections = given["connections"]
    up = [
        c["ip"] for c in connections if c["type"] in ("outbound", "persistent") and c["established"]
    ]
    since = given["last_established_at"]
    silent = (
        not up
        and given["now"] - (given["started_at"] if since is None else since)
        >= given["partition_timeout"]
    )
    if not (silent or (len(up) >= 2 and len({_group_says(ip) for ip in up}) == 1)):
        return {"partitioned": False, "probes": []}
    slots = min(
        given["max_temporary_connections"] - sum(c["type"] == "temporary" for c in connections),
        given["max_total_connections"] - len(connections),
    )
    taken = {_group_says(c["ip"]) for c in connections}
    ips = {c["ip"] for c in connections}
    order = sorted(
        (e for e in given["entries"] if _due(given, e, ips)),
        key=lambda e: (e["source"] != "seed", _h(given["key"], _text(e))),
    )
    probes: list[str] = []
    for entry in order:
        if (
            len(probes) < slots
            and _group_says(entry["host"]) not in taken
            and entry["host"] not in ips
        ):
            probes.append(_text(entry))
            taken.add(_group_says(entry["host"]))
            ips.add(entry["host"])
    return {"partitioned": True, "probes": probes}


SAYS: dict[str, Callable[[Json], Json]] = {
    "address_group": lambda g: {
        "group": _group_says(g["ip"]),
        "hash": str(_h(g["key"], _group_says(g["ip"]))),
    },
    "score": lambda g: {"score": _score_says(g["peer"], g["now"])},
    "evict": _evict_says,
    "misbehaviour": _misbehaviour_says,
    "ban_expiry": _ban_expiry_says,
    "backoff": _backoff_says,
    "select_outbound": _select_outbound_says,
    "rotate": _rotate_says,
    "partition": _partition_says,
}


@pytest.mark.spec(
    "LIM-10",
    "LIM-11",
    "LIM-15",
    "LIM-17",
    "BAN-1",
    "BAN-5",
    "RECO-4",
    "RECO-6",
    "RECO-1",
    "RECO-2",
    "PRIV-10",
    "RECO-7",
)
def test_the_expected_manager_decisions_are_the_spec_s() -> None:
    cases = _cases()
    assert {case["decision"] for _, _, case in cases} == set(SAYS) == set(KINDS)
    for name, _, case in cases:
        says = SAYS[case["decision"]](case["input"])
        assert case["expected"] == says, f"{name} case {case['tcId']}: {case['comment']}"
        assert json.dumps(case["expected"]) == json.dumps(says)  # 30.0 stays 30.0


def test_an_expected_double_is_met_by_an_integer_of_its_value() -> None:
    name, group, case = next(c for c in _cases("backoff") if c[2]["expected"].get("delay") == 30.0)
    assert json.dumps(case["expected"]["delay"]) == "30.0"

    def integral(request: Json) -> Json:
        response = decision.decide(request)
        response["output"]["delay"] = 30
        return response

    assert decision.replay([(name, group, case)], integral)[0].outcome != FAILED

    def boolean(request: Json) -> Json:
        response = decision.decide(request)
        response["output"]["delay"] = True
        return response

    assert decision.replay([(name, group, case)], boolean)[0].outcome == FAILED


# Mutants: each breaks one rule in this process; the vectors, replayed with decide as the
# adapter, must fail at least one case.

Mutant = Callable[[pytest.MonkeyPatch], None]


def _everywhere(m: pytest.MonkeyPatch, name: str, value: object) -> None:
    """Patch ``name`` in every manager module that looks it up."""
    for module in (groups, score, eviction, bans, backoff, book, rotation, partition):
        if hasattr(module, name):
            m.setattr(module, name, value)


def _survivors(mutants: dict[str, Mutant]) -> list[str]:
    """The mutants under which every manager vector still passes."""
    cases = _cases()
    survivors = []
    for name, patch in mutants.items():
        with pytest.MonkeyPatch.context() as m:
            patch(m)
            results = decision.replay(cases, decision.decide)
        if all(result.outcome != FAILED for result in results):
            survivors.append(name)
    return survivors


def _group_mutant(change: Callable[[str], str | None]) -> Mutant:
    original = groups.address_group

    def mutant(ip: str) -> str:
        return change(ip) or original(ip)

    return lambda m: _everywhere(m, "address_group", mutant)


def _v6(ip: str) -> ipaddress.IPv6Address | None:
    address = ipaddress.ip_address(ip)
    return address if isinstance(address, ipaddress.IPv6Address) else None


def _words(ip: str, count: int, width: str = "x") -> str | None:
    address = _v6(ip)
    if address is None or address.ipv4_mapped is not None:
        return None
    words = [int(w, 16) for w in address.exploded.split(":")[:count]]
    return ":".join(f"{w:{width}}" for w in words) + f"::/{16 * count}"


def _hash_mutant(digest: Callable[[bytes, str], bytes]) -> Mutant:
    def mutant(key: bytes, text: str) -> int:
        return int.from_bytes(digest(key, text), "big")

    return lambda m: _everywhere(m, "keyed_hash", mutant)


def test_the_unbroken_reference_survives() -> None:
    assert _survivors({"unbroken": lambda m: None}) == ["unbroken"]


@pytest.mark.spec("LIM-10", "LIM-11")
def test_vectors_catch_broken_groups_and_hashes() -> None:
    sha = hashlib.sha256
    mutants: dict[str, Mutant] = {
        "ipv4-slash-24": _group_mutant(
            lambda ip: None if _v6(ip) else ".".join(ip.split(".")[:3]) + ".0/24"
        ),
        "ipv6-slash-48": _group_mutant(lambda ip: _words(ip, 3)),
        "ipv6-leading-zeros": _group_mutant(lambda ip: _words(ip, 2, "04x")),
        "mapped-as-ipv6": _group_mutant(
            lambda ip: "0:0::/32" if (a := _v6(ip)) and a.ipv4_mapped else None
        ),
        "loopback-one-group": _group_mutant(
            lambda ip: "127.0.0.0/8" if ip.startswith("127.") else None
        ),
        "hash-little-endian": lambda m: _everywhere(
            m,
            "keyed_hash",
            lambda key, text: int.from_bytes(sha(key + text.encode()).digest()[:8], "little"),
        ),
        "hash-text-then-key": _hash_mutant(lambda key, text: sha(text.encode() + key).digest()[:8]),
        "hash-last-8-bytes": _hash_mutant(lambda key, text: sha(key + text.encode()).digest()[-8:]),
        "hash-without-key": _hash_mutant(lambda key, text: sha(text.encode()).digest()[:8]),
    }
    assert _survivors(mutants) == []


def _score_variant(change: Callable[[PeerFacts, float, int], int]) -> Mutant:
    original = score.score

    def mutant(peer: PeerFacts, now: float) -> int:
        return change(peer, now, original(peer, now))

    return lambda m: _everywhere(m, "score", mutant)


def _uptime(peer: PeerFacts, now: float, whole: Callable[[float], int]) -> int:
    if peer.established_at is None:
        return 0
    return min(30, max(0, whole((now - peer.established_at) / 60)))


@pytest.mark.spec("LIM-15")
def test_vectors_catch_broken_scores() -> None:
    original_rtt = score._rtt_points
    mutants: dict[str, Mutant] = {
        "rtt-1s-is-fast": lambda m: m.setattr(
            score, "_rtt_points", lambda rtt: 30 if rtt == 1.0 else original_rtt(rtt)
        ),
        "rtt-2s-is-medium": lambda m: m.setattr(
            score, "_rtt_points", lambda rtt: 15 if rtt == 2.0 else original_rtt(rtt)
        ),
        "no-handshake-points": lambda m: m.setattr(score, "HANDSHAKE_POINTS", 0),
        "uptime-uncapped": lambda m: m.setattr(score, "MAX_UPTIME_POINTS", 10**9),
        "uptime-capped-at-29": lambda m: m.setattr(score, "MAX_UPTIME_POINTS", 29),
        "uptime-rounded": _score_variant(
            lambda p, now, s: s - _uptime(p, now, math.floor) + _uptime(p, now, round)
        ),
        "unassigned-features-count": lambda m: m.setattr(score, "ASSIGNED_FEATURES", 0xFFFF_FFFF),
        "feature-points-4": lambda m: m.setattr(score, "FEATURE_POINTS", 4),
        "misbehaviour-ignored": _score_variant(lambda p, now, s: s + p.misbehaviour),
        "slow-rtt-nothing": lambda m: m.setattr(score, "SLOW_POINTS", 0),
    }
    assert _survivors(mutants) == []


def _step1_variant(newest: bool = False, lowest: bool = False) -> Mutant:
    def step1(left: list[PeerFacts], group: dict[int, str], rank: dict[str, int]) -> set[int]:
        order = sorted(rank, key=lambda name: rank[name], reverse=not lowest)[:4]
        members = list(reversed(left)) if newest else left
        return {next(p.peer for p in members if group[p.peer] == name) for name in order}

    return lambda m: m.setattr(eviction, "_step1", step1)


def _evict_even_when_all_protected(m: pytest.MonkeyPatch) -> None:
    original = eviction.choose_eviction

    def mutant(candidates: Sequence[PeerFacts], now: float, key: bytes) -> int | None:
        found = original(candidates, now, key)
        if found is None and candidates:
            return max(candidates, key=lambda p: (p.opened_at, p.peer)).peer
        return found

    m.setattr(eviction, "choose_eviction", mutant)


@pytest.mark.spec("LIM-17")
def test_vectors_catch_broken_eviction() -> None:
    def const(name: str, value: int) -> Mutant:
        return lambda m: m.setattr(eviction, name, value)

    mutants: dict[str, Mutant] = {
        "group-protects-3": const("PROTECT_BY_GROUP", 3),
        "group-protects-5": const("PROTECT_BY_GROUP", 5),
        "rtt-protects-7": const("PROTECT_BY_RTT", 7),
        "rtt-protects-9": const("PROTECT_BY_RTT", 9),
        "score-protects-3": const("PROTECT_BY_SCORE", 3),
        "score-protects-5": const("PROTECT_BY_SCORE", 5),
        "step1-newest-of-group": _step1_variant(newest=True),
        "step1-lowest-hashes": _step1_variant(lowest=True),
        "step2-unmeasured-protected": lambda m: m.setattr(
            eviction,
            "_step2",
            lambda left: {p.peer for p in sorted(left, key=lambda p: p.min_rtt or 0.0)[:8]},
        ),
        "step2-slowest-protected": lambda m: m.setattr(
            eviction,
            "_step2",
            lambda left: {
                p.peer
                for p in sorted(
                    (p for p in left if p.min_rtt is not None), key=lambda p: -(p.min_rtt or 0.0)
                )[:8]
            },
        ),
        "step3-lowest-scores-protected": lambda m: m.setattr(
            eviction,
            "_step3",
            lambda left, now: {p.peer for p in sorted(left, key=lambda p: score.score(p, now))[:4]},
        ),
        "step4-rounds-up": lambda m: m.setattr(
            eviction, "_step4", lambda left: left[(len(left) + 1) // 2 :]
        ),
        "step4-protects-the-newest": lambda m: m.setattr(
            eviction, "_step4", lambda left: left[: len(left) - len(left) // 2]
        ),
        "step5-evicts-anyway": _evict_even_when_all_protected,
        "step6-fewest-candidates": lambda m: m.setattr(
            eviction,
            "_crowding",
            lambda members, rank: (-len(members), max(p.opened_at for p in members), rank),
        ),
        "step6-oldest-newest": lambda m: m.setattr(
            eviction,
            "_crowding",
            lambda members, rank: (len(members), -max(p.opened_at for p in members), rank),
        ),
        "step6-lower-hash": lambda m: m.setattr(
            eviction,
            "_crowding",
            lambda members, rank: (len(members), max(p.opened_at for p in members), -rank),
        ),
        "step6-highest-score": lambda m: m.setattr(
            eviction, "_weakness", lambda p, now: (-score.score(p, now), -p.opened_at, p.peer)
        ),
        "step6-oldest-first": lambda m: m.setattr(
            eviction, "_weakness", lambda p, now: (score.score(p, now), p.opened_at, p.peer)
        ),
        "step6-higher-peer": lambda m: m.setattr(
            eviction, "_weakness", lambda p, now: (score.score(p, now), -p.opened_at, -p.peer)
        ),
        "ties-newest-first": lambda m: m.setattr(
            eviction, "_age", lambda p: (-p.opened_at, -p.peer)
        ),
        "ties-higher-peer-first": lambda m: m.setattr(
            eviction, "_age", lambda p: (p.opened_at, -p.peer)
        ),
    }
    assert _survivors(mutants) == []


def _records_variant(
    after: Callable[[MisbehaviourRecords, str, float, bool, list[float] | None], None],
) -> Mutant:
    """``after(records, ip, wall, banned, the record's [points, last] before the report)``."""
    original = MisbehaviourRecords.add

    def add(self: MisbehaviourRecords, ip: str, req: str, wall: float, duration: float) -> bool:
        self.forget(wall, duration)
        record = self._records.get(ip)
        before = None if record is None else [record.points, record.last]
        banned = original(self, ip, req, wall, duration)
        after(self, ip, wall, banned, before)
        return banned

    return lambda m: m.setattr(MisbehaviourRecords, "add", add)


def _kept_after_ban(
    records: MisbehaviourRecords, ip: str, wall: float, banned: bool, before: list[float] | None
) -> None:
    if banned:
        records._records[ip] = bans._Record(BAN_THRESHOLD, wall)


def _not_renewed(
    records: MisbehaviourRecords, ip: str, wall: float, banned: bool, before: list[float] | None
) -> None:
    if before is not None and ip in records._records:
        records._records[ip].last = before[1]


@pytest.mark.spec("BAN-1", "BAN-5")
def test_vectors_catch_broken_bans() -> None:
    original_forget = MisbehaviourRecords.forget
    mutants: dict[str, Mutant] = {
        "wire-11-is-100": lambda m: m.setitem(bans.POINTS, "WIRE-11", 100),
        "hs-20-is-20": lambda m: m.setitem(bans.POINTS, "HS-20", 20),
        "wire-15-not-named": lambda m: m.delitem(bans.POINTS, "WIRE-15"),
        "wire-44-not-named": lambda m: m.delitem(bans.POINTS, "WIRE-44"),
        "threshold-exceeded": lambda m: m.setattr(bans, "BAN_THRESHOLD", BAN_THRESHOLD + 1),
        "points-kept-after-ban": _records_variant(_kept_after_ban),
        "reports-do-not-renew": _records_variant(_not_renewed),
        "forgotten-strictly-after": lambda m: m.setattr(
            MisbehaviourRecords,
            "forget",
            lambda self, wall, d: original_forget(self, wall, math.nextafter(d, math.inf)),
        ),
        "never-forgotten": lambda m: m.setattr(MisbehaviourRecords, "forget", lambda *a: None),
        "banned-at-the-end": lambda m: m.setattr(
            BanList,
            "is_banned",
            lambda self, a, wall: a in self._bans and wall <= self._bans[a].until,
        ),
        "over-only-after-the-end": lambda m: m.setattr(
            BanList,
            "expire",
            lambda self, wall: [self._bans.pop(b.address) for b in self.bans() if wall > b.until],
        ),
        "next-expiry-latest": lambda m: m.setattr(
            BanList,
            "next_expiry",
            lambda self: max((b.until for b in self._bans.values()), default=None),
        ),
    }
    assert _survivors(mutants) == []


def _delay_variant(formula: Callable[[int, float, float, float], float]) -> Mutant:
    def delay(failures: int, interval: float, cap: float, u64: int) -> float:
        return formula(failures, interval, cap, backoff.unit_draw(u64))

    return lambda m: m.setattr(backoff, "reconnect_delay", delay)


@pytest.mark.spec("RECO-4", "RECO-6")
def test_vectors_catch_broken_backoff() -> None:
    mutants: dict[str, Mutant] = {
        "doubles-from-the-first": _delay_variant(
            lambda n, i, cap, u: min(cap, i * 2.0 ** min(n, 1023)) * (0.75 + 0.5 * u)
        ),
        "cap-after-the-factor": _delay_variant(
            lambda n, i, cap, u: min(cap, i * 2.0 ** min(n - 1, 1023) * (0.75 + 0.5 * u))
        ),
        "factor-distributed": _delay_variant(
            lambda n, i, cap, u: (b := min(cap, i * 2.0 ** min(n - 1, 1023))) * 0.75 + b * 0.5 * u
        ),
        "factor-0.5-to-1.5": _delay_variant(
            lambda n, i, cap, u: min(cap, i * 2.0 ** min(n - 1, 1023)) * (0.5 + u)
        ),
        "low-53-bits": lambda m: m.setattr(backoff, "unit_draw", lambda x: (x % 2**53) / 2**53),
        "u64-over-2-64": lambda m: m.setattr(backoff, "unit_draw", lambda x: x / 2**64),
        "max-failures-4": lambda m: m.setattr(backoff, "MAX_FAILURES", 4),
        "max-failures-6": lambda m: m.setattr(backoff, "MAX_FAILURES", 6),
        "persistent-forgotten": lambda m: m.setattr(
            backoff, "forgotten", lambda failures, persistent, seed=False: failures >= MAX_FAILURES
        ),
        "seed-forgotten": lambda m: m.setattr(
            backoff,
            "forgotten",
            lambda failures, persistent, seed=False: not persistent and failures >= MAX_FAILURES,
        ),
    }
    assert _survivors(mutants) == []


def _eligible_variant(**change: Any) -> Mutant:
    original = book.eligible

    def eligible(entry: BookEntry, **options: Any) -> bool:
        if "now" in change:
            options["now"] = change["now"](options["now"])
        return original(entry, **{**options, **{k: v for k, v in change.items() if k != "now"}})

    def patch(m: pytest.MonkeyPatch) -> None:
        m.setattr(book, "eligible", eligible)
        m.setattr(partition, "eligible", eligible)

    return patch


def _without_rotated_groups(m: pytest.MonkeyPatch) -> None:
    original = book.choose_outbound

    def choose(entries: Any, **options: Any) -> BookEntry | None:
        return original(entries, **{**options, "excluded_groups": set()})

    m.setattr(book, "choose_outbound", choose)


def _ipv6_without_brackets(m: pytest.MonkeyPatch) -> None:
    m.setattr(BookEntry, "text", property(lambda e: f"{canonical_ip(e.host)}:{e.port}"))


@pytest.mark.spec("RECO-1", "RECO-2", "LIM-13", "LIM-14", "BAN-4")
def test_vectors_catch_broken_outbound_choices() -> None:
    h = keyed_hash
    mutants: dict[str, Mutant] = {
        "used-groups-ignored": lambda m: m.setattr(
            book, "preference", lambda e, used, key: (False, h(key, e.text))
        ),
        "fewer-failures-first": lambda m: m.setattr(  # the order E-22 withdrew
            book, "preference", lambda e, used, key: (e.group in used, e.failures, h(key, e.text))
        ),
        "higher-hash-first": lambda m: m.setattr(
            book, "preference", lambda e, used, key: (e.group in used, -h(key, e.text))
        ),
        "hash-of-the-ip-only": lambda m: m.setattr(
            book, "preference", lambda e, used, key: (e.group in used, h(key, e.host))
        ),
        "own-address-dialled": _eligible_variant(own=set()),
        "connected-ip-dialled": _eligible_variant(connected_ips=set()),
        "banned-dialled": _eligible_variant(banned=lambda ip: False),
        "due-only-after-its-time": _eligible_variant(now=lambda t: math.nextafter(t, -math.inf)),
        "rotated-groups-eligible": _without_rotated_groups,
        "outbound-limit-inclusive": lambda m: m.setattr(
            book, "may_dial_outbound", lambda o, t, mo, mt: o <= mo and t < mt
        ),
        "total-limit-ignored": lambda m: m.setattr(
            book, "may_dial_outbound", lambda o, t, mo, mt: o < mo
        ),
        "ipv6-without-brackets": _ipv6_without_brackets,
    }
    assert _survivors(mutants) == []


@pytest.mark.spec("PRIV-10")
def test_vectors_catch_broken_rotation() -> None:
    def count(formula: Callable[[int, int], int]) -> Mutant:
        return lambda m: m.setattr(rotation, "rotation_count", formula)

    mutants: dict[str, Mutant] = {
        "half-exclusive": count(lambda e, mo: 0 if 2 * e <= mo else max(1, e // 4)),
        "no-minimum-of-one": count(lambda e, mo: 0 if 2 * e < mo else e // 4),
        "a-quarter-rounded-up": count(lambda e, mo: 0 if 2 * e < mo else max(1, -(-e // 4))),
        "always-rotates": count(lambda e, mo: max(1, e // 4)),
        "persistent-rotated": lambda m: m.setattr(
            rotation, "rotatable", lambda p: p.established_at is not None
        ),
        "handshaking-rotated": lambda m: m.setattr(
            rotation, "rotatable", lambda p: not p.persistent
        ),
        "newest-first": lambda m: m.setattr(
            rotation, "rotation_order", lambda p, now: (score.score(p, now), -p.opened_at, p.peer)
        ),
        "highest-score-first": lambda m: m.setattr(
            rotation, "rotation_order", lambda p, now: (-score.score(p, now), p.opened_at, p.peer)
        ),
    }
    assert _survivors(mutants) == []


def _partitioned_variant(
    silent: Callable[[float, float], bool] = lambda quiet, timeout: quiet >= timeout,
    crowded: Callable[[int, int], bool] = lambda count, groups_: count >= 2 and groups_ == 1,
) -> Mutant:
    def mutant(
        established: Sequence[str],
        last: float | None,
        started: float,
        now: float,
        timeout: float,
    ) -> bool:
        if not established:
            return silent(now - (started if last is None else last), timeout)
        return crowded(len(established), len({address_group(ip) for ip in established}))

    return lambda m: m.setattr(partition, "partitioned", mutant)


def _probes_share_groups(m: pytest.MonkeyPatch) -> None:
    def choose(
        entries: Any, *, key: bytes, connected_groups: set[str], free_slots: int, **options: Any
    ) -> list[BookEntry]:
        fresh = [
            e for e in entries if book.eligible(e, **options) and e.group not in connected_groups
        ]
        return sorted(fresh, key=lambda e: partition.probe_order(e, key))[:free_slots]

    m.setattr(partition, "choose_probes", choose)


@pytest.mark.spec("RECO-7", "LIM-13", "LIM-14")
def test_vectors_catch_broken_partitions() -> None:
    h = keyed_hash
    mutants: dict[str, Mutant] = {
        "silence-strictly-longer": _partitioned_variant(silent=lambda q, t: q > t),
        "silence-ignored": _partitioned_variant(silent=lambda q, t: False),
        "one-connection-is-one-group": _partitioned_variant(crowded=lambda c, g: g == 1),
        "one-group-ignored": _partitioned_variant(crowded=lambda c, g: False),
        "seeds-not-first": lambda m: m.setattr(
            partition, "probe_order", lambda e, key: (False, h(key, e.text))
        ),
        "fewer-failures-first": lambda m: m.setattr(  # the order E-22 withdrew
            partition,
            "probe_order",
            lambda e, key: (e.source != "seed", e.failures, h(key, e.text)),
        ),
        "probes-share-groups": _probes_share_groups,
        "temporary-limit-ignored": lambda m: m.setattr(
            partition, "probe_slots", lambda t, total, mt, mtotal: max(0, mtotal - total)
        ),
        "total-limit-ignored": lambda m: m.setattr(
            partition, "probe_slots", lambda t, total, mt, mtotal: max(0, mt - t)
        ),
    }
    assert _survivors(mutants) == []


_BAN_STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("ban"),
            st.sampled_from(["10.0.0.1", "10.0.0.2", "10.1.0.1", "::1"]),
            st.integers(0, 20),
        ),
        st.tuples(st.just("expire"), st.just(""), st.integers(0, 20)),
    ),
    max_size=60,
)


@pytest.mark.spec("BAN-5", "BAN-9")
@given(_BAN_STEPS)
def test_the_ban_list_answers_as_a_scan_of_every_ban_would(
    steps: list[tuple[str, str, int]],
) -> None:
    """The ban list keeps its bans' ends in a heap (so that the next end costs no scan of
    every ban); it must answer exactly as the plain scans of the rules would: the soonest end,
    the bans over at a time (by address), and beyond the limit the ban that ends soonest (the
    lowest address among equals) dropped."""
    import obscura_ref.manager.bans as bans_module

    limit = 3
    original = bans_module.MAX_BANS
    bans_module.MAX_BANS = limit
    try:
        bans, model = BanList(), {}
        for op, address, time_ in steps:
            if op == "ban":
                bans.ban(address, float(time_), "WIRE-5")
                model[address] = float(time_)
                if len(model) > limit:
                    del model[min(model, key=lambda a: (model[a], a))]
            else:
                over = [ban.address for ban in bans.expire(float(time_))]
                assert over == sorted(a for a, until in model.items() if time_ >= until)
                model = {a: until for a, until in model.items() if time_ < until}
            assert {b.address: b.until for b in bans.bans()} == model
            assert bans.next_expiry() == min(model.values(), default=None)
            assert len(bans._ends) <= 2 * len(model) + 65  # the stale entries stay bounded
    finally:
        bans_module.MAX_BANS = original
