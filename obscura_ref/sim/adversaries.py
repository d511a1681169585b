"""Peers that do not follow the protocol, for the simulator (spec/simulation.md section 2).

They play the peer with raw sockets of the simulated network, as the conformance runner plays
it with real ones, so that they can send what no ``PeerConnection`` would. The flooder and the
eclipse attacker are real nodes with an application of their own (obscura_ref/sim/simulation.py).
"""

from __future__ import annotations

import selectors
import socket
from collections import deque

from ..loop import EventLoop
from ..wire import MessageType, Opaque
from ..wire.frame import encode_frame
from .network import Host, SimSocket

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
VIOLATION_EVERY = 30.0  # seconds between a violator's connections
SILENT_HOLD = 300.0  # seconds a silent host keeps a connection it never answers


def bad_frame() -> bytes:
    """A frame whose checksum does not match its payload: it does not decode (WIRE-5), so
    its sender earns the points of a ban at once (spec/manager.md section 6)."""
    frame = bytearray(encode_frame(Opaque(MessageType.Blocks, b"violation")))
    frame[-1] ^= 0xFF
    return bytes(frame)


class Violator:
    """Dials a random honest node every ``VIOLATION_EVERY`` seconds and sends a frame that does
    not decode; reads and drops what comes back until the node closes. Its address is banned
    by each node it reaches, so later connections must be refused (BAN-3)."""

    def __init__(
        self, host: Host, loop: EventLoop, targets: list[tuple[str, int]], first: float
    ) -> None:
        self.host = host
        self.loop = loop
        self.targets = targets
        self.sent = 0
        loop.call_at(first, self._dial)

    def _dial(self) -> None:
        network = self.host.network
        self.loop.call_at(network.now + VIOLATION_EVERY * (0.5 + network.rng.random()), self._dial)
        if not self.host.up or not self.targets:
            return
        target = self.targets[network.rng.randrange(len(self.targets))]
        sock = self.host.socket(socket.AF_INET, socket.SOCK_STREAM)
        assert isinstance(sock, SimSocket)
        sock.connect_ex(target)
        self.loop.register(sock, _WRITE, self._ready, sock)

    def _ready(self, mask: int, sock: SimSocket) -> None:
        if sock.state == "connecting":
            return
        if sock.state != "connected":  # refused, or reset before it opened
            self.loop.unregister(sock)
            sock.close()
            return
        if sock.state == "connected" and not sock.write_closed and mask & _WRITE:
            if not sock.error:
                sock.send(memoryview(bad_frame()))
                self.sent += 1
            sock.shutdown(socket.SHUT_WR)
            self.loop.modify(sock, _READ, self._ready, sock)
            return
        try:
            while sock.recv(65536):
                pass
        except BlockingIOError:
            return
        except OSError:
            pass
        self.loop.unregister(sock)
        sock.close()


class Silent:
    """Listens, accepts, and never reads or writes: each connection to it ends at the dialler's
    handshake timeout. Connections are let go after ``SILENT_HOLD`` seconds."""

    def __init__(self, host: Host, loop: EventLoop, port: int) -> None:
        self.host = host
        self.loop = loop
        self.listener = host.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((host.ip, port))
        self.listener.listen(128)
        self.held: deque[tuple[float, SimSocket]] = deque()
        self.accepted = 0
        loop.register(self.listener, _READ, self._accept)

    def _accept(self, mask: int) -> None:
        now = self.host.network.now
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                break
            assert isinstance(sock, SimSocket)
            self.held.append((now, sock))
            self.accepted += 1
        while self.held and self.held[0][0] + SILENT_HOLD <= now:
            self.held.popleft()[1].close()
