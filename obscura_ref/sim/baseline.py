"""The baseline an eclipse experiment compares the spec's rules with: no rule at all, a random
choice where the spec chooses (``obscura-ref simulate --baseline``, spec/simulation.md
section 4.3).

Random eviction takes any inbound candidate, so an attacker's many connections are evicted no
more often than an honest peer's; random outbound choice takes any eligible entry, so a book
crowded with the attacker's addresses gives him outbound slots in proportion.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..manager.book import BookEntry, eligible
from ..manager.manager import PolicyRules
from ..manager.score import PeerFacts


def baseline_rules(seed: int) -> PolicyRules:
    """Eviction and outbound choices drawn from a random source of their own, seeded so that
    a run repeats."""
    rng = random.Random(seed)

    def evict_any(candidates: Sequence[PeerFacts], now: float, key: bytes) -> int | None:
        if not candidates:
            return None
        return rng.choice(sorted(p.peer for p in candidates))

    def dial_any(entries: Any, **options: Any) -> BookEntry | None:
        excluded = options.pop("excluded_groups")
        options.pop("used_groups")
        options.pop("key")
        choices = [e for e in entries if eligible(e, **options) and e.group not in excluded]
        return rng.choice(choices) if choices else None

    return PolicyRules(choose_eviction=evict_any, choose_outbound=dial_any)
