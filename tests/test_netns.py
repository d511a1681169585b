"""Real sockets under real faults: five `obscura-ref node` processes, each in a Linux network
namespace of its own, on a network of two bridges (tests/netns.py) with delay and loss on every
link where the kernel has `tc netem`; the network is cut in two, three hosts and two, then healed.

The nodes find each other from their seed lists (spec/manager.md section 7) and run with short
timers, so that the whole run takes some twenty seconds. While they run, the test reads every
node's status snapshot (`--status-json`) again and again and checks each one as it comes; from
the JSON logs (`--log-format json`) it checks every close afterwards:

- no node is above its limits (LIM-12 to LIM-14), in its manager's counts nor in its list of
  connections;
- no node is connected to itself: each has one address, its listening one, and its seed list
  names it too, so RECO-2's "never dial your own listening address" is put to the test;
- no node dials an IP address that a connection which counts already has (RECO-2), and none
  keeps two established connections with one (RECO-10: of two dials that cross, one is closed
  once both handshakes are done);
- a node is partitioned exactly when spec/manager.md section 10 says (RECO-7): never while an
  outbound connection is established (every peer here is a group of its own), always once none
  has been for `partition_timeout`;
- every connection is closed exactly once, with a reason of spec/connection.md section 5
  (CONN-40);
- during the cut, every connection across it is closed by a silence timer (KA-3, KA-6) in the
  time they allow, and none crosses it once they have run out;
- after the heal, every node regains its outbound connections within the bound of RECO-9
  (`recovery_bound` of obscura_ref.manager.partition).

The checks are plain functions of snapshots and log records; the tests at the end feed them
documents that break each rule, so that a check that could never fail does not pass unseen.

The network test needs Linux and root (it creates namespaces, veths and bridges): elsewhere it
is skipped and says why, unless OBSCURA_REQUIRE_NETNS=1 (set by CI) makes that a failure. Every
address it uses is in 127.0.0.0/8 and inside namespaces it created; it stops the nodes and
deletes the namespaces however it ends, and a node it could not stop ends by itself.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from obscura_ref.machines.reasons import CloseReason
from obscura_ref.manager.partition import recovery_bound

from .netns import Host, Lab, unavailable

Snapshot = dict[str, Any]  # one --status-json document
Connection = dict[str, Any]  # one of its "connections"
Record = dict[str, Any]  # one line of a --log-format json log

PORT = 18444  # the same in every namespace: each has ports of its own
SIDES = (3, 2)  # hosts on each side of the cut
NETEM = ("delay", "20ms", "5ms", "loss", "1%")  # modest, so that the run is not flaky

# Short timers (spec/config.md); ping_timeout below ping_interval, as KA-7 requires. A TCP
# connect gets 2 s: room for a SYN lost to netem and sent again after the kernel's first 1 s.
# Two outbound connections each among five nodes: every node has more seeds than slots, so the
# manager chooses; four inbound, so that no node refuses another (a refused dial would be a
# failure that no fault caused).
CONFIG: dict[str, float | str] = {
    "max_outbound_connections": 2,
    "max_inbound_connections": 4,
    "max_total_connections": 6,
    "max_temporary_connections": 1,
    "connection_timeout": 2.0,
    "handshake_timeout": 2.0,
    "ping_interval": 1.5,
    "ping_timeout": 1.0,
    "inactivity_timeout": 4.0,
    "close_timeout": 1.0,
    "temporary_timeout": 2.0,
    "reconnect_interval": 0.5,
    "reconnect_max_interval": 2.0,
    "partition_timeout": 3.0,
    "data_dir": "",  # bans in memory: nothing of a run outlives it
}


def setting(key: str) -> float:
    return float(CONFIG[key])


STATUS_INTERVAL = 0.2  # seconds between snapshots
POLL = 0.05  # seconds between reads of the snapshot files
# What a snapshot or a log line may lag behind the moment it tells of: a pass of the loop, the
# interval between snapshots, netem's delay.
SLACK = 0.5
START_TIMEOUT = 20.0  # for every node to have its outbound connections, from the start
STOP_TIMEOUT = 10.0  # a node ends within close_timeout of SIGTERM; this is far above it
NODE_LIFETIME = 120  # seconds after which a node the test failed to stop ends by itself

# The longest a connection across the cut still counts once the cut is made: an established
# one is closed by its ping (ping_interval + ping_timeout, KA-1 and KA-3) or by its silence
# (inactivity_timeout, KA-6), whichever comes first; a handshaking one by handshake_timeout.
NOTICE_BOUND = max(
    min(setting("ping_interval") + setting("ping_timeout"), setting("inactivity_timeout")),
    setting("handshake_timeout"),
)
# The cut lasts long enough for a node left without an outbound peer to notice (RECO-7,
# NOTICE_BOUND + partition_timeout) and for the backoff of the addresses across the cut to reach
# reconnect_max_interval (0.5, 1, then 2 s, each after a failed dial of up to 2 s), so that
# the recovery starts from the longest delays RECO-9 allows for. By then addresses have failed
# four or five times in a row, up to MAX_FAILURES: a node comes back at all only because seed
# nodes stay in the book (RECO-6).
HOLD = 15.0
RECOVERY_BOUND = recovery_bound(
    setting("reconnect_max_interval"), setting("connection_timeout"), setting("handshake_timeout")
)
TAIL = 1.0  # seconds of watching after the recovery, before the nodes are stopped

REASONS = {reason.label for reason in CloseReason}
SILENCE_REASONS = {"ping_timeout", "inactivity_timeout", "send_stalled"}  # heard nothing more
OUTWARD = ("outbound", "persistent")  # what the partition rule looks at (section 10)
COUNTING_STATES = ("connecting", "proxying", "handshaking", "securing", "established")


@dataclass(frozen=True)
class Limits:
    outbound: int
    inbound: int
    temporary: int
    total: int


LIMITS = Limits(
    outbound=int(setting("max_outbound_connections")),
    inbound=int(setting("max_inbound_connections")),
    temporary=int(setting("max_temporary_connections")),
    total=int(setting("max_total_connections")),
)


# ---- the checks: functions of snapshots and log records, each returning what it found ------


def ip_of(address: str) -> str:
    """The IP address of ``HOST:PORT``."""
    return address.rpartition(":")[0].strip("[]")


def counting(snapshot: Snapshot) -> list[Connection]:
    """The connections that count against the limits (LIM-12): from their dial or accept
    until their close begins."""
    return [c for c in snapshot["connections"] if c["state"] in COUNTING_STATES]


def outward_established(snapshot: Snapshot) -> list[Connection]:
    return [
        c for c in snapshot["connections"] if c["type"] in OUTWARD and c["state"] == "established"
    ]


def check_limits(snapshot: Snapshot, limits: Limits) -> list[str]:
    """LIM-12 to LIM-14: neither the manager's counts nor the connections the node holds are
    above a limit."""
    found = []
    held = dict.fromkeys(("outbound", "persistent", "inbound", "temporary"), 0)
    for connection in counting(snapshot):
        held[connection["type"]] += 1
    for view, counts in (("counts", snapshot["counts"]), ("connections", held)):
        for kind, limit in (
            ("outbound", limits.outbound),
            ("inbound", limits.inbound),
            ("temporary", limits.temporary),
        ):
            if counts[kind] > limit:
                found.append(f"{view}: {counts[kind]} {kind}, above the limit {limit}")
        total = sum(counts.values())
        if total > limits.total:
            found.append(f"{view}: {total} connections in all, above the limit {limits.total}")
    return found


def check_not_itself(snapshot: Snapshot, own_ip: str) -> list[str]:
    """No connection to the node itself. Each node here has one address, its listening one,
    so a connection from or to that IP, whatever the port, is one to itself."""
    return [
        f"peer {c['peer']} ({c['direction']} {c['address']}) is the node itself"
        for c in snapshot["connections"]
        if ip_of(c["address"]) == own_ip
    ]


def check_no_second_dial(snapshot: Snapshot) -> list[str]:
    """RECO-2: no dial to an IP address that a connection which counts already has.

    Two connections with one IP may still be seen: two dials that cross, each made before the
    other's connection arrived, or a peer that dials again before the node has noticed that
    its old connection died. What may not be seen is a dialled connection younger than another
    that counts with its IP: a connection that counts now counted all its life, so it counted
    when the younger was dialled. Two dialled ones are a second dial whatever their ages."""
    found = []
    live = counting(snapshot)
    for dialled in live:
        if dialled["direction"] != "outbound":
            continue
        for other in live:
            if other is dialled or ip_of(other["address"]) != ip_of(dialled["address"]):
                continue
            if other["direction"] == "outbound" or other["age"] > dialled["age"]:
                found.append(
                    f"peer {dialled['peer']} dialled {dialled['address']} while peer "
                    f"{other['peer']} ({other['direction']} {other['address']}) counted"
                )
    return found


def check_one_per_ip(snapshot: Snapshot) -> list[str]:
    """RECO-10: never two established connections with one IP address. Two dials that cross
    each count until their handshakes complete; then the one whose dialler's handshake nonce is
    the greater is closed, at once and at both ends."""
    established: dict[str, list[Connection]] = {}
    for c in snapshot["connections"]:
        if c["state"] == "established":
            established.setdefault(ip_of(c["address"]), []).append(c)
    return [
        f"{len(same)} established connections with {ip}: peers {[c['peer'] for c in same]}"
        for ip, same in established.items()
        if len(same) > 1
    ]


def check_partition_flag(snapshot: Snapshot) -> list[str]:
    """RECO-7, what one snapshot shows: with an established outbound or persistent
    connection, a node is partitioned only when all of them (two or more) share one group."""
    outward = outward_established(snapshot)
    if not outward:
        return []
    groups = sorted({c["group"] for c in outward})
    expected = len(outward) >= 2 and len(groups) == 1
    if snapshot["partitioned"] != expected:
        return [
            f"partitioned is {snapshot['partitioned']} with {len(outward)} established "
            f"outbound connections in groups {groups}"
        ]
    return []


def check_snapshot(snapshot: Snapshot, own_ip: str, limits: Limits) -> list[str]:
    """Everything a snapshot must satisfy, whenever it was taken."""
    return [
        *check_limits(snapshot, limits),
        *check_not_itself(snapshot, own_ip),
        *check_no_second_dial(snapshot),
        *check_one_per_ip(snapshot),
        *check_partition_flag(snapshot),
    ]


def outward_spans(records: Iterable[Record]) -> list[tuple[float, float]]:
    """From a node's log, when each of its outbound and persistent connections was established
    and when its close began (infinity: not yet). A snapshot can miss a connection that lives
    less than the interval between two, as one closed at once by RECO-10; the log does not."""
    types: dict[int, str] = {}
    spans: dict[int, list[float]] = {}
    for r in records:
        peer, event = r.get("peer"), r.get("event")
        if not isinstance(peer, int):
            continue
        if event == "connecting":
            types[peer] = r["type"]
        elif types.get(peer) not in OUTWARD:
            continue
        elif event == "established":
            spans[peer] = [log_time(r), math.inf]
        elif event in ("closing", "closed") and peer in spans and spans[peer][1] == math.inf:
            spans[peer][1] = log_time(r)
    return [(start, end) for start, end in spans.values()]


def check_silence_noticed(
    snapshots: Sequence[Snapshot],
    spans: Sequence[tuple[float, float]],
    started: float,
    partition_timeout: float,
) -> list[str]:
    """RECO-7, what a series shows: a node that has had no established outbound or persistent
    connection for ``partition_timeout`` seconds, since it ``started`` or since the close of
    the last one began (``spans``, from its log), considers itself partitioned."""
    found = []
    for snapshot in snapshots:
        now = snapshot["time"]
        if outward_established(snapshot) or any(start <= now < end for start, end in spans):
            continue
        since = max([started, *(end for _, end in spans if end <= now)])
        if now - since > partition_timeout + SLACK and not snapshot["partitioned"]:
            found.append(
                f"at {now:.3f}: no outbound connection for {now - since:.1f} s and not partitioned"
            )
    return found


def check_across(snapshot: Snapshot, far_ips: Iterable[str]) -> list[str]:
    """No connection that counts crosses the cut, bar a dial still waiting for its TCP
    connection (its SYN is lost in the cut): what holds once the silence timers have run."""
    far = set(far_ips)
    return [
        f"peer {c['peer']} ({c['type']} {c['address']}) is {c['state']} across the cut"
        for c in counting(snapshot)
        if ip_of(c["address"]) in far and c["state"] != "connecting"
    ]


def check_close_reasons(records: Iterable[Record]) -> list[str]:
    """Every close, as it begins and as it ends, names a reason of spec/connection.md section
    5 and the rule that closed it."""
    return [
        f"peer {r.get('peer')} {r.get('address')} {r['event']} without a known reason: {r}"
        for r in records
        if r.get("event") in ("closing", "closed")
        and (r.get("reason") not in REASONS or not r.get("requirement"))
    ]


def check_closed_once(records: Iterable[Record]) -> list[str]:
    """CONN-40: every connection the log shows opened (dialled or accepted) is reported closed
    exactly once, once the node has stopped."""
    opened: list[int] = []
    closed: dict[int, int] = {}
    for r in records:
        if r.get("event") in ("connecting", "accepted"):
            opened.append(r["peer"])
        elif r.get("event") == "closed":
            closed[r["peer"]] = closed.get(r["peer"], 0) + 1
    return [
        f"peer {peer} closed {closed.get(peer, 0)} times"
        for peer in sorted(set(opened) | set(closed))
        if closed.get(peer, 0) != 1
    ]


def log_time(record: Record) -> float:
    """The Unix time of a log record (``time``: ISO 8601, UTC, to the millisecond)."""
    return datetime.fromisoformat(record["time"]).timestamp()


def check_cut_closes(
    before: Snapshot, records: Sequence[Record], far_ips: Iterable[str], cut: float, heal: float
) -> list[str]:
    """What the log of one node shows of the cut: every connection across it that was
    established just before closed within the silence timers and the close's own
    ``close_timeout``, for a reason of silence; none across it was established during it."""
    far = set(far_ips)
    found = []
    closes = {r["peer"]: r for r in records if r.get("event") == "closed"}
    deadline = min(cut + NOTICE_BOUND + setting("close_timeout") + SLACK, heal)
    for c in before["connections"]:
        if ip_of(c["address"]) not in far or c["state"] != "established":
            continue
        if c["type"] == "temporary":
            continue  # closed at once by design (TYPE-2), cut or no cut
        close = closes.get(c["peer"])
        if close is None:
            found.append(f"peer {c['peer']} {c['address']} across the cut never closed")
        elif log_time(close) < cut:
            continue  # closed between the snapshot and the cut: not the cut's doing
        elif log_time(close) > deadline:
            late = log_time(close) - cut
            found.append(f"peer {c['peer']} {c['address']} closed {late:+.2f} s after the cut")
        elif close["reason"] not in SILENCE_REASONS:
            found.append(f"peer {c['peer']} {c['address']} closed {close['reason']} in the cut")
    for r in records:
        if r.get("event") != "established" or ip_of(r["address"]) not in far:
            continue
        if cut + SLACK < log_time(r) < heal:
            found.append(f"peer {r['peer']} {r['address']} established across the cut")
    return found


def regained(snapshot: Snapshot, own_ip: str, reachable: Iterable[str], max_outbound: int) -> bool:
    """Whether the node has its outbound connections back: ``max_outbound`` of them
    established, or an established connection with every other reachable node, which leaves
    it nothing to dial (RECO-2): a node that the others dialled first keeps fewer."""
    established = [c for c in snapshot["connections"] if c["state"] == "established"]
    if sum(1 for c in established if c["type"] == "outbound") >= max_outbound:
        return True
    return set(reachable) - {own_ip} <= {ip_of(c["address"]) for c in established}


# ---- running the nodes -------------------------------------------------------------------------


def require_netns() -> None:
    """Skip, saying why, where namespaces cannot be made; fail instead when CI requires them."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("OBSCURA_REQUIRE_NETNS") == "1":
        pytest.fail(f"OBSCURA_REQUIRE_NETNS=1, but {reason}")
    pytest.skip(f"needs Linux network namespaces: {reason}")


