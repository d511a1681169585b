"""Ping/pong round trips per second through a node, against two echo servers that do no
protocol work: a bare ``selectors`` loop and asyncio streams, measured in the same run.

    python bench/roundtrip.py [--seconds 5] [--connections 1 100 1000] [--repeat 3]

Each connection keeps one 80-byte Ping frame in flight (a nonce padded to 64 bytes, the size
the node's padded Pong has); a round trip is one whole frame back. The client runs in this
process, each server in its own.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import statistics
import time

from harness import client_handshake, machine, raise_descriptor_limit, ratio, read_frame, server

from obscura_ref.wire import MessageType, Ping, encode_frame

PING = encode_frame(Ping(7), bytes(56))
assert len(PING) == 80


def open_connections(address: tuple[str, int], count: int, handshake: bool) -> list[socket.socket]:
    socks = []
    for index in range(count):
        sock = socket.create_connection(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if handshake:
            sock.sendall(client_handshake(index + 1))
            read_frame(sock)  # the node's handshake
        socks.append(sock)
    return socks


def round_trips_per_second(
    address: tuple[str, int], count: int, seconds: float, handshake: bool
) -> float:
    socks = open_connections(address, count, handshake)
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytearray] = {}
    for sock in socks:
        sock.setblocking(False)
        buffers[sock] = bytearray()
        selector.register(sock, selectors.EVENT_READ)
        sock.send(PING)
    done = 0
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        for key, _ in selector.select(0.1):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            buffer = buffers[ready]
            buffer += ready.recv(65536)
            while len(buffer) >= 16:
                size = 16 + int.from_bytes(buffer[8:12], "little")
                if len(buffer) < size:
                    break
                kind = buffer[4]
                del buffer[:size]
                if kind in (MessageType.Pong, MessageType.Ping):  # pong, or the echo
                    done += 1
                    ready.send(PING)
    elapsed = time.perf_counter() - start
    for sock in socks:
        selector.unregister(sock)
        sock.close()
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each server, in turn; the median counts"
    )
    args = parser.parse_args()
    raise_descriptor_limit()
    print(
        f"round trips per second, median of {args.repeat} runs of {args.seconds:g} s ({machine()})"
    )
    print(
        f"{'connections':>11} {'node':>10} {'selectors':>10} {'asyncio':>10} "
        f"{'vs selectors':>13} {'vs asyncio':>11}"
    )
    for count in args.connections:
        runs: dict[str, list[float]] = {"node": [], "echo": [], "asyncio": []}
        for _ in range(args.repeat):  # in turn, so that a noisy moment hits all three alike
            for kind, results in runs.items():
                with server(kind) as (address, _):
                    results.append(
                        round_trips_per_second(address, count, args.seconds, kind == "node")
                    )
        rates = {kind: statistics.median(results) for kind, results in runs.items()}
        print(
            f"{count:>11} {rates['node']:>10.0f} {rates['echo']:>10.0f} "
            f"{rates['asyncio']:>10.0f} {ratio(rates['node'], rates['echo']):>13} "
            f"{ratio(rates['node'], rates['asyncio']):>11}"
        )


if __name__ == "__main__":
    main()
