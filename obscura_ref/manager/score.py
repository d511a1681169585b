"""The peer score (spec/manager.md section 4): what eviction and rotation rank peers by.

No random noise is added, unlike the origin (spec/errata.md E-13): two implementations given
the same facts rank peers the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..wire import Feature

HANDSHAKE_POINTS = 10
FAST_RTT, FAST_POINTS = 1.0, 30  # a lowest round-trip time below 1 s
MEDIUM_RTT, MEDIUM_POINTS = 2.0, 15  # below 2 s
SLOW_POINTS = 3  # 2 s or more
MAX_UPTIME_POINTS = 30  # one per whole minute since the handshake completed
FEATURE_POINTS = 5  # per assigned feature bit negotiated
ASSIGNED_FEATURES = sum(member.value for member in Feature)


@dataclass(frozen=True)
class PeerFacts:
    """What score, eviction and rotation need to know of one connection."""

    peer: int  # the node's peer number (tie-break: lower first)
    ip: str
    opened_at: float  # monotonic time dialled or accepted (older = smaller)
    established_at: float | None  # monotonic time the handshake completed
    min_rtt: float | None  # lowest round-trip time measured, seconds
    features: int | None  # negotiated features (None before the handshake)
    misbehaviour: int = 0  # points of its address (section 6)
    persistent: bool = False


def _rtt_points(min_rtt: float | None) -> int:
    if min_rtt is None:
        return 0
    if min_rtt < FAST_RTT:
        return FAST_POINTS
    if min_rtt < MEDIUM_RTT:
        return MEDIUM_POINTS
    return SLOW_POINTS


def score(peer: PeerFacts, now: float) -> int:
    """The peer's score at ``now``: the sum of the parts of the table of section 4."""
    total = _rtt_points(peer.min_rtt)
    if peer.established_at is not None:
        total += HANDSHAKE_POINTS
        minutes = math.floor((now - peer.established_at) / 60)
        total += min(MAX_UPTIME_POINTS, max(0, minutes))
    if peer.features is not None:
        total += FEATURE_POINTS * (peer.features & ASSIGNED_FEATURES).bit_count()
    return total - peer.misbehaviour  # spec: LIM-15