@dataclass
class Node:
    host: Host
    process: subprocess.Popen[bytes]
    status: Path
    log: Path
    snapshots: list[Snapshot] = field(default_factory=list)

    @property
    def latest(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None

    def poll(self) -> Snapshot | None:
        """Read the snapshot file; the snapshot when it is a new one. The node replaces the
        file atomically, so a read never sees half of one."""
        try:
            snapshot: Snapshot = json.loads(self.status.read_text())
        except FileNotFoundError:
            return None  # not written yet
        if self.snapshots and snapshot == self.snapshots[-1]:
            return None  # the same one again
        self.snapshots.append(snapshot)
        return snapshot

    def records(self) -> list[Record]:
        """The log's records; a line that is not one (a traceback, say) fails the test."""
        records = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"{self.host.label}: a log line that is not JSON: {line}")
        return records


class Network:
    """The nodes of a lab, one per host, watched: each new snapshot is checked as it is read,
    and what it breaks is kept in ``violations``."""

    def __init__(self, lab: Lab, folder: Path) -> None:
        self.lab = lab
        self.folder = folder
        self.nodes: list[Node] = []
        self.violations: list[str] = []

    def start(self) -> None:
        config = self.folder / "node.toml"
        seeds = [f"{host.address}:{PORT}" for host in self.lab.hosts]  # its own address too
        # JSON's numbers, strings and lists of strings are TOML's too.
        lines = [f"{key} = {json.dumps(value)}" for key, value in CONFIG.items()]
        config.write_text("\n".join([*lines, f"seed_nodes = {json.dumps(seeds)}", ""]))
        for host in self.lab.hosts:
            status, log = self.folder / f"{host.label}.json", self.folder / f"{host.label}.log"
            command = [
                *self.lab.exec_prefix(host),
                # --foreground: a SIGTERM for `timeout` reaches the node once, not again through
                # its process group, which the node would take as a second one (stop at once).
                *("timeout", "--foreground", "--kill-after=5", str(NODE_LIFETIME)),
                *(sys.executable, "-m", "obscura_ref", "node"),
                *("--listen", f"{host.address}:{PORT}", "--config", str(config)),
                *("--log-format", "json", "--status-json", str(status)),
                *("--status-interval", str(STATUS_INTERVAL)),
            ]
            with log.open("wb") as output:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    start_new_session=True,  # a Ctrl-C at the terminal is the test's alone
                )
            self.nodes.append(Node(host, process, status, log))

    def poll(self) -> None:
        for node in self.nodes:
            if node.process.poll() is not None:
                tail = node.log.read_text(errors="replace")[-2000:]
                pytest.fail(f"{node.host.label} stopped ({node.process.returncode}): {tail}")
            snapshot = node.poll()
            if snapshot is not None:
                for problem in check_snapshot(snapshot, node.host.address, LIMITS):
                    self.violations.append(f"{node.host.label} at {snapshot['time']}: {problem}")

    def wait(self, done: Callable[[], bool], until: float) -> bool:
        """Poll until ``done()`` holds or the wall clock reaches ``until``."""
        while True:
            self.poll()
            if done():
                return True
            if time.time() >= until:
                return False
            time.sleep(POLL)

    def watch(self, seconds: float) -> None:
        self.wait(lambda: False, time.time() + seconds)

    def all_since(self, moment: float, condition: Callable[[Node, Snapshot], bool]) -> bool:
        """Whether every node's latest snapshot was taken after ``moment`` and satisfies
        ``condition``."""
        for node in self.nodes:
            latest = node.latest
            if latest is None or latest["time"] <= moment or not condition(node, latest):
                return False
        return True

    def regained(self, node: Node, snapshot: Snapshot) -> bool:
        reachable = [host.address for host in self.lab.hosts]
        return regained(snapshot, node.host.address, reachable, LIMITS.outbound)

    def first_all_regained(self, after: float) -> float | None:
        """The first time after ``after`` at which the latest snapshot of every node said it
        had its outbound connections back, the snapshots replayed in the order of their times
        (a moment a snapshot later than the fact: on the safe side)."""
        events = sorted(
            (
                (snapshot["time"], index, snapshot)
                for index, node in enumerate(self.nodes)
                for snapshot in node.snapshots
                if snapshot["time"] > after
            ),
            key=lambda event: event[0],  # stable: a node's own snapshots stay in their order
        )
        ok = [False] * len(self.nodes)
        for moment, index, snapshot in events:
            ok[index] = self.regained(self.nodes[index], snapshot)
            if all(ok):
                return float(moment)
        return None

    def far_side(self, host: Host) -> list[str]:
        """The addresses on the other side of the cut from ``host``."""
        return [other.address for other in self.lab.hosts if other.side != host.side]

    def stop(self) -> None:
        """SIGTERM to every node (a graceful close of every connection), then wait; SIGKILL
        to the session of one that outlives the deadline."""
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for node in self.nodes:
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def network(folder: Path) -> Iterator[Network]:
    """The lab and a node on each host; the nodes stopped and the namespaces deleted however
    it ends."""
    lab = Lab(SIDES, NETEM)
    try:
        if lab.netem_error is not None:
            warnings.warn(
                f"the links carry no delay or loss: tc netem could not be set ({lab.netem_error})",
                stacklevel=1,
            )
        nodes = Network(lab, folder)
        try:
            nodes.start()
            yield nodes
        finally:
            nodes.stop()
    finally:
        lab.close()


