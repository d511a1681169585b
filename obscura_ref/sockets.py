"""What the node needs of a stream socket (spec/node.md section 1).

``Node`` uses a socket through these calls only, so that something other than the operating
system can stand in for it: the simulator's in-memory network (obscura_ref/sim/network.py)
gives each simulated host a factory of sockets that carry bytes between simulated nodes with
latency, loss of links and resets, under a virtual clock. ``socket.socket`` satisfies it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class StreamSocket(Protocol):
    """A non-blocking TCP socket, as ``socket.socket`` is one."""

    @property
    def family(self) -> int: ...

    def fileno(self) -> int: ...

    def setblocking(self, flag: bool, /) -> None: ...

    def setsockopt(self, level: int, option: int, value: int, /) -> None: ...

    def getsockopt(self, level: int, option: int, /) -> int: ...

    def bind(self, address: tuple[str, int], /) -> None: ...

    def listen(self, backlog: int, /) -> None: ...

    def accept(self) -> tuple[StreamSocket, Any]: ...

    def connect_ex(self, address: tuple[str, int], /) -> int: ...

    def getsockname(self) -> Any: ...

    def recv(self, size: int, /) -> bytes: ...

    def send(self, data: memoryview, /) -> int: ...

    def shutdown(self, how: int, /) -> None: ...

    def close(self) -> None: ...


# Makes a stream socket of an address family (socket.AF_INET or AF_INET6) and a type
# (socket.SOCK_STREAM), as the ``socket.socket`` constructor does.
SocketFactory = Callable[[int, int], StreamSocket]
