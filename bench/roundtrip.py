"""Ping round trips: the client holds CONNECTIONS connections, each handshaken, and keeps one
Ping in flight on each; a round trip is a Pong back.

The same load also runs over the encrypted transport (spec/privacy.md section 3): each
``Transport`` below is one way of carrying it, all through the Python client so that they
compare like with like (the C client speaks plaintext only)."""

from __future__ import annotations

from dataclasses import dataclass

from harness import Client, Window, client_handshake, python_client, server

from obscura_ref.wire import Ping, encode_frame
from obscura_ref.wire.registry import PrivacyFeature

PING = encode_frame(Ping(7))  # 24 bytes: a Ping without padding


@dataclass(frozen=True)
class Transport:
    """A way to carry the round trips: the server's kind (servers.py) and whether the client
    offers, and so runs, the encrypted transport."""

    name: str
    server: str
    encrypted: bool


def measure(kind: str, connections: int, seconds: float) -> tuple[Window, str]:
    """One window against a fresh server of ``kind``; also what the server said it runs on."""
    with server(kind) as srv:
        host, port = srv.address
        args = ["rt", host, str(port), str(connections), str(seconds)]
        with Client([*args, client_handshake().hex(), PING.hex()]) as client:
            client.ready()
            return client.window(srv.pid), srv.detail


def measure_transport(transport: Transport, connections: int, seconds: float) -> Window:
    """One window of ``transport`` against a fresh server, through the Python client."""
    features = PrivacyFeature.EncryptedTransport if transport.encrypted else 0
    handshake = client_handshake(privacy_features=int(features))
    with server(transport.server) as srv:
        host, port = srv.address
        args = ["rt", host, str(port), str(connections), str(seconds), handshake.hex(), PING.hex()]
        command = python_client()
        if transport.encrypted:
            command.append("--encrypted")
        with Client(args, command) as client:
            client.ready()
            return client.window(srv.pid)