def describe(net: Network) -> str:
    """Each node's latest connections, for a failure's message."""
    lines = []
    for node in net.nodes:
        latest = node.latest
        if latest is None:
            lines.append(f"{node.host.label}: no snapshot")
            continue
        connections = ", ".join(
            f"{c['type']} {c['address']} {c['state']}" for c in latest["connections"]
        )
        lines.append(
            f"{node.host.label} ({node.host.address}) partitioned={latest['partitioned']} "
            f"book={latest['book']}: {connections}"
        )
    return "\n" + "\n".join(lines)


# ---- the test of the network ---------------------------------------------------------------


@pytest.mark.spec(
    "LIM-12",
    "LIM-13",
    "LIM-14",
    "RECO-1",
    "RECO-2",
    "RECO-6",
    "RECO-7",
    "RECO-9",
    "RECO-10",
    "KA-3",
    "CONN-40",
)
def test_nodes_in_namespaces_keep_the_invariants_through_a_partition(tmp_path: Path) -> None:
    require_netns()
    started = time.time()
    with network(tmp_path) as net:
        formed = net.wait(lambda: net.all_since(started, net.regained), started + START_TIMEOUT)
        assert formed, f"no outbound connections {START_TIMEOUT} s after the start:{describe(net)}"
        formed_at = time.time()

        before = {node.host.label: node.latest for node in net.nodes}
        cut = time.time()
        net.lab.cut()

        def quiet(node: Node, snapshot: Snapshot) -> bool:
            return not check_across(snapshot, net.far_side(node.host))

        noticed = net.wait(lambda: net.all_since(cut, quiet), cut + NOTICE_BOUND + 4 * SLACK)
        assert noticed, f"connections still cross the cut:{describe(net)}"
        noticed_at = time.time()
        net.wait(lambda: False, cut + HOLD)
        heal = time.time()
        net.lab.heal()

        until = heal + RECOVERY_BOUND + 4 * SLACK  # past the bound: to tell by how much
        recovered = net.wait(lambda: net.all_since(heal, net.regained), until)
        assert recovered, f"not recovered {until - heal:.1f} s after the heal:{describe(net)}"
        net.watch(TAIL)
        net.stop()
        stopped = time.time()

        problems = list(net.violations)
        for node in net.nodes:
            snapshot_before = before[node.host.label]
            assert snapshot_before is not None  # formed: every node had written one
            found = check_afterwards(net, node, snapshot_before, cut, heal)
            problems += [f"{node.host.label}: {problem}" for problem in found]
        crossing = sum(
            1
            for node in net.nodes
            for c in outward_established(before[node.host.label] or {"connections": []})
            if ip_of(c["address"]) in net.far_side(node.host)
        )
        in_cut = [s for node in net.nodes for s in node.snapshots if cut <= s["time"] <= heal]
        failures = max((w["failures"] for s in in_cut for w in s["waiting"]), default=0)
        partitioned = sum(
            any(s["partitioned"] for s in node.snapshots if cut <= s["time"] <= heal)
            for node in net.nodes
        )
        recovery = net.first_all_regained(heal)
        print(
            f"formed {formed_at - started:.1f} s after the start; {crossing} outbound "
            f"connections across the cut, none left {noticed_at - cut:.1f} s after it; "
            f"{partitioned} nodes partitioned in it, addresses failed up to {failures} times "
            f"in a row; healed {heal - cut:.1f} s after the cut; recovered in "
            f"{'-' if recovery is None else f'{recovery - heal:.2f}'} s (bound "
            f"{RECOVERY_BOUND:.2f} s); stopped {stopped - started:.1f} s after the start"
            + ("" if net.lab.netem_error is None else "; links without netem")
        )
        assert crossing, "no outbound connection crossed the cut: the cut tested nothing"
        assert recovery is not None
        assert recovery - heal <= RECOVERY_BOUND, (
            f"recovered {recovery - heal:.2f} s after the heal, past RECO-9's "
            f"{RECOVERY_BOUND:.2f} s"
        )
        assert not problems, "\n".join(problems)


