"""Nodes under a virtual clock: ``EventLoop(clock)`` takes any clock, so a test can jump
a minute ahead and see the ping that ``ping_interval`` (60 s) asks for, at once.

The sockets are still real, and ``select`` still waits in real seconds: step with
``max_wait=0`` so that no pass waits for a timer the virtual clock has not reached; the clock
moves only when the program moves it.

    .venv/bin/python examples/virtual_clock.py   # from the top folder, after the install
"""

from __future__ import annotations

from obscura_ref.config import NodeConfig
from obscura_ref.loop import EventLoop
from obscura_ref.node import Node

CONFIG = NodeConfig().with_values({"privacy_level": "none", "data_dir": ""}, "example")


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settle(loop: EventLoop, passes: int = 50) -> None:
    """Run passes without waiting: the sockets' bytes move, the clock does not."""
    for _ in range(passes):
        loop.run_once(0)


def main() -> None:
    clock = VirtualClock()
    loop = EventLoop(clock)
    a, b = Node(CONFIG, loop=loop), Node(CONFIG, loop=loop)
    peer = a.connect(*b.listen("127.0.0.1", 0))
    while not any(row.peer == peer and row.state == "established" for row in a.status()):
        loop.run_once(0.01)
    print("established at virtual time", clock.now)
    clock.now += CONFIG.ping_interval  # a minute passes, at once
    settle(loop)
    rtt = next(row.rtt for row in a.status() if row.peer == peer)
    print(f"virtual time {clock.now}: ping answered, rtt {rtt:.1f} s (virtual: no time passed)")
    a.shutdown(0)
    b.shutdown(0)
    loop.close()


if __name__ == "__main__":
    main()
