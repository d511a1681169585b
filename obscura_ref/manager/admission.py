"""Admission: whether a connection may be opened, or kept once accepted (spec/node.md section 4).

Pure functions over counts, so that the node, a simulation and the decision vectors ask the same
question and get the same answer. A connection counts from the moment it is opened or accepted
until it is closed; the caller passes the counts of the others, before the new one is added.
"""

from __future__ import annotations

from ..machines.reasons import CloseReason


def inbound_admission(open_inbound: int, max_inbound: int) -> CloseReason | None:
    """None to admit an inbound connection accepted while ``open_inbound`` are open, otherwise
    the reason to close it with."""
    if open_inbound >= max_inbound:  # spec: LIM-2
        return CloseReason.CONNECTION_LIMIT
    return None


def may_open_outbound(open_outbound: int, max_outbound: int) -> bool:
    """Whether an outbound connection may be opened while ``open_outbound`` are open."""
    return open_outbound < max_outbound  # spec: LIM-1