def check_afterwards(
    net: Network, node: Node, before: Snapshot, cut: float, heal: float
) -> list[str]:
    """What a stopped node's snapshots, taken together, and its log must show."""
    found = []
    if node.process.returncode != 0:
        found.append(f"ended with status {node.process.returncode}")
    node.poll()  # the snapshot written at stop
    if node.snapshots[-1]["running"]:
        found.append("no snapshot written at stop")
    records = node.records()
    listening = min(log_time(r) for r in records if r.get("event") == "listening")
    spans = outward_spans(records)
    found += check_silence_noticed(node.snapshots, spans, listening, setting("partition_timeout"))
    far = net.far_side(node.host)
    for snapshot in node.snapshots:
        if cut + NOTICE_BOUND + SLACK < snapshot["time"] < heal:
            found += check_across(snapshot, far)
    found += check_cut_closes(before, records, far, cut, heal)
    found += check_close_reasons(records)
    found += check_closed_once(records)
    found += [f"logged an error: {r}" for r in records if r["level"] == "error"]
    return found


# ---- the checks can fail: each is fed a document that breaks its rule ----------------------

OWN = "127.1.0.1"


def connection(
    address: str,
    kind: str = "outbound",
    *,
    state: str = "established",
    age: float = 10.0,
    peer: int = 1,
) -> Connection:
    """A connection as the status snapshot describes it (only the keys the checks read)."""
    return {
        "peer": peer,
        "address": address,
        "direction": "inbound" if kind == "inbound" else "outbound",
        "type": kind,
        "group": f"127.{address.split('.')[1]}.0.0/16",
        "state": state,
        "age": age,
    }


