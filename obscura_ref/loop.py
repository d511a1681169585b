"""One single-threaded ``selectors`` loop with one heap of timers (spec/node.md section 1).

No threads, no asyncio. Sockets register a callback for their readiness; timers are kept in a
single heap, so a tick costs the ready sockets plus the due timers, never a scan of every
connection. A cancelled timer stays in the heap, marked, until it is popped or the heap is
compacted, which keeps cancelling O(1).
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import time
from collections.abc import Callable
from typing import Any

from .sockets import StreamSocket

# Called with the ready mask (EVENT_READ | EVENT_WRITE), then the arguments given at register.
ReadyCallback = Callable[..., None]


def _nothing() -> None:
    """The callback of a cancelled timer."""


class TimerHandle:
    __slots__ = ("args", "callback", "cancelled", "deadline")

    def __init__(
        self, deadline: float, callback: Callable[..., None], args: tuple[Any, ...]
    ) -> None:
        self.deadline = deadline
        # A callback and its arguments, not a closure: a node holds a few timers for each
        # connection, and a closure with its cells costs several times this tuple.
        self.callback = callback
        self.args = args
        self.cancelled = False


class EventLoop:
    """The loop every node of a thread runs on: sockets with their readiness callbacks, one
    heap of timers, and ``clock`` (monotonic seconds; any callable, so a test can give a
    virtual one, as examples/virtual_clock.py does; ``select`` still waits in real seconds).
    Several nodes share one: pass it as ``Node(config, loop=loop)`` and drive it once, with
    ``run_once`` or any node's ``step``. A loop a node made itself is closed by its
    ``shutdown``; one given to nodes is closed by whoever made it."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        selector: selectors.BaseSelector | None = None,
    ) -> None:
        """``selector``: what waits for the sockets; by default the system's. The simulator
        gives one over its in-memory network whose waiting moves its virtual clock
        (obscura_ref/sim/network.py)."""
        self.clock = clock
        self._selector = selectors.DefaultSelector() if selector is None else selector
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._order = itertools.count()  # ties in the heap keep the order of arming
        self._cancelled = 0
        self._stopping = False
        self._after_io: list[Callable[[], bool]] = []
        # Asked for one pass only: a loop shared by a thousand nodes calls the few with
        # readable connections, not every node on every pass.
        self._after_io_once: dict[Callable[[], bool], None] = {}
        self._work_left = False  # a hook left work for the next pass: do not wait

    # Timers --------------------------------------------------------------------------------

    def call_at(self, deadline: float, callback: Callable[..., None], *args: Any) -> TimerHandle:
        """Call ``callback(*args)`` once the clock reaches ``deadline``."""
        handle = TimerHandle(deadline, callback, args)
        heapq.heappush(self._heap, (deadline, next(self._order), handle))
        return handle

    def cancel(self, handle: TimerHandle) -> None:
        if not handle.cancelled:
            handle.cancelled = True
            # What it held is freed now, not when it leaves the heap.
            handle.callback, handle.args = _nothing, ()
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                # More dead entries than live ones: rebuild, so the heap tracks live timers.
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    @property
    def timers_pending(self) -> int:
        return len(self._heap) - self._cancelled

    # Sockets -------------------------------------------------------------------------------

    def register(
        self, sock: StreamSocket, events: int, callback: ReadyCallback, *args: Any
    ) -> None:
        """Call ``callback(mask, *args)`` whenever ``sock`` is ready for ``events``."""
        self._selector.register(sock, events, (callback, args))

    def modify(self, sock: StreamSocket, events: int, callback: ReadyCallback, *args: Any) -> None:
        self._selector.modify(sock, events, (callback, args))

    def unregister(self, sock: StreamSocket) -> None:
        self._selector.unregister(sock)

    def after_io(self, callback: Callable[[], bool]) -> None:
        """Call ``callback`` on every pass, after the callbacks of the ready sockets and before
        the timers; it returns whether it left work for the next pass, which then does not
        wait. A node serves its readable connections here, within a budget (spec: NODE-10)."""
        self._after_io.append(callback)

    def after_io_once(self, callback: Callable[[], bool]) -> None:
        """Call ``callback`` once, after the callbacks of the ready sockets of the current pass
        (or of the next one, when asked from a timer), before the hooks of ``after_io``; when
        it returns True it is called again in the next pass, which then does not wait."""
        self._after_io_once[callback] = None

    # Running -------------------------------------------------------------------------------

    def run_once(self, max_wait: float | None = None) -> None:
        """Wait for sockets until the next timer is due (at most ``max_wait`` seconds), run the
        callbacks of the ready sockets and the ``after_io`` hooks, then the callbacks of every
        timer that is due."""
        wait = 0.0 if self._work_left or self._after_io_once else max_wait
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
            self._cancelled -= 1
        if self._heap:
            until_timer = max(0.0, self._heap[0][0] - self.clock())
            wait = until_timer if wait is None else min(wait, until_timer)
        for key, mask in self._selector.select(wait):
            callback, args = key.data
            callback(mask, *args)
        self._work_left = False
        once, self._after_io_once = self._after_io_once, {}
        for hook in once:
            if hook():
                self._after_io_once[hook] = None
        for hook in self._after_io:
            if hook():
                self._work_left = True
        now = self.clock()
        while self._heap and self._heap[0][0] <= now:
            _, _, handle = heapq.heappop(self._heap)
            if handle.cancelled:
                self._cancelled -= 1
                continue
            handle.cancelled = True  # fired: no longer armed
            handle.callback(*handle.args)

    def run_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Run until ``done()`` holds or ``timeout`` seconds pass; returns ``done()``."""
        deadline = self.clock() + timeout
        while not done():
            left = deadline - self.clock()
            if left <= 0:
                return done()
            self.run_once(min(left, 0.5))
        return True

    def run_forever(self) -> None:
        self._stopping = False
        while not self._stopping:
            self.run_once(1.0)

    def stop(self) -> None:
        self._stopping = True

    def close(self) -> None:
        self._selector.close()
