"""Inbound eviction (spec/manager.md section 5): which inbound peer makes room for a newcomer.

Bitcoin Core's rule, with the peer score of section 4: protect the peers an attacker cannot
imitate cheaply (one per well-placed group, the fastest, the best scored, the oldest), then evict
from the group with the most of what is left, where an attacker's many cheap addresses gather.
Each step is a function of its own, named after the row of the table it meets.
"""

from __future__ import annotations

from collections.abc import Sequence

from .groups import address_group, keyed_hash
from .score import PeerFacts, score

PROTECT_BY_GROUP = 4  # step 1: groups whose oldest candidate is protected
PROTECT_BY_RTT = 8  # step 2: candidates with the lowest measured round-trip time
PROTECT_BY_SCORE = 4  # step 3: candidates with the highest score

Groups = dict[int, str]  # peer number -> its address group
Ranks = dict[str, int]  # address group -> H(group)


def _age(peer: PeerFacts) -> tuple[float, int]:
    return peer.opened_at, peer.peer  # older first, then the lower peer number


def _step1(left: list[PeerFacts], group: Groups, rank: Ranks) -> set[int]:
    """The oldest candidate of each of the groups of the highest H(group). Two groups share a
    hash only by a 64-bit collision; their text then orders them, to be total."""
    top = sorted(rank, key=lambda name: (rank[name], name), reverse=True)[:PROTECT_BY_GROUP]
    return {next(p.peer for p in left if group[p.peer] == name) for name in top}


def _step2(left: list[PeerFacts]) -> set[int]:
    """The lowest measured round-trip times; an unmeasured candidate is not protected."""
    measured = [(p.min_rtt, p) for p in left if p.min_rtt is not None]
    return {p.peer for _, p in sorted(measured, key=lambda pair: pair[0])[:PROTECT_BY_RTT]}


def _step3(left: list[PeerFacts], now: float) -> set[int]:
    """The highest scores."""
    return {p.peer for p in sorted(left, key=lambda p: -score(p, now))[:PROTECT_BY_SCORE]}


def _step4(left: list[PeerFacts]) -> list[PeerFacts]:
    """What half of the rest, rounded down, leaves: the older half is protected."""
    return left[len(left) // 2 :]


def _without(left: list[PeerFacts], protected: set[int]) -> list[PeerFacts]:
    return [p for p in left if p.peer not in protected]


def _crowding(members: list[PeerFacts], rank: int) -> tuple[int, float, int]:
    """Step 6's order of groups, the greatest first: the most candidates, then the newest
    accept among them, then the higher H(group)."""
    return len(members), max(p.opened_at for p in members), rank


def _weakness(peer: PeerFacts, now: float) -> tuple[int, float, int]:
    """Step 6's order in the group, the least first: the lowest score, then the most recently
    accepted, then the lower peer number."""
    return score(peer, now), -peer.opened_at, peer.peer


def choose_eviction(candidates: Sequence[PeerFacts], now: float, key: bytes) -> int | None:
    """The peer number to evict among ``candidates`` (the inbound connections that count), or
    None when every candidate is protected."""
    # Oldest first: every sort is stable, so ties keep this order (section 5).
    left = sorted(candidates, key=_age)
    group = {peer.peer: address_group(peer.ip) for peer in left}
    rank = {name: keyed_hash(key, name) for name in group.values()}
    left = _without(left, _step1(left, group, rank))
    left = _without(left, _step2(left))
    left = _without(left, _step3(left, now))
    left = _step4(left)
    if not left:  # spec: LIM-17 (step 5: every candidate is protected)
        return None
    members: dict[str, list[PeerFacts]] = {}
    for peer in left:
        members.setdefault(group[peer.peer], []).append(peer)
    crowded = max(members, key=lambda name: _crowding(members[name], rank[name]))
    return min(members[crowded], key=lambda p: _weakness(p, now)).peer  # spec: LIM-17
