"""Idle established connections: the server's resident memory per connection, and its CPU per
second while it holds them (the timer tick: every connection of the node has its keepalive
timers armed, ping_interval being an hour)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from harness import Client, client_handshake, resident_bytes, server


@dataclass(frozen=True)
class Idle:
    before: int  # the server's resident bytes before any connection
    after: int  # and holding them
    alive: int  # connections still open at the end of the window
    cpu_per_second: float  # the server's CPU seconds per second of the window

    def bytes_per_connection(self, count: int) -> float:
        return (self.after - self.before) / count


def measure(kind: str, count: int, seconds: float) -> Idle:
    with server(kind) as srv:
        host, port = srv.address
        time.sleep(0.3)
        before = resident_bytes(srv.pid)
        args = ["hold", host, str(port), str(count), str(seconds), client_handshake().hex()]
        with Client(args) as client:
            client.ready()
            time.sleep(1.0)  # let the server settle
            after = resident_bytes(srv.pid)
            window = client.window(srv.pid, settle=0.0)
        return Idle(before, after, window.ops, window.server_cpu / window.seconds)
