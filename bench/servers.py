"""The servers of the benchmarks, each run in its own process by harness.server().

    python bench/servers.py KIND HOST PORT

KIND is one of:

- ``node``: the node, privacy_level "none" (its pongs and handshakes carry no padding);
- ``node-padded``: the node, privacy_level "standard" (padded pongs; it offers the encrypted
  transport, which a client that offers it too gets);
- ``node@LEVEL``: the node at any privacy_level the configuration accepts;
- ``frames``: a bare ``selectors`` loop doing the node's frame work and no more: per readiness
  one ``recv`` of READ_CHUNK bytes, each 16-byte header parsed, each payload's checksum
  (double SHA-256) checked, a Ping answered with the Pong the node sends at privacy_level
  "none" (its checksum computed), a Handshake answered with a handshake-sized frame;
- ``uvloop``: the same frame work in an asyncio Protocol, on uvloop when it is installed, else
  on asyncio's own loop (the ready line says which);
- ``accept``: accept, send a handshake-sized reply, read the client's handshake frame (its
  checksum checked), close.

Prints ``ready`` (and a detail) once it listens; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import selectors
import signal
import socket
import struct
import sys
import time
from typing import cast

from harness import raise_descriptor_limit

from obscura_ref import __version__
from obscura_ref.config import load
from obscura_ref.node import READ_CHUNK, Node
from obscura_ref.wire import HEADER_SIZE, MAGIC, Handshake, MessageType, Pong, encode_frame

BENCH_CONFIG = [
    # Long timers: the benchmarks measure the traffic they send, not the node's own pings; the
    # keepalive timers are still armed on every established connection.
    "ping_interval=3600",
    "ping_timeout=1800",
    "inactivity_timeout=7200",
    "handshake_timeout=600",
    # Room for every connection of the benchmarks: above max_total_connections the node evicts.
    "max_inbound_connections=30000",
    "max_total_connections=30000",
    'data_dir=""',  # bans in memory only: a benchmark writes nothing to the home folder
]

_HEADER = struct.Struct("<4sII4s")  # magic, message_type, payload_length, checksum
assert _HEADER.size == HEADER_SIZE
PING, PONG, HANDSHAKE = int(MessageType.Ping), int(MessageType.Pong), int(MessageType.Handshake)
MAX_FRAME_PAYLOAD = 10 * 1024 * 1024
# A handshake frame of the node's size (privacy_level "none": no padding).
HANDSHAKE_REPLY = encode_frame(
    Handshake(1, int(time.time()), 1, 0, f"obscura-ref/{__version__}", bytes(32), 0, 1)
)


def checksum(payload: bytes | memoryview) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def pong_frame(nonce: bytes) -> bytes:
    return _HEADER.pack(MAGIC, PONG, len(nonce), checksum(nonce)) + nonce


assert pong_frame(bytes(range(8))) == encode_frame(Pong(int.from_bytes(bytes(range(8)), "little")))


def answer(buffer: bytearray) -> bytes | None:
    """The replies to every whole frame at the start of ``buffer``, which loses those frames;
    None for a frame that is wrong (magic, size or checksum): the connection is closed."""
    replies = []
    offset = 0
    while len(buffer) - offset >= HEADER_SIZE:
        magic, kind, length, expected = _HEADER.unpack_from(buffer, offset)
        if magic != MAGIC or length > MAX_FRAME_PAYLOAD:
            return None
        end = offset + HEADER_SIZE + length
        if len(buffer) < end:
            break
        payload = bytes(buffer[offset + HEADER_SIZE : end])
        if checksum(payload) != expected:
            return None
        if kind == PING:
            replies.append(pong_frame(payload[:8]))
        elif kind == HANDSHAKE:
            replies.append(HANDSHAKE_REPLY)
        offset = end
    del buffer[:offset]
    return b"".join(replies)


def serve_node(host: str, port: int, privacy: str) -> None:
    node = Node(load(None, [*BENCH_CONFIG, f"privacy_level={privacy}"]), on_event=lambda e: None)
    node.listen(host, port)
    signal.signal(signal.SIGTERM, lambda *_: node.stop())
    signal.signal(signal.SIGINT, lambda *_: node.stop())
    print(f"ready node privacy_level={privacy}", flush=True)
    node.run_forever()


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve_selectors(host: str, port: int, accept_only: bool) -> None:
    """``frames`` (accept_only False) or ``accept`` (True): see the module's text."""
    listener = listening_socket(host, port)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    buffers: dict[socket.socket, bytearray] = {}
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    signal.signal(signal.SIGINT, lambda *_: running.__setitem__(0, False))
    print("ready selectors", flush=True)

    def drop(conn: socket.socket) -> None:
        selector.unregister(conn)
        del buffers[conn]
        conn.close()

    while running[0]:
        for key, _ in selector.select(0.5):
            if key.data is None:
                for _ in range(64):
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if accept_only:
                        conn.send(HANDSHAKE_REPLY)  # a fresh socket's buffer takes it whole
                    selector.register(conn, selectors.EVENT_READ, conn)
                    buffers[conn] = bytearray()
                continue
            conn = key.data
            try:
                data = conn.recv(READ_CHUNK)
            except OSError:
                data = b""
            if not data:
                drop(conn)
                continue
            buffer = buffers[conn]
            buffer += data
            replies = answer(buffer)
            if replies is None or (accept_only and replies):
                drop(conn)  # a wrong frame; or, for ``accept``, the client's handshake read
            elif replies:
                conn.sendall(replies)  # small replies: the kernel's buffer takes them at once


class FrameProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)  # both loops set TCP_NODELAY

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        replies = answer(self.buffer)
        if replies is None:
            self.transport.close()
        elif replies:
            self.transport.write(replies)


def serve_asyncio(host: str, port: int) -> None:
    try:
        uvloop = importlib.import_module("uvloop")
        uvloop.install()
        name = "uvloop"
    except ImportError:
        name = "asyncio"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(FrameProtocol, host, port, backlog=1024)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        print(f"ready {name}", flush=True)
        async with server:
            await stop.wait()

    asyncio.run(main())


def main() -> None:
    kind, host, port_text = sys.argv[1:4]
    raise_descriptor_limit()
    port = int(port_text)
    if kind == "node":
        serve_node(host, port, "none")
    elif kind == "node-padded":
        serve_node(host, port, "standard")
    elif kind.startswith("node@"):
        serve_node(host, port, kind.removeprefix("node@"))
    elif kind == "frames":
        serve_selectors(host, port, accept_only=False)
    elif kind == "accept":
        serve_selectors(host, port, accept_only=True)
    elif kind == "uvloop":
        serve_asyncio(host, port)
    else:
        sys.exit(f"unknown server {kind!r}")


if __name__ == "__main__":
    main()
