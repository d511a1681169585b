"""Rotation of outbound connections (spec/manager.md section 9).

Rotating a quarter of the outbound peers now and then limits how long one observer, or one
group of them, keeps a view of this node's traffic; the weakest go first.
"""

from __future__ import annotations

from collections.abc import Sequence

from .score import PeerFacts, score


def choose_rotation(outbound: Sequence[PeerFacts], max_outbound: int, now: float) -> list[int]:
    """The peer numbers of the outbound connections to rotate now, lowest score first (oldest
    first among equal scores): ``max(1, floor(established / 4))`` of the established ones, or
    none when fewer than half of ``max_outbound`` are established. Persistent ones never."""
    established = [p for p in outbound if rotatable(p)]
    ordered = sorted(established, key=lambda peer: rotation_order(peer, now))
    return [p.peer for p in ordered[: rotation_count(len(established), max_outbound)]]


def rotatable(peer: PeerFacts) -> bool:
    """An established outbound connection; a persistent one never is."""
    return peer.established_at is not None and not peer.persistent  # spec: PRIV-10


def rotation_order(peer: PeerFacts, now: float) -> tuple[int, float, int]:
    """The first rotated first: the lowest score, then the oldest, then the lower number."""
    return score(peer, now), peer.opened_at, peer.peer


def rotation_count(established: int, max_outbound: int) -> int:
    """How many of ``established`` outbound connections are rotated."""
    if 2 * established < max_outbound:  # fewer than half of max_outbound_connections
        return 0
    return max(1, established // 4)  # spec: PRIV-10
