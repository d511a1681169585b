"""The node command under a mixed attack on loopback, while a well-behaved peer pings it.

An acceptance test of the whole, not of one rule: it claims no requirement, since each of the
rules it leans on (NODE-1, NODE-10 to NODE-16) has its own test that fails when that rule is
broken, and this one, with its margins, may not.

The node runs in its own process, so that its resident memory is its own; the attackers and
the good peer (a ``Node`` with ``ping_interval`` 1 and ``ping_timeout`` 0.5) run here, on one
loop. Forty attackers flood pings and read nothing, fifty send garbage (half of them after a
frame's magic, half random from the first byte, which the node takes for an encrypted-first
start) and fifty stall inside their handshake; each one the node closes comes back on a new
connection.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from obscura_ref.config import load
from obscura_ref.machines.events import Closed, Established
from obscura_ref.node import Node
from obscura_ref.wire import Ping, encode_frame

from .test_node import handshake_from

SCRIPT = str(Path(sys.executable).with_name("obscura-ref"))
MiB = 1024 * 1024
BUDGET = 32 * MiB
SECONDS = 10.0
PAGE = os.sysconf("SC_PAGE_SIZE")


def resident(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


class Attacker:
    """One hostile connection, opened again whenever the node closes it."""

    def __init__(
        self, address: tuple[str, int], source: str, act: Callable[[socket.socket, int], None]
    ) -> None:
        self.address, self.source, self.act = address, source, act
        self.sock: socket.socket | None = None
        self.opened = 0
        self.acts = 0  # on this connection

    def step(self) -> None:
        if self.sock is None:
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            self.sock.bind((self.source, 0))
            self.sock.setblocking(False)
            self.sock.connect_ex(self.address)
            self.opened += 1
            self.acts = 0
            return
        try:
            if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                raise OSError("refused or reset")
            self.act(self.sock, self.acts)
            self.acts += 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # closed by the node (or not open yet): come back
            self.sock.close()
            self.sock = None


PINGS = encode_frame(Ping(1)) * 512


def flood(sock: socket.socket, acts: int) -> None:
    """A handshake, then pings as fast as the kernel takes them; nothing is ever read."""
    sock.send(handshake_from(1000 + sock.fileno()) if acts == 0 else PINGS)


def garbage(sock: socket.socket, acts: int) -> None:
    """Random bytes: to the node, the start of an encrypted-first connection whose terminator
    never comes (spec/privacy.md PRIV-53, PRIV-55)."""
    sock.send(os.urandom(512))


def framed_garbage(sock: socket.socket, acts: int) -> None:
    """The magic, then random bytes: a plaintext frame that does not decode."""
    sock.send((b"OBX\x00" if acts == 0 else b"") + os.urandom(512))


def stall(sock: socket.socket, acts: int) -> None:
    """Half a handshake header, then nothing: the node closes it at handshake_timeout."""
    if acts == 0:
        sock.send(handshake_from(1)[:12])
    with contextlib.suppress(BlockingIOError):
        if sock.recv(4096) == b"":
            raise OSError("closed")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc/PID/statm")
def test_a_good_peer_is_served_through_a_mixed_attack(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    settings = [
        f"memory_budget={BUDGET}",
        "max_send_queue=1048576",
        "max_inbound_connections=400",
        "max_total_connections=420",
        "ping_interval=1",
        "ping_timeout=0.5",
        "inactivity_timeout=5",
        "handshake_timeout=2",
    ]
    with log.open("w") as sink:
        target = subprocess.Popen(
            [SCRIPT, "node", "--listen", "127.0.0.2:0", *[f"--set={s}" for s in settings]],
            stderr=sink,
            stdout=subprocess.DEVNULL,
        )
    try:
        port = 0
        deadline = time.monotonic() + 10
        while not port and time.monotonic() < deadline:
            found = re.search(r"listening on 127\.0\.0\.2:(\d+)", log.read_text())
            port = int(found[1]) if found else 0
            time.sleep(0.05)
        assert port, log.read_text()
        address = ("127.0.0.2", port)
        baseline = peak = resident(target.pid)

        good = Node(load(None, ["ping_interval=1", "ping_timeout=0.5"]))
        good.listen("127.9.0.1", 0)  # the good peer's own address group
        good.connect(*address)
        attackers = [Attacker(address, f"127.40.{i}.1", flood) for i in range(40)]
        attackers += [Attacker(address, f"127.50.{i}.1", garbage) for i in range(25)]
        attackers += [Attacker(address, f"127.50.{i}.1", framed_garbage) for i in range(25, 50)]
        attackers += [Attacker(address, f"127.60.{i}.1", stall) for i in range(50)]
        assert good.run_until(lambda: any(isinstance(e.event, Established) for e in good.events), 5)
        pongs_before = good.status()[0].bytes_received

        ends = time.monotonic() + SECONDS
        while time.monotonic() < ends:
            for attacker in attackers:
                attacker.step()
                good.step(0)
            peak = max(peak, resident(target.pid))
        closes = [e.event for e in good.events if isinstance(e.event, Closed)]
        rows = good.status()
        received = rows[0].bytes_received - pongs_before if rows else 0
        good.shutdown(1)
        for attacker in attackers:
            if attacker.sock is not None:
                attacker.sock.close()
    finally:
        target.terminate()
        target.wait(10)
    text = log.read_text()
    # The good peer was never closed, by either side, and kept hearing from the node (its
    # pongs and pings, about two frames a second).
    assert closes == [], (closes, [line for line in text.splitlines() if "127.9.0.1" in line])
    assert received > 0
    # The node stayed within its budget, counting its resident memory whole.
    assert peak - baseline <= BUDGET, f"grew by {(peak - baseline) / MiB:.1f} MiB"
    # It did meet the attack: garbage and stalled handshakes were closed, and the attackers
    # came back. (The floods fill the kernel's buffers first, which take longer than this.)
    assert "closed: invalid_message" in text
    assert "closed: no_garbage_terminator" in text
    assert "closed: handshake_timeout" in text
    assert sum(a.opened for a in attackers) > len(attackers)
    assert "Traceback" not in text
