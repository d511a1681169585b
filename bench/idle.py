"""Idle established connections: the server's resident memory per connection, and its CPU per
second while it holds them (the timer tick: every connection of the node has its keepalive
timers armed, ping_interval being an hour).

Opening them is slow where the server's admission is (10,000 into a node can take minutes),
so each server is set up once per count and its windows are repeated while it holds them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from harness import Client, Server, client_handshake, resident_bytes, server


@dataclass(frozen=True)
class Idle:
    before: int  # the server's resident bytes before any connection
    after: int  # and holding them, read at the start of the window
    alive: int  # connections still open at the end of the window
    cpu_per_second: float  # the server's CPU seconds per second of the window
    opened_in: float  # seconds the client took to open and handshake them all

    def bytes_per_connection(self, count: int) -> float:
        return (self.after - self.before) / count


@dataclass(frozen=True)
class Held:
    srv: Server
    client: Client
    before: int
    opened_in: float
    seconds: float

    def window(self) -> Idle:
        after = resident_bytes(self.srv.pid)
        window = self.client.window(self.srv.pid, settle=0.0)
        cpu = window.server_cpu / window.seconds
        return Idle(self.before, after, window.ops, cpu, self.opened_in)


@contextmanager
def hold(kind: str, count: int, seconds: float) -> Iterator[Held]:
    """A server of ``kind`` holding ``count`` established connections, windows of ``seconds``."""
    with server(kind) as srv:
        host, port = srv.address
        time.sleep(0.3)
        before = resident_bytes(srv.pid)
        args = ["hold", host, str(port), str(count), str(seconds), client_handshake().hex()]
        begin = time.monotonic()
        with Client(args) as client:
            client.ready()
            opened_in = time.monotonic() - begin
            time.sleep(1.0)  # let the server settle
            yield Held(srv, client, before, opened_in, seconds)
