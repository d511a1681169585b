"""Handshakes: the client keeps IN_FLIGHT connections each connecting, sending its handshake,
reading the server's whole handshake frame and closing."""

from __future__ import annotations

from harness import Client, Window, client_handshake, server


def measure(kind: str, in_flight: int, seconds: float) -> Window:
    with server(kind) as srv:
        host, port = srv.address
        args = ["hs", host, str(port), str(in_flight), str(seconds)]
        with Client([*args, client_handshake().hex()]) as client:
            client.ready()
            return client.window(srv.pid, settle=0.5)  # the server's last closes
