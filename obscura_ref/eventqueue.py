"""The events a node holds for its application, counted per connection (spec/node.md section 2).

An application that takes its events from ``Node.events`` may fall behind. The node must then
stop reading from the connections whose events wait (NODE-13), and count what the waiting
events hold (NODE-16), without a scan of the queue: this queue keeps, for each connection, how
many of its events wait and how many bytes they hold, and tells the node each time one is
taken.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .machines.events import (
    Closed,
    Established,
    MessageReceived,
    Misbehaviour,
    RttMeasured,
    UnsolicitedPong,
)
from .wire import Opaque

AppEvent = Established | MessageReceived | RttMeasured | UnsolicitedPong | Misbehaviour | Closed

# Bytes counted for each waiting event besides its payload: about what the event objects, the
# peer's address text and the queue's slot take in CPython 3.11 (NODE-16 and NODE-17 count what
# the events hold, not how many there are).
EVENT_COST = 320


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """Something the application should know about one connection."""

    peer: int
    address: str
    event: AppEvent


def event_size(item: NodeEvent) -> int:
    """The bytes a waiting event is counted for."""
    event = item.event
    if not isinstance(event, MessageReceived):
        return EVENT_COST
    message = event.message  # the application's messages are opaque (CONN-10): no encoding
    return EVENT_COST + (
        len(message.payload) if isinstance(message, Opaque) else len(message.encode())
    )


class EventQueue:
    """A first-in first-out queue of ``NodeEvent`` for the application, which takes them with
    ``popleft`` (or ``clear``), and may read ``len`` and iterate without taking."""

    __slots__ = ("_bytes", "_count", "_events", "_on_taken", "held_bytes")

    def __init__(self, on_taken: Callable[[int], None] = lambda peer: None) -> None:
        self._events: deque[tuple[NodeEvent, int]] = deque()
        self._count: dict[int, int] = {}  # waiting events of each connection
        self._bytes: dict[int, int] = {}  # bytes the waiting events of each connection hold
        self.held_bytes = 0  # bytes all waiting events hold
        self._on_taken = on_taken

    def append(self, item: NodeEvent) -> None:
        """Add an event (the node's side)."""
        size = event_size(item)
        self._events.append((item, size))
        self._count[item.peer] = self._count.get(item.peer, 0) + 1
        self._bytes[item.peer] = self._bytes.get(item.peer, 0) + size
        self.held_bytes += size

    def popleft(self) -> NodeEvent:
        """Take the oldest event (the application's side)."""
        item, size = self._events.popleft()
        self._forget(item.peer, size)
        self._on_taken(item.peer)
        return item

    def clear(self) -> None:
        """Take every event at once."""
        peers = set(self._count)
        self._events.clear()
        self._count.clear()
        self._bytes.clear()
        self.held_bytes = 0
        for peer in peers:
            self._on_taken(peer)

    def waiting(self, peer: int) -> int:
        """How many events of connection ``peer`` wait."""
        return self._count.get(peer, 0)

    def bytes_of(self, peer: int) -> int:
        """How many bytes the waiting events of connection ``peer`` hold."""
        return self._bytes.get(peer, 0)

    def _forget(self, peer: int, size: int) -> None:
        left = self._count[peer] - 1
        if left:
            self._count[peer] = left
            self._bytes[peer] -= size
        else:
            del self._count[peer], self._bytes[peer]
        self.held_bytes -= size

    def __len__(self) -> int:
        return len(self._events)

    def __bool__(self) -> bool:
        return bool(self._events)

    def __iter__(self) -> Iterator[NodeEvent]:
        return (item for item, _ in self._events)