def snapshot(
    *connections: Connection, partitioned: bool = False, at: float = 100.0, counts: Any = None
) -> Snapshot:
    held = dict.fromkeys(("outbound", "persistent", "inbound", "temporary"), 0)
    for c in connections:
        if c["state"] in COUNTING_STATES:
            held[c["type"]] += 1
    return {
        "time": at,
        "running": True,
        "counts": held if counts is None else counts,
        "partitioned": partitioned,
        "connections": list(connections),
    }


def healthy() -> Snapshot:
    """Two outbound and two inbound connections, all to other nodes: nothing wrong."""
    return snapshot(
        connection("127.2.0.1:18444", peer=1, age=9.0),
        connection("127.3.0.1:18444", peer=2, age=8.0),
        connection("127.4.0.1:40000", "inbound", peer=3, age=7.0),
        connection("127.5.0.1:40001", "inbound", peer=4, age=6.0),
    )


def test_a_healthy_snapshot_passes_every_check() -> None:
    assert check_snapshot(healthy(), OWN, LIMITS) == []
    assert regained(healthy(), OWN, [OWN, "127.2.0.1", "127.3.0.1"], 2)


def test_the_limits_check_finds_a_node_above_each_limit() -> None:
    third = connection("127.4.0.1:18444", peer=5, state="handshaking")
    assert check_limits(snapshot(*healthy()["connections"], third), LIMITS) != []
    over = {"outbound": 2, "persistent": 0, "inbound": 2, "temporary": 2}
    assert any("temporary" in p for p in check_limits(snapshot(counts=over), LIMITS))
    crowded = {"outbound": 0, "persistent": 0, "inbound": 5, "temporary": 0}
    assert any("inbound" in p for p in check_limits(snapshot(counts=crowded), LIMITS))
    everything = {"outbound": 2, "persistent": 3, "inbound": 2, "temporary": 0}
    assert any("in all" in p for p in check_limits(snapshot(counts=everything), LIMITS))
    # A closing connection no longer counts (LIM-12).
    closing = connection("127.4.0.1:18444", peer=5, state="closing")
    assert check_limits(snapshot(*healthy()["connections"], closing), LIMITS) == []


