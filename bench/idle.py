"""Idle established connections held by one node, and its resident memory per connection.

    python bench/idle.py [--connections 1000 10000]

The client (this process) opens the connections and completes a handshake on each; the node
runs in its own process, whose resident memory is read from /proc before and after. The
baseline is the same node process before any connection: the figure is the growth per
connection.
"""

from __future__ import annotations

import argparse
import resource
import socket
import time

from harness import (
    client_handshake,
    machine,
    raise_descriptor_limit,
    read_frame,
    resident_bytes,
    server,
)

KiB = 1024


def hold(address: tuple[str, int], pid: int, count: int) -> tuple[int, int, float]:
    before = resident_bytes(pid)
    socks = []
    begin = time.perf_counter()
    for index in range(count):
        # Different source addresses, so that 10,000 connections need no more ports than exist.
        sock = socket.socket()
        sock.bind((f"127.2.{index // 250}.{1 + index % 250}", 0))
        sock.connect(address)
        sock.sendall(client_handshake(index + 1))
        read_frame(sock)
        socks.append(sock)
    opened = time.perf_counter() - begin
    time.sleep(1.0)  # let the node settle
    after = resident_bytes(pid)
    for sock in socks:
        sock.close()
    return before, after, opened


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    raise_descriptor_limit()
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    print(f"idle connections held by one node ({machine()}, descriptor limit {limit})")
    for count in args.connections:
        if count + 100 > limit:
            print(f"{count:>6}: skipped, the descriptor limit is {limit}")
            continue
        with server("node") as (address, pid):
            before, after, opened = hold(address, pid, count)
        per = (after - before) / count
        print(
            f"{count:>6} connections: node resident {before / KiB / KiB:.1f} MiB -> "
            f"{after / KiB / KiB:.1f} MiB, {per / KiB:.1f} KiB per connection "
            f"(target <= 20 KiB: {per / (20 * KiB):.2f}x of it); opened in {opened:.1f} s"
        )


if __name__ == "__main__":
    main()
