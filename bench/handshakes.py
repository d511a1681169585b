"""Handshakes per second through a node, against bare connect/accept/close measured in the same
run.

    python bench/handshakes.py [--seconds 5] [--concurrency 20]

The client keeps ``concurrency`` connections in flight. Against the node, each one connects,
sends its handshake, reads the node's, and closes. Against the baseline (a bare ``selectors``
server that accepts and closes at once) each one connects and waits for the close.
"""

from __future__ import annotations

import argparse
import errno
import selectors
import socket
import time

from harness import client_handshake, machine, raise_descriptor_limit, ratio, server


def completions_per_second(
    address: tuple[str, int], seconds: float, concurrency: int, handshake: bool
) -> float:
    selector = selectors.DefaultSelector()
    state: dict[socket.socket, bytearray] = {}
    counter = [0]

    def start() -> None:
        sock = socket.socket()
        sock.setblocking(False)
        code = sock.connect_ex(address)
        assert code in (0, errno.EINPROGRESS), code
        state[sock] = bytearray()
        selector.register(sock, selectors.EVENT_WRITE)

    def finish(sock: socket.socket) -> None:
        selector.unregister(sock)
        del state[sock]
        sock.close()
        start()

    for _ in range(concurrency):
        start()
    done = 0
    begin = time.perf_counter()
    end = begin + seconds
    while time.perf_counter() < end:
        for key, mask in selector.select(0.1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if mask & selectors.EVENT_WRITE:  # connected
                if handshake:
                    counter[0] += 1
                    sock.send(client_handshake(counter[0]))
                selector.modify(sock, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(4096)
            except ConnectionError:
                data = b""
            buffer = state[sock]
            buffer += data
            whole = len(buffer) >= 16 and len(buffer) >= 16 + int.from_bytes(buffer[8:12], "little")
            if (handshake and whole) or (not handshake and not data):
                done += 1
                finish(sock)
            elif not data:
                finish(sock)  # closed early: not counted
    elapsed = time.perf_counter() - begin
    for sock in list(state):
        selector.unregister(sock)
        sock.close()
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    raise_descriptor_limit()
    with server("node") as (address, _):
        node = completions_per_second(address, args.seconds, args.concurrency, True)
    with server("accept") as (address, _):
        bare = completions_per_second(address, args.seconds, args.concurrency, False)
    print(f"handshakes per second, {args.seconds:g} s, {args.concurrency} in flight ({machine()})")
    print(
        f"node: {node:.0f}/s   bare connect/accept/close: {bare:.0f}/s   ratio {ratio(node, bare)}"
    )


if __name__ == "__main__":
    main()
