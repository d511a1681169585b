"""What every benchmark shares: starting a server process and a few client helpers."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from obscura_ref.wire import Handshake, encode_frame

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.9"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(kind: str) -> Iterator[tuple[tuple[str, int], int]]:
    """Run ``servers.py kind`` in its own process; yields its address and process id."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(HERE / "servers.py"), kind, HOST, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"server {kind} did not start")
        yield (HOST, port), process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def resident_bytes(pid: int) -> int:
    """The resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def client_handshake(nonce: int) -> bytes:
    return encode_frame(Handshake(1, int(time.time()), 1, 0, "bench/1", bytes(32), 0, nonce))


def read_frame(sock: socket.socket) -> bytes:
    """One whole frame from a blocking socket."""
    data = b""
    while len(data) < 16 or len(data) < 16 + int.from_bytes(data[8:12], "little"):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def raise_descriptor_limit() -> None:
    """As many open sockets as the machine allows this process."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "n/a"


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
