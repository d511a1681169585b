"""A real SOCKS5 server for the tests: Debian's ``microsocks``, on a free loopback port.

Without it the live tests are skipped, unless OBSCURA_REQUIRE_SOCKS=1 (set by CI) makes its
absence a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

HOST = "127.0.0.1"
MISSING = "microsocks is not installed (apt-get install microsocks)"
START_TIMEOUT = 5.0


def microsocks_binary() -> str:
    """The path of ``microsocks``; skips the test without it, or fails it when CI requires it."""
    path = shutil.which("microsocks")
    if path is None:
        if os.environ.get("OBSCURA_REQUIRE_SOCKS") == "1":
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@contextmanager
def microsocks(username: str | None = None, password: str | None = None) -> Iterator[int]:
    """Runs microsocks on 127.0.0.1, with a username and password if given; yields its port."""
    binary = microsocks_binary()
    # -b: its outbound connections leave from 127.0.0.1, so that it can reach loopback only,
    # and it picks the IPv4 address of a name that has both.
    command = [binary, "-i", HOST, "-b", HOST]
    if username is not None and password is not None:
        command += ["-u", username, "-P", password]
    process, port = start(command)
    try:
        yield port
    finally:
        stop(process)


def start(command: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    # The free port may be taken again before microsocks binds it: then it exits, and another
    # port is tried.
    output = b""
    for _ in range(5):
        port = free_port()
        process = subprocess.Popen(
            [*command, "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if accepting(process, port):
            return process, port
        output += stop(process)
    raise RuntimeError(f"microsocks did not start: {output.decode(errors='replace')}")


def accepting(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.01)
    return False


def stop(process: subprocess.Popen[bytes]) -> bytes:
    """Stops microsocks; returns what it wrote to its standard error."""
    if process.poll() is None:
        process.terminate()
    return process.communicate(timeout=START_TIMEOUT)[1]
