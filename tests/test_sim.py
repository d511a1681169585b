"""The simulator (spec/simulation.md): its network model, its repeatability, and its invariants,
each shown able to fail against a node whose rule is broken."""

from __future__ import annotations

import errno
import os
import random
import selectors
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from obscura_ref import cli
from obscura_ref.loop import EventLoop
from obscura_ref.machines.handshake import HandshakeProtocol
from obscura_ref.manager import book
from obscura_ref.manager import manager as manager_module
from obscura_ref.manager.backoff import MAX_FAILURES
from obscura_ref.manager.bans import BanList
from obscura_ref.manager.manager import ConnectionManager
from obscura_ref.node import Node
from obscura_ref.sim import report
from obscura_ref.sim.network import SEND_WINDOW, SimNetwork, SimSocket
from obscura_ref.sim.scenario import Scenario
from obscura_ref.sim.simulation import Breach, Simulation

# A small network with every fault and adversary, quick enough for the suite.
SMALL = Scenario(
    nodes=40,
    duration=400.0,
    seed=5,
    book_size=12,
    resets_per_hour=120.0,
    departures_per_hour=60.0,
    mean_downtime=60.0,
    partition_at=100.0,
    partition_for=60.0,
    attackers=12,
    attack_at=50.0,
    victim_fans=12,
    settings={"max_inbound_connections": 16, "max_total_connections": 30},
)
QUIET = Scenario(
    nodes=30,
    duration=300.0,
    seed=3,
    book_size=10,
    resets_per_hour=0.0,
    departures_per_hour=0.0,
    partition_at=None,
    flooders=0,
    violators=0,
    silent=0,
    attackers=0,
    victim_fans=0,
)


# ---- the network ------------------------------------------------------------------------------


def _pair(net: SimNetwork, loop: EventLoop) -> tuple[SimSocket, SimSocket]:
    a, b = net.add_host("127.1.0.1", 0.01), net.add_host("127.2.0.1", 0.02)
    listener = b.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.2.0.1", 9000))
    listener.listen(8)
    client = a.socket(socket.AF_INET, socket.SOCK_STREAM)
    assert client.connect_ex(("127.2.0.1", 9000)) == errno.EINPROGRESS
    net.advance(net.now + 1.0)
    server, remote = listener.accept()
    assert remote[0] == "127.1.0.1"
    assert isinstance(client, SimSocket) and isinstance(server, SimSocket)
    return client, server


def test_bytes_arrive_in_order_after_the_latency_and_a_full_window_stops_the_sender() -> None:
    net = SimNetwork(random.Random(1), jitter=0.005)
    loop = EventLoop(net.clock, net.selector)
    client, server = _pair(net, loop)
    assert client.state == "connected"
    sent_at = net.now
    for chunk in (b"one", b"two", b"three"):
        assert client.send(memoryview(chunk)) == len(chunk)
    with pytest.raises(BlockingIOError):
        server.recv(100)
    net.advance(sent_at + 0.0299)  # 10 + 20 ms and a jitter: nothing yet ...
    assert not server.rx or net.now >= sent_at + 0.03
    net.advance(sent_at + 1.0)
    assert server.recv(100) == b"onetwothree"  # ... then all, in order
    # A receiver that does not read: the sender's window fills and it must wait.
    sent = 0
    with pytest.raises(BlockingIOError):
        while True:
            sent += client.send(memoryview(bytes(65536)))
    assert sent == SEND_WINDOW
    net.advance(net.now + 1.0)
    assert len(server.recv(SEND_WINDOW)) == SEND_WINDOW
    assert client.send(memoryview(b"x")) == 1  # read: room again


def test_a_partition_holds_bytes_until_it_heals_and_loses_connection_attempts() -> None:
    net = SimNetwork(random.Random(1))
    loop = EventLoop(net.clock, net.selector)
    client, server = _pair(net, loop)
    net.partition({"127.2.0.1": 1})
    client.send(memoryview(b"held"))
    net.advance(net.now + 60.0)
    with pytest.raises(BlockingIOError):
        server.recv(10)
    other = net.hosts["127.1.0.1"].socket(socket.AF_INET, socket.SOCK_STREAM)
    other.connect_ex(("127.2.0.1", 9000))
    net.advance(net.now + 1.0)  # its SYN meets the cut
    net.heal()
    net.advance(net.now + 1.0)
    assert server.recv(10) == b"held"
    assert isinstance(other, SimSocket) and other.state == "connecting"  # lost: never answered


