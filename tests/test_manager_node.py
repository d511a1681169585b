"""The connection manager on real loopback sockets (spec/manager.md), and what an operator sees
of it: the backoff in the log, the ban file across restarts, the status snapshot.

Address groups are /16s, so each group of peers here has a 127.x.0.0/16 of its own. Every wait
is bounded; lower bounds on time appear only where the spec sets one.
"""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from obscura_ref.loop import EventLoop
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.manager.groups import address_group, keyed_hash
from obscura_ref.manager.manager import PeerType
from obscura_ref.node import Node
from obscura_ref.wire import Disconnect, Handshake, decode_frames

from .test_cli_node import SCRIPT, Running
from .test_node import Network, RawPeer, closes, established, fast, handshake_from

# A frame's magic, then bytes no frame has: plaintext garbage, never the start of an
# encrypted-first connection (spec/privacy.md PRIV-53).
GARBAGE = b"OBX\x00GET / HTTP/1.1\r\nHost: example\r\n\r\n"


@pytest.fixture
def net() -> Iterator[Network]:
    network = Network()
    yield network
    network.close()


def wait(done: Callable[[], bool], timeout: float = 10.0) -> bool:
    """For tests against a node in another process: poll ``done`` until it holds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def received(raw: RawPeer) -> Callable[[], bool]:
    """True once ``raw`` has a whole message, or the node ended the stream."""

    def check() -> bool:
        raw.poll()
        return raw.ended or bool(decode_frames(bytes(raw.received))[0])

    return check


# ---- LIM-16, LIM-17: the inbound limit evicts from the crowded group ----------------------


@pytest.mark.spec("LIM-16", "LIM-17")
def test_a_newcomer_from_another_group_evicts_the_newest_of_a_crowded_group(
    net: Network,
) -> None:
    # Default limits (125 inbound, 133 in all); no pings, so no round trip is ever measured.
    b = net.node(fast("handshake_timeout=20", "ping_interval=60", "ping_timeout=30"))
    address = b.listen("127.0.0.2", 0)
    limit = b.config.max_inbound_connections
    assert limit == 125
    crowd = []
    for i in range(limit):  # one after the other: accepted in this order
        raw = RawPeer(address, source=f"127.1.{i // 100}.{1 + i % 100}")
        crowd.append(raw)
        assert net.run(lambda: b.inbound_count() == len(crowd))
        raw.send(handshake_from(1000 + i))
    assert net.run(lambda: all(received(raw)() for raw in crowd), timeout=30)
    assert all(isinstance(raw.messages()[0], Handshake) for raw in crowd)
    assert net.run(lambda: b.manager_status().counts["inbound"] == limit)
    # The newcomer, from 127.9.0.0/16, is admitted (rule 3: one of the crowd makes room) ...
    newcomer = RawPeer(address, source="127.9.0.1")
    newcomer.send(handshake_from(5000))
    assert net.run(received(newcomer))
    assert [type(m) for m in newcomer.messages()] == [Handshake]
    # ... and exactly one of the crowd is evicted and told why. The eviction table picks it:
    # step 1 protects the oldest of the one group; step 2 none (no round trip measured);
    # step 3 the next four, equal in score, the older first; step 4 the older half of the
    # 120 left. Step 6 takes the crowd's group, and among equal scores its most recently
    # accepted peer: the last one.
    assert net.run(lambda: any(raw.poll() for raw in crowd))
    net.run(lambda: False, timeout=0.3)  # time for a second eviction, which must not come
    evicted = [raw for raw in crowd if raw.poll()]
    assert evicted == [crowd[-1]]
    assert evicted[0].messages()[1:] == [Disconnect(CloseReason.EVICTED.code)]
    assert net.run(lambda: CloseReason.EVICTED in [c.reason for c in closes(b)])
    assert b.manager_status().counts["inbound"] == limit
    assert newcomer.poll() is False
    for raw in [*crowd, newcomer]:
        raw.close()


# ---- RECO-4, RECO-5: a persistent peer comes back after a backoff ---------------------------

NEXT_ATTEMPT = re.compile(r"next attempt to ([\d.]+:\d+) in ([\d.]+) s \(failure (\d+)\)")


@pytest.mark.spec("RECO-4", "RECO-5")
def test_a_persistent_peer_is_tried_with_growing_delays_until_it_is_back(
    net: Network, caplog: pytest.LogCaptureFixture
) -> None:
    interval, cap = 0.2, 0.8
    a = net.node(fast(f"reconnect_interval={interval}", f"reconnect_max_interval={cap}"))
    b = net.node()
    host, port = b.listen("127.31.0.1", 0)
    target = f"{host}:{port}"
    caplog.set_level("INFO", logger="obscura_ref.node")
    first = a.connect(host, port, persistent=True)
    assert net.run(lambda: established(a, first))
    assert b.shutdown(2.0)  # B stops: its listener is closed, A's connection is lost

    def attempts() -> list[tuple[float, float, int]]:
        """(when, delay, failures) of each attempt A scheduled, from its log."""
        found = []
        for record in caplog.records:
            match = NEXT_ATTEMPT.search(record.getMessage())
            if match and match[1] == target:
                found.append((record.created, float(match[2]), int(match[3])))
        return found

    # Six failures: the lost connection, then five refused dials, beyond MAX_FAILURES (5),
    # which a persistent address outlives (RECO-5).
    assert net.run(lambda: len(attempts()) >= 6, timeout=15)
    scheduled = attempts()[:6]
    assert [n for _, _, n in scheduled] == [1, 2, 3, 4, 5, 6]
    for _, delay, n in scheduled:
        nominal = min(cap, interval * 2 ** (n - 1))  # 0.2, 0.4, 0.8, then the cap
        # The log rounds to a millisecond and reads the clock a moment after the decision.
        assert 0.75 * nominal - 0.01 <= delay <= 1.25 * nominal + 0.001, (n, delay)
    # No dial comes before its time (RECO-4): each next dial, logged as "connecting", waits
    # at least the delay announced before it.
    dials = [
        r.created
        for r in caplog.records
        if r.getMessage().endswith(f"{target} persistent connecting")
    ]
    for when, delay, _ in scheduled[:5]:
        following = [t for t in dials if t > when]
        assert following and following[0] - when >= delay - 0.02
    # B is back on the same port: A reconnects at its next attempt, and the handshake completes.
    back = net.node()
    assert back.listen(host, port) == (host, port)
    assert net.run(lambda: any(established(a, p) for p in a.peer_ids), timeout=10)
    assert net.run(lambda: back.inbound_count() == 1)
    (row,) = [r for r in a.status() if r.state == "established"]
    assert row.address == target and row.type == "persistent"


# ---- BAN-2 ... BAN-8: bans across a SIGKILL and a restart, and a bad ban file --------------


def raw_from(source: str, port: int, host: str = "127.0.0.8") -> RawPeer:
    return RawPeer((host, port), source=source)


def ended(raw: RawPeer) -> Callable[[], bool]:
    return raw.poll


def ban_addresses(path: Path) -> list[str]:
    return [ban["address"] for ban in json.loads(path.read_text())["bans"]]


@pytest.mark.spec("BAN-2", "BAN-3", "BAN-5", "BAN-6", "BAN-7")
def test_a_ban_survives_a_sigkill_and_a_restart_and_ends_on_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bans = data / "bans.json"
    duration = 4.0  # room for a slow restart inside the ban
    args = ["--listen", "127.0.0.8:0", "--set", f"data_dir={data}"]
    args += ["--set", f"ban_duration={duration:g}", "--status-interval", "0"]
    node = Running(*args)
    try:
        port = int(node.wait_for(r"listening on 127\.0\.0\.8:(\d+)")[1])
        junk = raw_from("127.5.0.1", port)
        sent = time.time()
        junk.send(GARBAGE)
        assert wait(ended(junk))
        told = time.time()
        assert junk.messages() == [Disconnect(CloseReason.INVALID_MESSAGE.code)]
        junk.close()
        # The ban is on disk (BAN-2, BAN-6) before the node could be killed.
        assert wait(lambda: bans.exists() and ban_addresses(bans) == ["127.5.0.1"])
        (ban,) = json.loads(bans.read_text())["bans"]
        until = ban["until"]
        assert sent + duration - 0.01 <= until <= told + duration + 0.01
        node.process.kill()
        node.process.wait(timeout=10)

        node = Running(*args)  # the same data_dir: the ban is loaded (BAN-7)
        port = int(node.wait_for(r"listening on 127\.0\.0\.8:(\d+)")[1])
        banned = raw_from("127.5.0.1", port)
        banned.send(handshake_from(31))  # never read: the refusal comes first (BAN-3)
        assert wait(ended(banned))
        assert time.time() < until, "the restart took longer than the ban: nothing checked"
        assert banned.messages() == [Disconnect(CloseReason.BANNED.code)]
        banned.close()
        other = raw_from("127.6.0.1", port)
        other.send(handshake_from(32))
        assert wait(received(other))
        assert [type(m) for m in other.messages()] == [Handshake]
        other.close()

        # Once the ban is over (BAN-5) the address is admitted, and the ban file, saved when
        # the ban ended, no longer lists it.
        time.sleep(max(0.0, until - time.time()) + 0.05)
        again = raw_from("127.5.0.1", port)
        again.send(handshake_from(33))
        assert wait(received(again))
        assert [type(m) for m in again.messages()] == [Handshake]
        again.close()
        assert wait(lambda: ban_addresses(bans) == [])
        assert node.stop() == 0
    finally:
        if node.process.poll() is None:
            node.process.kill()
            node.process.wait()


@pytest.mark.spec("BAN-8")
@pytest.mark.parametrize("content", ['{"version": 9}', "not json"])
def test_a_bad_ban_file_stops_the_node_naming_it(tmp_path: Path, content: str) -> None:
    bans = tmp_path / "bans.json"
    bans.write_text(content)
    result = subprocess.run(
        [SCRIPT, "node", "--listen", "127.0.0.8:0", "--set", f"data_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"ban file {bans}:" in line
    assert bans.read_text() == content  # left as it was, for the operator to look at


# ---- RECO-1, RECO-2: outbound slots filled across groups ------------------------------------


@pytest.fixture
def refusing() -> Iterator[Callable[[str], tuple[str, int]]]:
    """Addresses on a host with a port of their own and nothing listening: connections to them
    are refused, and no one else takes the port until the test ends."""
    held: list[socket.socket] = []

    def bind(host: str) -> tuple[str, int]:
        sock = socket.socket()
        held.append(sock)
        sock.bind((host, 0))
        address: tuple[str, int] = sock.getsockname()
        return address

    yield bind
    for sock in held:
        sock.close()


@pytest.mark.spec("RECO-1", "RECO-2")
def test_outbound_slots_fill_from_other_groups_and_never_the_own_address(
    net: Network, monkeypatch: pytest.MonkeyPatch, refusing: Callable[[str], tuple[str, int]]
) -> None:
    live = [net.node(), net.node()]
    b_address, c_address = live[0].listen("127.22.0.1", 0), live[1].listen("127.23.0.1", 0)
    dead = [refusing("127.21.0.1"), refusing("127.21.0.2")]
    probe = socket.socket()
    probe.bind(("127.24.0.1", 0))
    own = probe.getsockname()  # A listens there below
    probe.close()
    seeds = [own, *dead, b_address, c_address]
    texts = [f"{h}:{p}" for h, p in seeds]
    config = fast("max_outbound_connections=2", "seed_nodes=" + json.dumps(texts))

    # The node's key orders its choices (section 7): use one under which, were a rule
    # broken, the broken choice would come first. Its own address has the lowest H(address),
    # then the two dead ones, so that without RECO-2 it dials itself first, and without the
    # diversity rule of RECO-1 it fills both slots in 127.21.0.0/16.
    def ordered(node: Node) -> bool:
        rank = [keyed_hash(node.manager.key, text) for text in texts]
        return rank[0] < min(rank[1:3]) and max(rank[1:3]) < min(rank[3:])

    for seed in range(10_000):
        # Looked for on a loop of its own, never run: a node's first tick would dial its seeds.
        scratch = EventLoop()
        found = ordered(Node(config, loop=scratch, rng=random.Random(seed)))
        scratch.close()
        if found:
            break
    else:
        raise AssertionError("no seed gives the order wanted")
    a = Node(config, loop=net.loop, rng=random.Random(seed))
    net.nodes.append(a)
    dialled: list[tuple[tuple[str, int], list[str]]] = []
    dial = a._dial

    def recording(address: tuple[str, int], kind: PeerType) -> None:
        # The outbound connections that count when this one is dialled.
        counting = [
            row.address
            for row in a.status()
            if row.type == "outbound" and row.state in ("connecting", "handshaking", "established")
        ]
        dialled.append((address, counting))
        dial(address, kind)

    monkeypatch.setattr(a, "_dial", recording)
    assert a.listen(*own) == own
    wanted = {f"{h}:{p}" for h, p in (b_address, c_address)}

    def outbound_established() -> set[str]:
        return {r.address for r in a.status() if r.type == "outbound" and r.state == "established"}

    assert net.run(lambda: outbound_established() == wanted, timeout=10)
    net.run(lambda: False, timeout=0.5)  # full: nothing more is dialled
    assert outbound_established() == wanted
    assert own not in [address for address, _ in dialled]  # RECO-2
    assert {address for address, _ in dialled} >= set(dead)  # the dead were tried, and failed
    # RECO-1: never two outbound connections in one group. At every dial here another group
    # held an eligible entry (the live groups are free until they are dialled, and the dead
    # group is free whenever its dial has failed), so a second in one group was never best.
    for address, counting in dialled:
        groups = [address_group(text.rsplit(":", 1)[0]) for text in counting]
        assert address_group(address[0]) not in groups, (address, counting)
    assert a.inbound_count() == 0


# ---- NODE-9: the status line and the status snapshot ---------------------------------------


@pytest.mark.spec("NODE-9")
def test_the_status_line_and_the_status_snapshot(
    tmp_path: Path, refusing: Callable[[str], tuple[str, int]]
) -> None:
    snapshot = tmp_path / "out" / "status.json"
    dead_text = "{}:{}".format(*refusing("127.0.0.9"))
    node = Running(
        "--listen",
        "127.0.0.8:0",
        "--persistent",
        dead_text,
        "--set",
        f"data_dir={tmp_path / 'data'}",
        "--status-interval",
        "0.2",
        "--status-json",
        str(snapshot),
    )
    peers: list[RawPeer] = []
    try:
        port = int(node.wait_for(r"listening on 127\.0\.0\.8:(\d+)")[1])
        junk = raw_from("127.5.0.2", port)
        junk.send(GARBAGE)
        assert wait(ended(junk))
        junk.close()  # the node waits for our end before it closes (NODE-4)
        friend = raw_from("127.7.0.1", port)
        friend.send(handshake_from(41))
        peers.append(friend)
        assert wait(received(friend))

        def current() -> Any:
            return json.loads(snapshot.read_text())

        # The junk's connection is gone, banned; the friend's is established.
        assert wait(lambda: snapshot.exists() and _established_one(current()))
        document = current()
        assert document["running"] is True
        assert document["counts"] == {"outbound": 0, "persistent": 0, "inbound": 1, "temporary": 0}
        assert document["groups"] == {"127.7.0.0/16": 1}
        assert document["partitioned"] is False
        memory = document["memory"]
        assert memory["budget"] == 256 * 1024 * 1024 and memory["pressure"] is False
        assert 0 <= memory["buffers"] < 64 * 1024
        (ban,) = document["bans"]
        assert ban["address"] == "127.5.0.2" and ban["until"] > time.time()
        (waiting,) = document["waiting"]
        assert waiting["address"] == dead_text and waiting["failures"] == 1
        assert 0 < waiting["next_attempt_in"] <= 1.25 * 30  # reconnect_interval 30 s
        (row,) = document["connections"]
        assert row["address"].startswith("127.7.0.1:") and row["type"] == "inbound"
        assert row["group"] == "127.7.0.0/16" and row["direction"] == "inbound"
        assert row["score"] >= 10 and row["user_agent"] == "raw/1"  # handshake completed
        node.wait_for(
            r"status: 0 outbound, 0 persistent, 1 inbound, 0 temporary; "
            r"address groups 1, bans 1, waiting 1, mean rtt -, not partitioned; "
            r"memory \d+\.\d of 256 MiB"
        )
        node.process.send_signal(signal.SIGINT)
        assert wait(ended(friend))  # told shutting_down; ending our side lets the node go
        friend.close()
        assert node.process.wait(timeout=10) == 0
        final = current()
        assert final["running"] is False and final["connections"] == []
        assert not [p.name for p in snapshot.parent.iterdir() if p.name != "status.json"]
    finally:
        for raw in peers:
            raw.close()
        if node.process.poll() is None:
            node.process.kill()
            node.process.wait()


def _established_one(document: Any) -> bool:
    return [row["state"] for row in document["connections"]] == ["established"]


def test_a_status_file_that_cannot_be_written_stops_the_node_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")  # a file where the snapshot's folder should be
    result = subprocess.run(
        [SCRIPT, "node", "--listen", "127.0.0.1:0", "--status-json", str(blocker / "status.json")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and f"status file {blocker}" in result.stderr
