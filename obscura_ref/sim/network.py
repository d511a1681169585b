"""An in-memory network of hosts under one virtual clock: the simulator's stand-in for the
operating system's sockets and ``select`` (obscura_ref/sockets.py).

Each simulated node runs the real ``Node`` (and so the real ``PeerConnection``,
``HandshakeProtocol`` and ``ConnectionManager``) on sockets that this network makes. Bytes sent
on a connection arrive at the other end after the link's latency plus a jitter, in order, as
TCP delivers them; a sender has a window of unacknowledged bytes, so a peer that never reads
stops its sender as a real one does. Waiting in ``select`` moves the virtual clock to the next
delivery (or to the loop's next timer), so an hour of a quiet network costs what happens in it,
not an hour.

Faults are operations on the network: a partition puts hosts in separate groups (bytes across
groups wait until it heals, as TCP's retransmissions would carry them then; connection attempts
across it are lost), a reset tears a connection down at both ends, a host that goes down drops
everything sent to it and answers nothing.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import random
import selectors
import socket
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from ..sockets import StreamSocket

SEND_WINDOW = 256 * 1024  # bytes a sender may have sent and the receiver not yet read
LISTEN_BACKLOG = 128  # connections waiting for accept before new ones are dropped
FIRST_EPHEMERAL_PORT = 32768
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


def _ignore_dial(host: Host, address: tuple[str, int]) -> None:
    pass


def _ignore_accept(host: Host, remote: tuple[str, int]) -> None:
    pass


class SimNetwork:
    """Hosts, the connections between them, and the clock. ``now`` is the virtual time in
    seconds; ``clock`` is what the event loop and the nodes read. ``rng`` draws the jitter of
    every delivery: one seeded source makes the whole run repeatable."""

    def __init__(self, rng: random.Random, jitter: float = 0.0) -> None:
        self.now = 0.0
        self.rng = rng
        self.jitter = jitter
        self.hosts: dict[str, Host] = {}
        self.listeners: dict[tuple[str, int], SimSocket] = {}
        self.selector = SimSelector(self)
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._fds = itertools.count(3)
        self._side: dict[str, int] = {}  # the partition group of each host (default 0)
        self._stalled: dict[Pipe, None] = {}  # pipes whose head waits for a partition to heal
        self.connections_made = 0
        # Told of every dial and every accept, before the socket is used: the simulator checks
        # its invariants there (a banned address is never dialled, every connection is closed).
        self.on_dial: Callable[[Host, tuple[str, int]], None] = _ignore_dial
        self.on_accept: Callable[[Host, tuple[str, int]], None] = _ignore_accept

    def clock(self) -> float:
        return self.now

    def add_host(self, ip: str, access_latency: float) -> Host:
        """A host at ``ip`` whose links cost ``access_latency`` seconds each way on its side:
        the one-way latency between two hosts is the sum of theirs."""
        host = Host(self, ip, access_latency)
        self.hosts[ip] = host
        return host

    def at(self, time: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (time, next(self._order), action))

    def next_fd(self) -> int:
        return next(self._fds)

    # ---- paths ------------------------------------------------------------------------------

    def latency(self, a: Host, b: Host) -> float:
        """One way from ``a`` to ``b``: both access latencies, plus a jitter drawn per
        delivery."""
        extra = self.rng.random() * self.jitter if self.jitter else 0.0
        return a.access_latency + b.access_latency + extra

    def reachable(self, a: Host, b: Host) -> bool:
        return a.up and b.up and self._side.get(a.ip, 0) == self._side.get(b.ip, 0)

    def partition(self, sides: Mapping[str, int]) -> None:
        """Split the hosts: those given a different number cannot reach each other until
        ``heal``. Hosts not named are in side 0."""
        self._side = dict(sides)

    def heal(self) -> None:
        self._side = {}
        self.release_stalled()

    def release_stalled(self) -> None:
        """Deliver what waited at a cut that is gone, after a latency from now."""
        for pipe in list(self._stalled):
            if self.reachable(pipe.source.host, pipe.target.host):
                del self._stalled[pipe]
                pipe.stalled = False
                pipe.schedule_head(self.now)

    # ---- time -------------------------------------------------------------------------------

    def advance(self, deadline: float | None) -> None:
        """Carry out deliveries in time order until one makes a watched socket ready, or the
        clock reaches ``deadline`` (None: until something is ready or nothing is left)."""
        heap = self._heap
        selector = self.selector
        while heap and (deadline is None or heap[0][0] <= deadline):
            time = heap[0][0]
            if time > self.now:
                self.now = time
            while heap and heap[0][0] <= time:
                heapq.heappop(heap)[2]()
            if selector.any_ready():
                return
        if deadline is not None and deadline > self.now:
            self.now = deadline


class Host:
    """One simulated machine: an IP address, up or down, and the sockets made on it."""

    def __init__(self, network: SimNetwork, ip: str, access_latency: float) -> None:
        self.network = network
        self.ip = ip
        self.access_latency = access_latency
        self.up = True
        self.sockets: dict[SimSocket, None] = {}  # in the order made: runs repeat
        self._ports = itertools.count(FIRST_EPHEMERAL_PORT)

    def socket(self, family: int, kind: int) -> StreamSocket:
        """The socket factory a ``Node`` on this host is given (``Node(sockets=...)``)."""
        if not self.up:
            raise OSError(errno.ENETDOWN, "the host is down")
        return SimSocket(self, family)

    def ephemeral_port(self) -> int:
        return next(self._ports)

    def crash(self) -> None:
        """Down at once: nothing it sent after this arrives, nothing sent to it is answered,
        its listeners are gone (a power cut, not a shutdown)."""
        self.up = False
        for sock in list(self.sockets):
            sock.vanish()

    def restart(self) -> None:
        self.up = True


class Pipe:
    """One direction of a connection: chunks in flight, in order, each with its arrival time.
    ``None`` is the end of stream (FIN); a reset travels as ``RESET``."""

    def __init__(self, source: SimSocket, target: SimSocket) -> None:
        self.source = source
        self.target = target
        self.queue: deque[tuple[float, bytes | Reset | None]] = deque()
        self.last = 0.0  # arrival time of the last chunk: TCP keeps the order
        self.in_flight = 0
        self.stalled = False

    def push(self, item: bytes | Reset | None) -> None:
        network = self.source.host.network
        arrival = max(self.last, network.now + network.latency(self.source.host, self.target.host))
        self.last = arrival
        self.queue.append((arrival, item))
        if isinstance(item, bytes):
            self.in_flight += len(item)
        if len(self.queue) == 1 and not self.stalled:
            network.at(arrival, self.arrive)

    def schedule_head(self, now: float) -> None:
        """Re-time every chunk after a stall: they left again now."""
        network = self.source.host.network
        base = now + network.latency(self.source.host, self.target.host)
        self.queue = deque((max(base, t), item) for t, item in self.queue)
        self.last = max(self.last, base)
        if self.queue:
            network.at(self.queue[0][0], self.arrive)

    def arrive(self) -> None:
        network = self.source.host.network
        if not self.queue or self.stalled:
            return
        arrival, item = self.queue[0]
        if arrival > network.now:  # re-timed after a stall: its own event comes later
            return
        source_host, target_host = self.source.host, self.target.host
        if not target_host.up:
            self.queue.clear()  # a host that is down drops everything
            self.in_flight = 0
            return
        if not network.reachable(source_host, target_host):
            if source_host.up:
                self.stalled = True  # waits at the cut until it heals
                network._stalled[self] = None
            else:
                self.queue.clear()
                self.in_flight = 0
            return
        self.queue.popleft()
        if isinstance(item, bytes):
            self.in_flight -= len(item)
        self.target.receive(item)
        if self.queue:
            network.at(max(self.queue[0][0], network.now), self.arrive)


class Reset:
    """A TCP reset on its way: the receiving end fails with ``ECONNRESET``."""


RESET = Reset()


class SimSocket:
    """A non-blocking stream socket of a simulated host (satisfies ``StreamSocket``)."""

    def __init__(self, host: Host, family: int) -> None:
        self.host = host
        self.family = family
        self._fd = host.network.next_fd()
        self.local: tuple[str, int] | None = None
        self.remote: tuple[str, int] | None = None
        self.state = "new"  # new, listening, connecting, connected, closed
        self.rx = bytearray()
        self.rx_eof = False
        self.error = 0
        self.write_closed = False
        self.out: Pipe | None = None  # to the other end
        self.backlog: deque[SimSocket] = deque()
        self.connect_error = 0
        self.gone = False  # its host crashed: it neither sends nor answers
        host.sockets[self] = None

    def __repr__(self) -> str:
        return f"<SimSocket {self.state} {self.local} -> {self.remote}>"

    @property
    def network(self) -> SimNetwork:
        return self.host.network

    def touch(self) -> None:
        self.host.network.selector.touch(self)

    # ---- the calls of StreamSocket ------------------------------------------------------------

    def fileno(self) -> int:
        return self._fd

    def setblocking(self, flag: bool, /) -> None:
        pass  # always non-blocking

    def setsockopt(self, level: int, option: int, value: int, /) -> None:
        pass  # TCP_NODELAY, SO_REUSEADDR: nothing to model

    def getsockopt(self, level: int, option: int, /) -> int:
        if (level, option) == (socket.SOL_SOCKET, socket.SO_ERROR):
            status, self.connect_error = self.connect_error, 0
            return status
        return 0

    def bind(self, address: tuple[str, int], /) -> None:
        ip, port = address
        if ip != self.host.ip:
            raise OSError(errno.EADDRNOTAVAIL, f"{ip} is not this host's address")
        if port and (ip, port) in self.network.listeners:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        self.local = (ip, port or self.host.ephemeral_port())

    def listen(self, backlog: int, /) -> None:
        if self.local is None:
            self.bind((self.host.ip, 0))
        assert self.local is not None
        self.state = "listening"
        self.network.listeners[self.local] = self

    def getsockname(self) -> Any:
        return self.local

    def accept(self) -> tuple[StreamSocket, Any]:
        if not self.backlog:
            raise BlockingIOError(errno.EAGAIN, "no connection waiting")
        sock = self.backlog.popleft()
        assert sock.remote is not None
        self.network.on_accept(self.host, sock.remote)
        return sock, sock.remote

    def connect_ex(self, address: tuple[str, int], /) -> int:
        network = self.network
        if self.local is None:
            self.local = (self.host.ip, self.host.ephemeral_port())
        self.remote = (address[0], address[1])
        self.state = "connecting"
        network.on_dial(self.host, self.remote)
        target = network.hosts.get(address[0])
        if target is None:
            return errno.ENETUNREACH
        network.at(network.now + network.latency(self.host, target), self._syn_arrives)
        return errno.EINPROGRESS

    def recv(self, size: int, /) -> bytes:
        if self.rx:
            data = bytes(self.rx[:size])
            del self.rx[:size]
            if self.out is not None and self.out.target.state == "connected":
                self.out.target.touch()  # the sender's window opened
            self.touch()
            return data
        if self.error:
            raise ConnectionResetError(self.error, "Connection reset by peer")
        if self.state == "closed-by-peer":
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        if self.rx_eof:
            return b""
        raise BlockingIOError(errno.EAGAIN, "nothing to read")

    def send(self, data: memoryview, /) -> int:
        if self.error:
            raise ConnectionResetError(self.error, "Connection reset by peer")
        if self.write_closed or self.state != "connected" or self.out is None:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        free = SEND_WINDOW - self.out.in_flight - len(self.out.target.rx)
        if free <= 0:
            raise BlockingIOError(errno.EAGAIN, "the window is full")
        count = min(free, len(data))
        if not self.gone:
            self.out.push(bytes(data[:count]))
        return count

    def shutdown(self, how: int, /) -> None:
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and not self.write_closed:
            self.write_closed = True
            if self.out is not None and not self.gone:
                self.out.push(None)

    def close(self) -> None:
        if self.state == "closed":
            return
        if self.state == "listening" and self.local is not None:
            if self.network.listeners.get(self.local) is self:
                del self.network.listeners[self.local]
            for waiting in self.backlog:
                waiting.close()
            self.backlog.clear()
        elif self.out is not None and not self.gone:
            if self.rx:
                self.out.push(RESET)  # unread bytes at close: TCP answers with a reset
            elif not self.write_closed:
                self.out.push(None)
        self.write_closed = True
        self.state = "closed"
        self.host.sockets.pop(self, None)
        self.network.selector.forget(self)

    # ---- the network's side -----------------------------------------------------------------

    def vanish(self) -> None:
        """Its host crashed: the socket stays open for its node but carries nothing."""
        self.gone = True
        listeners = self.network.listeners
        if self.local is not None and listeners.get(self.local) is self:
            del listeners[self.local]

    def _syn_arrives(self) -> None:
        network = self.network
        assert self.remote is not None and self.local is not None
        target = network.hosts[self.remote[0]]
        if self.state != "connecting" or self.gone or not network.reachable(self.host, target):
            return  # lost on the way: the dialler's connection timeout ends it
        listener = network.listeners.get(self.remote)
        back = network.latency(target, self.host)
        if listener is None or listener.gone:
            network.at(network.now + back, lambda: self._connected(errno.ECONNREFUSED))
            return
        if len(listener.backlog) >= LISTEN_BACKLOG:
            return  # a full backlog drops the attempt, as Linux does
        server = SimSocket(target, self.family)
        server.local, server.remote, server.state = self.remote, self.local, "connected"
        server.out, self.out = Pipe(server, self), Pipe(self, server)
        server.out.last = network.now + back  # nothing of it arrives before the SYN-ACK
        listener.backlog.append(server)
        listener.touch()
        network.connections_made += 1
        network.at(network.now + back, lambda: self._connected(0))

    def _connected(self, status: int) -> None:
        if self.state != "connecting":
            return
        if status:
            self.connect_error = status
            self.state = "closed-by-peer"
        else:
            self.state = "connected"
        self.touch()

    def receive(self, item: bytes | Reset | None) -> None:
        if self.state == "closed":
            if isinstance(item, bytes) and self.out is not None:
                self.out.push(RESET)  # bytes for a closed socket: answered with a reset
            return
        if isinstance(item, Reset):
            self.error = errno.ECONNRESET
        elif item is None:
            self.rx_eof = True
        else:
            self.rx += item
        if not self.gone:
            self.touch()

    def reset(self) -> None:
        """Fail now with ``ECONNRESET`` (a reset fault)."""
        if self.state in ("connected", "connecting"):
            self.error = errno.ECONNRESET
            self.connect_error = errno.ECONNRESET
            if self.state == "connecting":
                self.state = "closed-by-peer"
            self.touch()

    # ---- readiness ----------------------------------------------------------------------------

    def readiness(self) -> int:
        if self.state == "listening":
            return _READ if self.backlog else 0
        if self.state == "connecting":
            return 0
        if self.state == "closed-by-peer":
            return _READ | _WRITE
        if self.state != "connected":
            return 0
        mask = _READ if (self.rx or self.rx_eof or self.error) else 0
        if self.error or self.write_closed:
            return mask | _WRITE
        assert self.out is not None
        if self.out.in_flight + len(self.out.target.rx) < SEND_WINDOW:
            mask |= _WRITE
        return mask


class SimSelector(selectors.BaseSelector):
    """``select`` over the network's sockets: returns those whose state changed and that are
    ready for what they are watched for; when none is, moves the clock on to the next
    delivery, at most to the timeout."""

    def __init__(self, network: SimNetwork) -> None:
        self.network = network
        self._keys: dict[int, selectors.SelectorKey] = {}
        self._touched: dict[SimSocket, None] = {}
        self._hint = False  # a socket touched since the last select was ready when touched

    def touch(self, sock: SimSocket) -> None:
        self._touched[sock] = None
        key = self._keys.get(sock.fileno())
        if key is not None and key.events & sock.readiness():
            self._hint = True

    def forget(self, sock: SimSocket) -> None:
        self._touched.pop(sock, None)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        sock: SimSocket = fileobj
        key = selectors.SelectorKey(sock, sock.fileno(), events, data)
        self._keys[key.fd] = key
        self.touch(sock)
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj.fileno())

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        self.unregister(fileobj)
        return self.register(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._keys

    def any_ready(self) -> bool:
        """Whether a socket may be ready: one was when it was last touched."""
        return self._hint

    def _ready(self) -> list[tuple[selectors.SelectorKey, int]]:
        self._hint = False
        ready = []
        keys = self._keys
        still: dict[SimSocket, None] = {}
        for sock in self._touched:
            key = keys.get(sock.fileno())
            if key is None:
                continue
            mask = key.events & sock.readiness()
            if mask:
                ready.append((key, mask))
                still[sock] = None  # level-triggered: asked again until it is not ready
        self._touched = still
        self._hint = bool(still)
        return ready

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        network = self.network
        if not self._hint:
            network.advance(None if timeout is None else network.now + timeout)
        return self._ready()

    def close(self) -> None:
        self._keys.clear()
