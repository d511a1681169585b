"""Reconnection backoff (spec/manager.md section 8): when an address may be dialled again.

The delay doubles with each consecutive failure up to a cap, and a random factor in [0.75, 1.25)
spreads the retries of many nodes that lost the same peer at once. The formula is evaluated in
IEEE 754 double precision, in the order written, so that every implementation gets the same
delay from the same draw.
"""

from __future__ import annotations

import math

MAX_FAILURES = 5  # consecutive failures after which a non-persistent entry leaves the book
_LAST_FINITE_EXPONENT = 1023  # 2.0 ** 1024 is beyond a double: infinite in IEEE 754


def unit_draw(u64: int) -> float:
    """A draw in [0, 1) from a u64: its top 53 bits over 2**53, exact as a double."""
    return (u64 >> 11) / 2**53


def reconnect_delay(failures: int, interval: float, cap: float, u64: int) -> float:
    """``delay(n)`` of section 8 for ``n = failures`` (1 or more) consecutive failures."""
    if failures < 1:
        raise ValueError(f"a delay follows one failure or more, not {failures}")
    # Python raises where IEEE 754 gives infinity; min() then takes the cap all the same.
    exponent = failures - 1
    doubling = 2.0**exponent if exponent <= _LAST_FINITE_EXPONENT else math.inf
    return min(cap, interval * doubling) * (0.75 + 0.5 * unit_draw(u64))  # spec: RECO-4


def forgotten(failures: int, persistent: bool, seed: bool = False) -> bool:
    """Whether an entry leaves the address book after ``failures`` consecutive failures.
    Persistent entries and seed nodes never do: seed nodes are the way back after a partition
    (section 8, errata.md E-20)."""
    return not (persistent or seed) and failures >= MAX_FAILURES  # spec: RECO-6, RECO-9
