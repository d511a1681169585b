"""The memory budget's rules (spec/node.md section 2.1), sans-IO.

Told what the node holds, ``MemoryBudget`` says whether the node is short of memory, whether a
connection may be read, which connection to close, and whether the application's events fill
their half of the budget. The node counts the bytes and carries these answers out.
"""

from __future__ import annotations

from collections.abc import Iterable


class MemoryBudget:
    """``memory_budget`` bytes for the buffers of at most ``max_connections`` connections."""

    __slots__ = ("budget", "events_full", "pressure", "share")

    def __init__(self, budget: int, max_connections: int) -> None:
        self.budget = budget
        # A connection's share, for the pause of NODE-16.
        self.share = budget // max(1, max_connections)
        self.pressure = False  # past three quarters of the budget (NODE-16)
        self.events_full = False  # the undelivered events hold half the budget (NODE-17)

    def near(self, held: int) -> bool:
        """Whether what is held (buffers and events) is worth a look by ``update_pressure``."""
        return self.pressure or held > self.budget * 3 // 4

    def update_pressure(self, held: int) -> bool:
        """Take the count of buffers and events; returns whether the pressure began or ended:
        on past three quarters of the budget, off at half, so that it does not flap at one
        mark (spec: NODE-16)."""
        ending = self.pressure and held <= self.budget // 2
        beginning = not self.pressure and held > self.budget * 3 // 4
        turn = ending or beginning
        if turn:
            self.pressure = not self.pressure  # spec: NODE-16
        return turn

    def may_read(self, holds: int) -> bool:
        """Whether an open connection whose unsent queue and events hold ``holds`` bytes may be
        read now (spec: NODE-16)."""
        return not self.pressure or holds <= self.share  # spec: NODE-16

    def over(self, buffers: int) -> bool:
        return buffers > self.budget  # spec: NODE-14

    @staticmethod
    def victim(held: Iterable[tuple[int, int]]) -> int | None:
        """Of (peer number, bytes its buffers hold) pairs, the connection to close: the one
        that holds the most, the lowest number among equals; None when none holds a byte
        (spec: NODE-14)."""
        best: tuple[int, int] | None = None
        for peer, size in held:
            # spec: NODE-14 (the most held; the lowest number among equals)
            if size and (best is None or (size, -peer) > (best[1], -best[0])):
                best = (peer, size)
        return None if best is None else best[0]

    def update_events(self, events: int) -> bool:
        """Take the bytes of the undelivered events; returns whether they began or ceased to
        fill their half: on past half the budget, off at a quarter (spec: NODE-17)."""
        ending = self.events_full and events <= self.budget // 4
        beginning = not self.events_full and events > self.budget // 2
        turn = ending or beginning
        if turn:
            self.events_full = not self.events_full  # spec: NODE-17
        return turn