def test_refused_reset_and_a_close_with_unread_bytes() -> None:
    net = SimNetwork(random.Random(1))
    loop = EventLoop(net.clock, net.selector)
    client, server = _pair(net, loop)
    lonely = net.hosts["127.1.0.1"].socket(socket.AF_INET, socket.SOCK_STREAM)
    lonely.connect_ex(("127.2.0.1", 9999))  # nothing listens there
    net.advance(net.now + 1.0)
    assert lonely.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    client.send(memoryview(b"unread"))
    net.advance(net.now + 1.0)
    server.close()  # with bytes unread: the client gets a reset, not an end of stream
    net.advance(net.now + 1.0)
    with pytest.raises(ConnectionResetError):
        client.recv(10)


def test_the_selector_moves_the_clock_to_the_next_delivery_only() -> None:
    net = SimNetwork(random.Random(1))
    loop = EventLoop(net.clock, net.selector)
    client, server = _pair(net, loop)
    ready: list[int] = []
    loop.register(server, selectors.EVENT_READ, lambda mask: ready.append(mask))
    client.send(memoryview(b"x"))
    before = net.now
    loop.run_once(100.0)
    assert ready == [selectors.EVENT_READ]
    assert net.now - before == pytest.approx(0.03)  # the latency, not the 100 s allowed


# ---- repeatability --------------------------------------------------------------------------


