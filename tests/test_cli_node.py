"""The ``node`` command, run as a user runs it: two processes, then SIGINT."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = str(Path(sys.executable).with_name("obscura-ref"))


class Running:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [SCRIPT, "node", *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        self.lines: list[str] = []
        self._partial = b""

    def _read_some(self, timeout: float) -> bool:
        """Read what the process has written (raw, so no buffer hides a line from select)."""
        assert self.process.stderr is not None
        fd = self.process.stderr.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            if not selector.select(timeout):
                return False
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        self.lines += [line.decode() for line in complete]
        return True

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                found = re.search(pattern, line)
                if found:
                    return found
            left = deadline - time.monotonic()
            if left <= 0 or not self._read_some(left):
                raise AssertionError(f"no line matching {pattern!r} in {self.lines}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout=10)
        while self._read_some(0.5):
            pass
        return status


@pytest.mark.spec("NODE-5")
def test_two_node_commands_connect_and_stop_gracefully_on_sigint() -> None:
    a = Running(
        "--listen", "127.0.0.5:0", "--set", "ping_interval=0.5", "--set", "ping_timeout=0.25"
    )
    port = a.wait_for(r"listening on 127\.0\.0\.5:(\d+)")[1]
    b = Running(
        "--listen",
        "127.0.0.6:0",
        "--connect",
        f"127.0.0.5:{port}",
        "--log-format",
        "json",
        "--set",
        "ping_interval=0.5",
        "--set",
        "ping_timeout=0.25",
    )
    try:
        a.wait_for(r"established: version 1")
        b.wait_for(r"established: version 1")
        assert b.stop() == 0
        assert any("closed: shutting_down (NODE-5)" in line for line in b.lines)
        a.wait_for(r"closed: peer_disconnected \(CONN-22\), peer's reason shutting_down \(2\)")
        # Flags by name beside their value.
        assert any(re.search(r"features 0x1 \(BasicTransactions\)", line) for line in a.lines)
        assert a.stop() == 0
        assert any('"level": "info"' in line for line in b.lines)  # JSON lines
    finally:
        for node in (a, b):
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait()


def test_a_bad_address_or_configuration_is_refused() -> None:
    for args in (["--connect", "localhost:1"], ["--set", "ping_interval=0"]):
        result = subprocess.run(
            [SCRIPT, "node", *args], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 2 and "error:" in result.stderr


@pytest.mark.spec("NODE-5")
def test_a_second_signal_cuts_a_graceful_close_short() -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.7", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    node = Running("--connect", f"127.0.0.7:{port}", "--set", "close_timeout=60")
    try:
        peer, _ = listener.accept()  # a peer that never ends its side
        node.wait_for(r"outbound connected")
        node.process.send_signal(signal.SIGINT)
        node.wait_for(r"closing: shutting_down")
        time.sleep(0.2)
        assert node.process.poll() is None  # waiting for the peer, up to close_timeout
        assert node.stop() == 0  # the second SIGINT
        assert any("stopping at once" in line for line in node.lines)
        peer.close()
    finally:
        listener.close()
        if node.process.poll() is None:
            node.process.kill()
            node.process.wait()


def test_a_seeded_node_warns_that_its_keys_are_predictable() -> None:
    node = Running("--listen", "127.0.0.1:0", "--seed", "5", "--status-interval", "0")
    try:
        node.wait_for(r"--seed 5: every random draw, the Noise keys included")
    finally:
        node.process.send_signal(signal.SIGTERM)
        node.process.wait(timeout=10)


def test_a_node_with_nothing_to_listen_on_or_dial_says_so() -> None:
    done = subprocess.run([SCRIPT, "node"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "nothing to do: give --listen HOST:PORT" in done.stderr
    assert "Traceback" not in done.stderr
