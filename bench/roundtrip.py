"""Ping round trips: the client holds CONNECTIONS connections, each handshaken, and keeps one
Ping in flight on each; a round trip is a Pong back."""

from __future__ import annotations

from harness import Client, Window, client_handshake, server

from obscura_ref.wire import Ping, encode_frame

PING = encode_frame(Ping(7))  # 24 bytes: a Ping without padding


def measure(kind: str, connections: int, seconds: float) -> tuple[Window, str]:
    """One window against a fresh server of ``kind``; also what the server said it runs on."""
    with server(kind) as srv:
        host, port = srv.address
        args = ["rt", host, str(port), str(connections), str(seconds)]
        with Client([*args, client_handshake().hex(), PING.hex()]) as client:
            client.ready()
            return client.window(srv.pid), srv.detail