def test_the_self_check_finds_a_connection_to_the_node_itself() -> None:
    for address in (f"{OWN}:18444", f"{OWN}:51000"):
        assert check_not_itself(snapshot(connection(address)), OWN) != []


def test_the_second_dial_check_finds_a_dial_to_a_connected_ip() -> None:
    inbound_first = snapshot(
        connection("127.2.0.1:40000", "inbound", peer=1, age=5.0),
        connection("127.2.0.1:18444", peer=2, age=4.0),
    )
    assert check_no_second_dial(inbound_first) != []
    twice = snapshot(
        connection("127.2.0.1:18444", peer=1, age=5.0),
        connection("127.2.0.1:18444", "temporary", peer=2, age=5.0),
    )
    assert check_no_second_dial(twice) != []
    # Crossing dials: ours went out before the peer's arrived. And a closing one counts no more.
    crossed = snapshot(
        connection("127.2.0.1:18444", peer=1, age=5.0),
        connection("127.2.0.1:40000", "inbound", peer=2, age=4.9),
    )
    assert check_no_second_dial(crossed) == []
    redialled = snapshot(
        connection("127.2.0.1:18444", peer=1, age=5.0, state="closing"),
        connection("127.2.0.1:18444", peer=2, age=1.0),
    )
    assert check_no_second_dial(redialled) == []


