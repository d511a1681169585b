"""Servers for the benchmarks, each in its own process: the node, and the baselines.

    python bench/servers.py node|echo|asyncio|accept HOST PORT

Prints ``ready`` on standard output once it listens; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import selectors
import signal
import socket
import sys

from harness import raise_descriptor_limit

from obscura_ref.config import load
from obscura_ref.node import Node

BENCH_CONFIG = [
    # Long timers: the benchmarks measure the traffic they send, not the node's own pings.
    "ping_interval=3600",
    "ping_timeout=1800",
    "inactivity_timeout=7200",
    "handshake_timeout=600",
    "max_inbound_connections=20000",
]


def serve_node(host: str, port: int) -> None:
    node = Node(load(None, BENCH_CONFIG), on_event=lambda event: None)
    node.listen(host, port)
    signal.signal(signal.SIGTERM, lambda *_: node.stop())
    signal.signal(signal.SIGINT, lambda *_: node.stop())
    print("ready", flush=True)
    node.run_forever()


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve_selectors(host: str, port: int, echo: bool) -> None:
    """The floor: a bare selectors loop that echoes every byte (or closes at once), with no
    protocol logic at all."""
    listener = listening_socket(host, port)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    print("ready", flush=True)
    while running[0]:
        for key, _ in selector.select(0.5):
            if key.data is None:
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    if not echo:
                        conn.close()
                        continue
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    selector.register(conn, selectors.EVENT_READ, conn)
                continue
            conn = key.data
            try:
                data = conn.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                selector.unregister(conn)
                conn.close()
                continue
            conn.sendall(data)  # frames are small; the kernel buffer takes them at once


def serve_asyncio(host: str, port: int) -> None:
    """asyncio streams echoing every frame they read (header, then the payload it announces)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(16)
                payload = await reader.readexactly(int.from_bytes(header[8:12], "little"))
                writer.write(header + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, host, port, backlog=1024)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        async with server:
            await stop.wait()

    asyncio.run(main())


if __name__ == "__main__":
    kind, host, port_text = sys.argv[1:4]
    raise_descriptor_limit()
    port = int(port_text)
    if kind == "node":
        serve_node(host, port)
    elif kind == "echo":
        serve_selectors(host, port, echo=True)
    elif kind == "accept":
        serve_selectors(host, port, echo=False)
    elif kind == "asyncio":
        serve_asyncio(host, port)
    else:
        sys.exit(f"unknown server {kind!r}")
