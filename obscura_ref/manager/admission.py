"""Room for one more connection (spec/manager.md sections 3 and 5), as pure functions over
counts, so that the manager, a simulation and the decision vectors ask the same question.

A connection counts from its dial or accept until its close begins (LIM-12); the caller passes
the counts of the others, before the new one is added.
"""

from __future__ import annotations

from ..machines.reasons import CloseReason


def inbound_admission(open_inbound: int, max_inbound: int) -> CloseReason | None:
    """None when an inbound connection accepted while ``open_inbound`` others count fits
    (rule 2 of LIM-16); otherwise ``connection_limit``: the node goes on to the eviction rule
    and refuses with that reason only when the rule finds no peer to evict."""
    if open_inbound >= max_inbound:  # spec: LIM-16 (rule 2: room below the limit)
        return CloseReason.CONNECTION_LIMIT
    return None


def may_open_outbound(open_outbound: int, max_outbound: int) -> bool:
    """Whether a connection may be dialled while ``open_outbound`` of its kind count."""
    return open_outbound < max_outbound  # spec: LIM-13