def test_the_partition_checks_find_a_flag_that_disagrees_with_the_connections() -> None:
    one = connection("127.2.0.1:18444")
    assert check_partition_flag(snapshot(one, partitioned=True)) != []
    same_group = connection("127.2.0.9:18444", peer=2)
    assert check_partition_flag(snapshot(one, same_group, partitioned=False)) != []
    assert check_partition_flag(snapshot(one, same_group, partitioned=True)) == []
    silent = [snapshot(at=100.0 + 0.2 * i) for i in range(30)]  # 5.8 s without one
    assert check_silence_noticed(silent, [], 100.0, 3.0) != []
    noticed = [snapshot(at=100.0 + 0.2 * i, partitioned=i > 15) for i in range(30)]
    assert check_silence_noticed(noticed, [], 100.0, 3.0) == []
    # One established between two snapshots, and closed before the next: silent from its close.
    assert check_silence_noticed(silent, [(102.5, 102.9)], 100.0, 3.0) == []
    assert check_silence_noticed(silent, [(100.1, 100.3)], 100.0, 3.0) != []


def test_outward_spans_are_read_from_the_log() -> None:
    def record(event: str, second: int, peer: int, **more: str) -> Record:
        return {"time": f"2030-01-01T00:00:{second:02d}.000Z", "event": event, "peer": peer, **more}

    records = [
        record("connecting", 1, 1, type="outbound"),
        record("connecting", 1, 2, type="temporary"),
        record("established", 2, 1),
        record("established", 2, 2),
        record("closing", 3, 2),
        record("accepted", 3, 3),
        record("established", 4, 3),
        record("closing", 5, 1),
        record("closed", 6, 1),
    ]
    base = datetime.fromisoformat("2030-01-01T00:00:00Z").timestamp()
    assert outward_spans(records) == [(base + 2, base + 5)]  # neither a probe nor an inbound