def _simulate(out: Path, hash_seed: str, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obscura_ref", "simulate", "--out", str(out), *more],
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_one_seed_writes_one_event_log_and_the_report_with_its_plots(tmp_path: Path) -> None:
    options = [
        *("--nodes", "40", "--duration", "300", "--seed", "7", "--book-size", "12"),
        *(
            "--partition-at",
            "60",
            "--partition-for",
            "60",
            "--attackers",
            "20",
            "--attack-at",
            "30",
        ),
        *("--victim-fans", "20", "--eclipse-nodes", "30", "--eclipse-duration", "300"),
        *("--set", "max_inbound_connections=16", "--set", "max_total_connections=30"),
    ]
    first = _simulate(tmp_path / "a", "1", *options)
    second = _simulate(tmp_path / "b", "2", *options)  # another hash seed: sets iterate apart
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    log = (tmp_path / "a" / "events.log").read_bytes()
    assert log and log == (tmp_path / "b" / "events.log").read_bytes()
    assert b"fault partition" in log and b"fault heal" in log and b" established " in log
    for name in ("connections.png", "partition.png", "eclipse.png", "rotation.png"):
        assert (tmp_path / "a" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "a" / "report.md").read_text()
    assert report.digest(log.decode().splitlines()) in text
    assert "| random (baseline) |" in text
    third = _simulate(tmp_path / "c", "1", *options[:-4], "--seed", "8")
    assert third.returncode == 0, third.stderr
    assert (tmp_path / "c" / "events.log").read_bytes() != log  # another seed, another run


def test_a_bad_option_is_refused_and_a_breach_ends_the_command_naming_seed_and_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    done = _simulate(tmp_path, "0", "--nodes", "10", "--duration", "50", "--set", "nonsense=1")
    assert done.returncode == 2 and "nonsense" in done.stderr
    done = _simulate(tmp_path, "0", "--nodes", "10", "--partition-share", "1.5")
    assert done.returncode == 2 and "partition_share must be within 0 and 1" in done.stderr
    _duplicates_kept(monkeypatch)  # the worker processes are forked: they inherit it
    options = ["--nodes", "30", "--duration", "120", "--seed", "3", "--eclipse-nodes", "0"]
    assert cli.main(["simulate", "--out", str(tmp_path / "r"), *options]) == 1
    said = capsys.readouterr().err
    assert "invariant broken: duplicate-connection" in said and "seed 3, step " in said
    assert not (tmp_path / "r").exists()


def test_the_small_network_keeps_every_invariant() -> None:
    m = Simulation(SMALL).run()
    assert m.departures and m.arrivals and m.resets and m.violations_sent and m.silent_accepted
    assert m.closes["banned"] > 0  # the violators were banned and refused
    assert m.recovery_targets and m.partition_end is not None
    assert sum(m.victim_attacker) > 0


# ---- each invariant fails when the rule behind it is broken ------------------------------------

Patch = Callable[[pytest.MonkeyPatch], None]


def _outbound_limit_ignored(m: pytest.MonkeyPatch) -> None:
    m.setattr(manager_module, "may_open_outbound", lambda count, limit: True)


def _duplicates_kept(m: pytest.MonkeyPatch) -> None:
    m.setattr(ConnectionManager, "_one_per_address", lambda self, peer: None)


def _bans_ignored_at_admission(m: pytest.MonkeyPatch) -> None:
    original = ConnectionManager._on_InboundOffered

    def offered(self: ConnectionManager, fact: Any) -> None:
        bans, self.bans = self.bans, BanList()  # admission sees no ban
        try:
            original(self, fact)
        finally:
            self.bans = bans

    m.setattr(ConnectionManager, "_on_InboundOffered", offered)


def _closes_not_reported(m: pytest.MonkeyPatch) -> None:
    original = Node._tell

    def tell(self: Node, peer: Any, event: Any) -> None:
        if type(event).__name__ == "Closed" and peer.id % 7 == 0:
            self._closed(peer, event)  # closed, but the application never hears of it
            return
        original(self, peer, event)

    m.setattr(Node, "_tell", tell)


def _seeds_forgotten(m: pytest.MonkeyPatch) -> None:
    """RECO-6 as it was before errata E-20: seed nodes leave the book too."""
    m.setattr(
        manager_module,
        "forgotten",
        lambda failures, persistent, seed=False: not persistent and failures >= MAX_FAILURES,
    )


def _self_dialled(m: pytest.MonkeyPatch) -> None:
    """A node given its own address, with RECO-2's and HS-12's checks off."""
    eligible, book_of = book.eligible, Simulation._book
    m.setattr(book, "eligible", lambda entry, **o: eligible(entry, **{**o, "own": set()}))
    m.setattr(HandshakeProtocol, "_check_nonce", lambda self, peer: None)
    m.setattr(
        Simulation,
        "_book",
        lambda self, sim, pool, silent: [f"{sim.ip}:9000", *book_of(self, sim, pool, silent)],
    )


ISOLATED = Scenario(  # one node cut off for 20 minutes: its book fails five times over
    nodes=40,
    duration=2400.0,
    seed=2,
    book_size=12,
    resets_per_hour=0.0,
    departures_per_hour=0.0,
    partition_at=300.0,
    partition_for=1200.0,
    partition_share=0.026,
    flooders=0,
    violators=0,
    silent=0,
    attackers=0,
    victim_fans=0,
)


@pytest.mark.parametrize(
    ("patch", "scenario", "invariant"),
    [
        (_outbound_limit_ignored, QUIET, "limit"),
        (_duplicates_kept, QUIET, "duplicate-connection"),
        (_bans_ignored_at_admission, SMALL, "banned-admitted"),
        (_closes_not_reported, QUIET, "close-reason"),
        (_seeds_forgotten, ISOLATED, "partition-recovery"),
        (_self_dialled, QUIET, "self-connection"),
    ],
    ids=["LIM-13", "RECO-10", "BAN-3", "CONN-40", "RECO-9", "HS-12"],
)
def test_each_invariant_catches_a_broken_rule(
    patch: Patch, scenario: Scenario, invariant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Simulation(scenario).run() is not None  # the unbroken node keeps it ...
    patch(monkeypatch)
    with pytest.raises(Breach) as caught:  # ... the broken one does not
        Simulation(scenario).run()
    assert caught.value.invariant == invariant
    assert caught.value.seed == scenario.seed and caught.value.step > 0