def test_the_one_per_ip_check_finds_two_established_connections_with_one_ip() -> None:
    crossed = [
        connection("127.2.0.1:18444", peer=1, state="handshaking"),
        connection("127.2.0.1:40000", "inbound", peer=2, state="handshaking"),
    ]
    assert check_one_per_ip(snapshot(*crossed)) == []  # both count until their handshakes end
    both = [{**c, "state": "established"} for c in crossed]
    assert check_one_per_ip(snapshot(*both)) != []
    one_closing = [both[0], {**both[1], "state": "closing"}]
    assert check_one_per_ip(snapshot(*one_closing)) == []


def test_the_cut_checks_find_connections_across_it() -> None:
    far = ["127.4.0.1", "127.5.0.1"]
    assert check_across(healthy(), far) != []
    dialling = snapshot(connection("127.4.0.1:18444", state="connecting"))
    assert check_across(dialling, far) == []

    def record(event: str, at: float, peer: int, **more: str) -> Record:
        moment = datetime.fromtimestamp(at).astimezone().isoformat(timespec="milliseconds")
        return {"time": moment, "event": event, "peer": peer, "address": "127.4.0.1:1", **more}

    before, cut, heal = healthy(), 1000.0, 1006.0
    closed = [
        record("closed", cut + 2.0, 3, reason="ping_timeout"),
        record("closed", cut + 2.1, 4, reason="inactivity_timeout"),
    ]
    assert check_cut_closes(before, closed, far, cut, heal) == []
    assert check_cut_closes(before, closed[:1], far, cut, heal) != []  # peer 4 never closed
    late = [closed[0], record("closed", heal - 0.1, 4, reason="ping_timeout")]
    assert check_cut_closes(before, late, far, cut, heal) != []
    asked = [closed[0], record("closed", cut + 1.0, 4, reason="requested")]
    assert check_cut_closes(before, asked, far, cut, heal) != []
    crossed = [*closed, record("established", cut + 3.0, 9)]
    assert check_cut_closes(before, crossed, far, cut, heal) != []


def test_the_close_check_finds_a_close_without_a_reason() -> None:
    good = {"event": "closed", "reason": "ping_timeout", "requirement": "KA-3"}
    assert check_close_reasons([good]) == []
    for bad in ({"reason": None}, {"reason": "tired"}, {"requirement": None}):
        assert check_close_reasons([{**good, **bad}]) != []
    assert check_close_reasons([{"event": "closing", "requirement": "KA-3"}]) != []


def test_the_close_check_finds_a_connection_closed_twice_or_never() -> None:
    opened = [{"event": "connecting", "peer": 1}, {"event": "accepted", "peer": 2}]
    closed = [{"event": "closed", "peer": 1}, {"event": "closed", "peer": 2}]
    assert check_closed_once(opened + closed) == []
    assert check_closed_once(opened + closed[:1]) != []  # peer 2 never
    assert check_closed_once(opened + closed + closed[1:]) != []  # peer 2 twice


def test_regained_wants_the_outbound_slots_or_every_reachable_node() -> None:
    reachable = [OWN, "127.2.0.1", "127.3.0.1", "127.4.0.1"]
    one = snapshot(connection("127.2.0.1:18444"), connection("127.3.0.1:40000", "inbound", peer=2))
    assert not regained(one, OWN, reachable, 2)  # 127.4.0.1 is there to dial
    assert regained(one, OWN, reachable[:3], 2)  # nothing left to dial: RECO-2
    dialling = snapshot(
        connection("127.2.0.1:18444"), connection("127.4.0.1:18444", peer=2, state="handshaking")
    )
    assert not regained(dialling, OWN, reachable, 2)
