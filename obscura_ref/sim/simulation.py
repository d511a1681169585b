"""The simulator: many real nodes on one in-memory network, one virtual clock and one seeded
random source (spec/simulation.md).

Every simulated node is a ``Node`` (so its ``PeerConnection``, ``HandshakeProtocol`` and
``ConnectionManager`` are the real ones) on the sockets of ``SimNetwork``, all on one
``EventLoop`` whose selector is the network's. The simulation adds what a network adds: nodes
that leave and come back, resets, a partition, and adversaries. After every pass of the loop
it checks the invariants of spec/simulation.md section 3 on the nodes that pass touched, and
stops at the first breach with the seed and the step that reproduce it. It samples the measures
of section 4 as it goes; obscura_ref/sim/report.py writes them out.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..config import NodeConfig, load
from ..eventqueue import NodeEvent
from ..loop import EventLoop
from ..machines.connection import ConnState
from ..machines.events import Closed, Established
from ..machines.reasons import CloseReason
from ..manager.groups import address_group
from ..manager.manager import SPEC_RULES, PeerType
from ..manager.partition import recovery_bound
from ..node import Node, NodeError
from ..wire import MessageType, Opaque
from .adversaries import Silent, Violator
from .baseline import baseline_rules
from .network import Host, SimNetwork
from .scenario import WALL_CLOCK_START, Scenario

PORT = 9000
FLOOD_EVERY = 60.0  # seconds between a flooder's bursts
FLOOD_BURST = 8  # messages per peer per burst ...
FLOOD_SIZE = 32 * 1024  # ... of this many bytes
ATTACKER_REDIAL = 10.0  # seconds an evicted attacker waits before it dials again (RECO-4)
ATTACKER_LATENCY = 0.001  # the attacker is close to its victim: its RTTs are the lowest
SPIN_LIMIT = 100_000  # passes at one virtual instant before the loop is judged to spin


class Breach(Exception):
    """An invariant of spec/simulation.md section 3 does not hold."""

    def __init__(self, invariant: str, detail: str, seed: int, step: int, now: float) -> None:
        super().__init__(
            f"{invariant}: {detail} (seed {seed}, step {step}, t={now:.6f} s); "
            f"reproduce with: obscura-ref simulate --seed {seed} ... (same options)"
        )
        self.invariant = invariant
        self.detail = detail
        self.seed = seed
        self.step = step
        self.now = now

    def __reduce__(self) -> tuple[type[Breach], tuple[str, str, int, int, float]]:
        # Raised in a worker process, it crosses back whole.
        return Breach, (self.invariant, self.detail, self.seed, self.step, self.now)


@dataclass(eq=False)
class SimNode:
    """A simulated node: its address, its role, and what the invariants follow of it."""

    ip: str
    role: str  # honest, victim, flooder or attacker
    host: Host
    node: Node | None = None
    incarnation: int = 0
    made: int = 0  # connections dialled or accepted by this incarnation
    closed: int = 0  # Closed events of this incarnation
    established: dict[int, tuple[str, PeerType | None]] = field(default_factory=dict)
    by_ip: dict[str, list[int]] = field(default_factory=dict)  # established peers per address
    # The incarnation of the peer's node each was established with: one to a node that has
    # crashed and come back since is a leftover its ping timeout ends, not a second connection.
    peer_incarnation: dict[int, int] = field(default_factory=dict)
    new_ips: set[str] = field(default_factory=set)  # addresses established in this step
    refuse: set[str] = field(default_factory=set)  # accepted while banned: closed `banned`
    outbound: int = 0  # established outbound connections now
    flooding: set[int] = field(default_factory=set)

    @property
    def address(self) -> tuple[str, int]:
        return self.ip, PORT


@dataclass
class Measures:
    """What the run measured (spec/simulation.md section 4)."""

    times: list[float] = field(default_factory=list)
    # Per sample, over the honest nodes up at that time: outbound, inbound and all
    # established connections of each.
    outbound: list[list[int]] = field(default_factory=list)
    inbound: list[list[int]] = field(default_factory=list)
    connections: list[list[int]] = field(default_factory=list)
    # The victim's established connections held by the attacker, and all of them.
    victim_attacker: list[int] = field(default_factory=list)
    victim_total: list[int] = field(default_factory=list)
    victim_outbound_attacker: list[int] = field(default_factory=list)
    # Established connections across the partition's cut, per sample.
    across_cut: list[int] = field(default_factory=list)
    partition_start: float | None = None
    partition_end: float | None = None
    cut_nodes: int = 0
    detected: dict[str, float] = field(default_factory=dict)  # node: seconds to RECO-7
    lost_all: set[str] = field(default_factory=set)  # cut nodes left with no outbound
    recovered: dict[str, float] = field(default_factory=dict)  # node: seconds after heal
    recovery_targets: dict[str, int] = field(default_factory=dict)
    bound: float = 0.0
    rotations: Counter[str] = field(default_factory=Counter)  # node: outbound rotated away
    outbound_sets: dict[str, list[frozenset[str]]] = field(default_factory=dict)
    groups_reached: dict[str, set[str]] = field(default_factory=dict)
    book_groups: dict[str, set[str]] = field(default_factory=dict)  # of each node's books
    honest_groups: int = 0
    closes: Counter[str] = field(default_factory=Counter)  # reason: count
    bans_refused: int = 0  # connections refused as banned (BAN-3)
    violations_sent: int = 0
    silent_accepted: int = 0
    departures: int = 0
    arrivals: int = 0
    resets: int = 0
    steps: int = 0
    connections_made: int = 0


class Simulation:
    """One run of a ``Scenario``. ``run()`` returns the measures or raises ``Breach``;
    ``events`` is the event log, one line per event, identical for two runs of one seed."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        self.network = SimNetwork(random.Random(self.rng.getrandbits(64)), scenario.jitter)
        self.network.on_dial = self._on_dial
        self.network.on_accept = self._on_accept
        self.loop = EventLoop(self.network.clock, self.network.selector)
        self.events: list[str] = []
        self.measures = Measures()
        self.step = 0
        self._dirty: dict[SimNode, None] = {}
        self.by_ip: dict[str, SimNode] = {}
        self.honest: list[SimNode] = []
        self.attackers: list[SimNode] = []
        self.flooders: list[SimNode] = []
        self.victim: SimNode | None = None
        self._violators: list[Violator] = []
        self._silent: list[Silent] = []
        self._side: dict[str, int] = {}
        # Outbound established at the partition's start, and the node's incarnation then.
        self._before: dict[str, tuple[int, int]] = {}
        self._config = self._node_config()
        self._rules = baseline_rules(self.rng.getrandbits(64)) if scenario.baseline else SPEC_RULES
        self.measures.bound = recovery_bound(
            self._config.reconnect_max_interval,
            self._config.connection_timeout,
            self._config.handshake_timeout,
        )

    # ---- building the network ------------------------------------------------------------------

    def _node_config(self) -> NodeConfig:
        pairs = [f"{key}={value}" for key, value in self.scenario.node_settings().items()]
        return load(None, pairs)

    def _host(self, ip: str, latency: float | None = None) -> Host:
        s = self.scenario
        if latency is None:
            latency = s.min_latency + self.rng.random() * (s.max_latency - s.min_latency)
        return self.network.add_host(ip, latency)

    def _build(self) -> None:
        s = self.scenario
        groups = max(1, min(200, s.nodes // 5))
        for i in range(s.nodes):
            ip = f"127.{1 + i % groups}.{(i // groups) % 250}.{1 + i // (groups * 250)}"
            sim = SimNode(ip, "honest", self._host(ip))
            self.honest.append(sim)
            self.by_ip[ip] = sim
        self.measures.honest_groups = len({address_group(n.ip) for n in self.honest})
        if s.attackers and self.honest:
            self.victim = self.honest[0]
            self.victim.role = "victim"
        for f in range(s.flooders):
            ip = f"127.240.{f // 250}.{1 + f % 250}"
            sim = SimNode(ip, "flooder", self._host(ip))
            self.flooders.append(sim)
            self.by_ip[ip] = sim
        for a in range(s.attackers):
            k = s.attacker_groups
            ip = f"127.{250 + a % k}.{(a // k) // 250}.{1 + (a // k) % 250}"
            sim = SimNode(ip, "attacker", self._host(ip, ATTACKER_LATENCY))
            self.attackers.append(sim)
            self.by_ip[ip] = sim
        pool = [n.address for n in self.honest + self.flooders]
        silent = [(f"127.242.0.{1 + i}", PORT) for i in range(s.silent)]
        for ip, port in silent:
            self._silent.append(Silent(self._host(ip), self.loop, port))
        for sim in self.honest + self.flooders:
            self._start(sim, pool, silent)
        for sim in self.attackers:  # the attack begins once the network has formed
            self.loop.call_at(s.attack_at, self._start, sim, [], [])
        for v in range(s.violators):
            ip = f"127.241.0.{1 + v}"
            first = self.rng.random() * 60.0
            self._violators.append(Violator(self._host(ip), self.loop, pool, first))

    def _book(
        self, sim: SimNode, pool: list[tuple[str, int]], silent: list[tuple[str, int]]
    ) -> list[str]:
        others = [a for a in pool if a[0] != sim.ip]
        book = self.rng.sample(others, min(self.scenario.book_size, len(others)))
        book += [a for a in silent if self.rng.random() < 0.1]
        if sim is self.victim:  # the attacker's addresses reached the victim's book
            taken = min(len(self.attackers), self.scenario.book_size)
            book += [a.address for a in self.rng.sample(self.attackers, taken)]
        return [f"{ip}:{port}" for ip, port in book]

    def _start(
        self, sim: SimNode, pool: list[tuple[str, int]], silent: list[tuple[str, int]]
    ) -> None:
        """Start (or restart) the node of ``sim``, with a fresh book drawn from ``pool``."""
        book = self._book(sim, pool, silent)
        updates: dict[str, object] = {"seed_nodes": tuple(book)}
        if sim.role == "honest":  # what its outbound connections could reach at best
            groups = self.measures.book_groups.setdefault(sim.ip, set())
            for text in book:
                peer = self.by_ip.get(text.rpartition(":")[0])
                if peer is not None and peer.role in ("honest", "victim"):
                    groups.add(address_group(peer.ip))
        if sim.role == "attacker":  # redials soon: it wants every slot it can get
            updates.update(reconnect_interval=ATTACKER_REDIAL, reconnect_max_interval=60.0)
        config = self._config.with_values(updates, "simulation")
        sim.incarnation += 1
        sim.made = sim.closed = sim.outbound = 0
        sim.established.clear()
        sim.by_ip.clear()
        sim.peer_incarnation.clear()
        sim.new_ips.clear()
        sim.refuse.clear()
        sim.flooding.clear()
        network = self.network
        rng = random.Random(f"{self.scenario.seed}:{sim.ip}:{sim.incarnation}")
        sim.node = Node(
            config,
            clock=network.clock,
            wall_clock=lambda: WALL_CLOCK_START + network.now,
            rng=rng,
            on_event=lambda event, sim=sim: self._on_event(sim, event),  # type: ignore[misc]
            loop=self.loop,
            sockets=sim.host.socket,
            rules=SPEC_RULES if sim.role == "attacker" else self._rules,
        )
        sim.node.listen(sim.ip, PORT)
        if sim.role == "attacker" and self.victim is not None:
            self._connect(sim, self.victim, persistent=True)
        if sim.role == "flooder":
            self.loop.call_at(network.now + FLOOD_EVERY, self._flood, sim, sim.incarnation)

    def _fans(self) -> None:
        """Honest nodes that keep a connection to the victim: it is popular, its inbound slots
        are wanted by honest peers too, which is what an eclipse attacker competes with."""
        if self.victim is None:
            return
        for sim in self.honest[1 : 1 + self.scenario.victim_fans]:
            self._connect(sim, self.victim, persistent=True)

    def _connect(self, sim: SimNode, target: SimNode, *, persistent: bool) -> None:
        assert sim.node is not None
        # Not dialled now (a limit): the manager dials it later (RECO-5).
        with contextlib.suppress(NodeError):
            sim.node.connect(*target.address, persistent=persistent)

    # ---- faults and adversaries ----------------------------------------------------------------

    def _schedule(self) -> None:
        s = self.scenario
        now = self.network.now
        for rate, action in (
            (s.resets_per_hour, self._reset),
            (s.departures_per_hour, self._depart),
        ):
            if rate > 0:
                self._poisson(rate, action, now)
        if s.partition_at is not None and s.partition_at < s.duration:
            # The side each node will be on, drawn now: the connections across the cut are
            # measured from the start, so that the report shows them before, during and after.
            candidates = [n for n in self.honest if n is not self.victim]
            cut = self.rng.sample(candidates, int(len(candidates) * s.partition_share))
            self._side = {n.ip: 1 for n in cut}
            self.loop.call_at(s.partition_at, self._partition)
        self.loop.call_at(0.0, self._sample)
        self.loop.call_at(self._config.rotation_interval / 2, self._sample_peer_sets)

    def _poisson(self, per_hour: float, action: Callable[[], None], now: float) -> None:
        def fire() -> None:
            action()
            self._poisson(per_hour, action, self.network.now)

        self.loop.call_at(now + self.rng.expovariate(per_hour / 3600.0), fire)

    def _live_honest(self) -> list[SimNode]:
        return [n for n in self.honest if n.node is not None and n is not self.victim]

    def _reset(self) -> None:
        """Tear down one established connection at both ends, as a middlebox's reset does."""
        candidates = [n for n in self._live_honest() if n.established]
        if not candidates:
            return
        sim = self.rng.choice(candidates)
        sockets = [
            sock
            for sock in sim.host.sockets
            if sock.state == "connected" and sock.out is not None and not sock.error
        ]
        if not sockets:
            return
        sock = self.rng.choice(sockets)
        assert sock.out is not None
        sock.reset()
        sock.out.target.reset()
        self.measures.resets += 1
        self._log(sim.ip, "fault reset", f"{sock.remote[0] if sock.remote else '?'}")

    def _depart(self) -> None:
        """A node leaves: half of the time it crashes (nothing more is sent), else it shuts
        down (a Disconnect to each peer); it comes back after a random downtime."""
        live = self._live_honest()
        if not live:
            return
        sim = self.rng.choice(live)
        crash = self.rng.random() < 0.5
        if crash:
            sim.host.crash()
        node, sim.node = sim.node, None
        assert node is not None
        node.shutdown(timeout=0.0)
        self._dirty.pop(sim, None)
        self.measures.departures += 1
        self._log(sim.ip, "fault crash" if crash else "fault leave", "")
        back = self.network.now + self.rng.expovariate(1.0 / self.scenario.mean_downtime)
        self.loop.call_at(back, self._rejoin, sim)

    def _rejoin(self, sim: SimNode) -> None:
        sim.host.restart()
        self.network.release_stalled()
        pool = [n.address for n in self.honest + self.flooders]
        self._start(sim, pool, [])
        self.measures.arrivals += 1
        self._log(sim.ip, "fault join", "")

    def _partition(self) -> None:
        """Cut a share of the honest nodes off from the rest until ``partition_for`` passes."""
        s = self.scenario
        self.network.partition(self._side)
        m = self.measures
        m.partition_start = self.network.now
        m.cut_nodes = len(self._side)
        self._before = {
            n.ip: (n.outbound, n.incarnation) for n in self.honest if n.node is not None
        }
        self._log("-", "fault partition", f"{len(self._side)} nodes cut off")
        self.loop.call_at(self.network.now + s.partition_for, self._heal)
        self.loop.call_at(self.network.now + 1.0, self._watch_detection)

    def _watch_detection(self) -> None:
        """Each second of the partition: which cut-off nodes lost every outbound connection,
        and when each noticed that it is partitioned (RECO-7)."""
        m = self.measures
        if m.partition_start is None or m.partition_end is not None:
            return
        for ip in self._side:
            sim = self.by_ip[ip]
            if sim.node is None:
                continue
            if sim.outbound == 0:
                m.lost_all.add(ip)
            if ip not in m.detected and sim.node.manager.partitioned:
                m.detected[ip] = self.network.now - m.partition_start
        self.loop.call_at(self.network.now + 1.0, self._watch_detection)

    def _heal(self) -> None:
        m = self.measures
        self.network.heal()
        m.partition_end = self.network.now
        self._log("-", "fault heal", "")
        target = self._config.max_outbound_connections
        for sim in self.honest:
            before = self._before.get(sim.ip)
            if sim.node is None or before is None or before[1] != sim.incarnation:
                continue  # down or restarted since the cut: nothing to regain
            m.recovery_targets[sim.ip] = min(target, before[0])
            self._note_recovery(sim)
        self.loop.call_at(self.network.now + m.bound, self._check_recovered)

    def _note_recovery(self, sim: SimNode) -> None:
        m = self.measures
        goal = m.recovery_targets.get(sim.ip)
        if goal is None or sim.ip in m.recovered or m.partition_end is None:
            return
        if sim.outbound >= goal:
            m.recovered[sim.ip] = self.network.now - m.partition_end

    def _flood(self, sim: SimNode, incarnation: int) -> None:
        if sim.node is None or sim.incarnation != incarnation:
            return
        message = Opaque(MessageType.Blocks, bytes(FLOOD_SIZE))
        for peer in sorted(sim.flooding):
            for _ in range(FLOOD_BURST):
                try:
                    sim.node.send(peer, message)
                except NodeError:
                    break  # closed meanwhile, or its queue is full
        self.loop.call_at(self.network.now + FLOOD_EVERY, self._flood, sim, incarnation)

    # ---- what the nodes report ----------------------------------------------------------------

    def _on_event(self, sim: SimNode, delivered: NodeEvent) -> None:
        event = delivered.event
        node = sim.node  # None while it shuts down: its last closes
        if isinstance(event, Established):
            kind = None if node is None else node.manager.type_of(delivered.peer)
            ip = delivered.address.rpartition(":")[0]
            self._check_established(sim, delivered.address, ip)
            sim.established[delivered.peer] = (ip, kind)
            sim.by_ip.setdefault(ip, []).append(delivered.peer)
            remote = self.by_ip.get(ip)
            sim.peer_incarnation[delivered.peer] = 0 if remote is None else remote.incarnation
            sim.new_ips.add(ip)
            if kind is PeerType.OUTBOUND:
                sim.outbound += 1
                remote = self.by_ip.get(ip)
                if remote is not None and remote.role in ("honest", "victim"):
                    reached = self.measures.groups_reached.setdefault(sim.ip, set())
                    reached.add(address_group(ip))
                self._note_recovery(sim)
            if sim.role == "flooder":
                sim.flooding.add(delivered.peer)
            self._log(sim.ip, "established", f"{delivered.address} {kind.value if kind else '-'}")
        elif isinstance(event, Closed):
            sim.closed += 1
            self.measures.closes[event.reason.label] += 1
            if delivered.address in sim.refuse:
                sim.refuse.discard(delivered.address)
                if event.reason is not CloseReason.BANNED:  # checks BAN-3
                    self._breach(
                        "banned-admitted",
                        f"{sim.ip} accepted {delivered.address} while it was banned, and closed "
                        f"it {event.reason.label}, not banned",
                    )
            if event.reason is CloseReason.BANNED:
                self.measures.bans_refused += 1
            was = sim.established.pop(delivered.peer, None)
            sim.peer_incarnation.pop(delivered.peer, None)
            if was is not None:
                peers = sim.by_ip[was[0]]
                peers.remove(delivered.peer)
                if not peers:
                    del sim.by_ip[was[0]]
            if was is not None and was[1] is PeerType.OUTBOUND:
                sim.outbound -= 1
                if event.reason is CloseReason.ROTATED:
                    self.measures.rotations[sim.ip] += 1
            sim.flooding.discard(delivered.peer)
            said = "" if event.peer_reason is None else f" peer_reason={event.peer_reason}"
            self._log(sim.ip, "closed", f"{delivered.address} {event.reason.label}{said}")
        if node is not None:
            self._dirty[sim] = None

    def _on_dial(self, host: Host, address: tuple[str, int]) -> None:
        sim = self.by_ip.get(host.ip)
        if sim is None or sim.node is None:
            return  # an adversary's raw socket
        sim.made += 1
        self._dirty[sim] = None
        wall = WALL_CLOCK_START + self.network.now
        if sim.node.manager.bans.is_banned(address[0], wall):  # checks BAN-4
            self._breach("banned-dialled", f"{sim.ip} dialled {address[0]}, which it banned")

    def _on_accept(self, host: Host, remote: tuple[str, int]) -> None:
        sim = self.by_ip.get(host.ip)
        if sim is not None and sim.node is not None:
            sim.made += 1
            self._dirty[sim] = None
            wall = WALL_CLOCK_START + self.network.now
            if sim.node.manager.bans.is_banned(remote[0], wall):
                sim.refuse.add(f"{remote[0]}:{remote[1]}")  # must close banned (BAN-3)

    # ---- invariants (spec/simulation.md section 3) ----------------------------------------------

    def _breach(self, invariant: str, detail: str) -> None:
        raise Breach(invariant, detail, self.scenario.seed, self.step, self.network.now)

    def _check_established(self, sim: SimNode, address: str, ip: str) -> None:
        if ip == sim.ip:  # checks HS-12 (a connection to itself never completes)
            self._breach("self-connection", f"{sim.ip} established a connection to itself")
        if address in sim.refuse:  # checks BAN-3
            self._breach("banned-admitted", f"{sim.ip} admitted {address}, which it had banned")

    def _check_node(self, sim: SimNode) -> None:
        node = sim.node
        if node is None:
            return
        manager = node.manager
        limits = manager.settings
        for kind, limit in (
            (PeerType.OUTBOUND, limits.max_outbound_connections),
            (PeerType.INBOUND, limits.max_inbound_connections),
            (PeerType.TEMPORARY, limits.max_temporary_connections),
        ):
            if manager.count(kind) > limit:  # checks LIM-13, LIM-16
                self._breach("limit", f"{sim.ip}: {manager.count(kind)} {kind.value} > {limit}")
        if manager.total() > limits.max_total_connections:  # checks LIM-14
            self._breach("limit", f"{sim.ip}: {manager.total()} connections in all")
        for ip in sim.new_ips:  # a pair can only be doubled by a connection just established
            peers = sim.by_ip.get(ip, [])
            remote = self.by_ip.get(ip)
            now = 0 if remote is None else remote.incarnation
            # A closing connection no longer counts (LIM-12); one to an earlier incarnation of
            # the peer's node is a leftover of its crash.
            counting = [
                p
                for p in peers
                if node.state_of(p) is ConnState.ESTABLISHED and sim.peer_incarnation[p] == now
            ]
            if len(counting) > 1:  # checks RECO-2, RECO-10
                self._breach(
                    "duplicate-connection",
                    f"{sim.ip} has peers {counting} all established with {ip}",
                )
        sim.new_ips.clear()
        open_now = node.outbound_count() + node.inbound_count()
        if sim.made != sim.closed + open_now:  # checks CONN-40 (every close reported)
            self._breach(
                "close-reason",
                f"{sim.ip}: {sim.made} connections made, {sim.closed} closed, {open_now} open",
            )

    def _check_recovered(self) -> None:
        m = self.measures
        for ip, goal in m.recovery_targets.items():
            sim = self.by_ip[ip]
            if ip not in m.recovered and sim.node is not None:  # checks RECO-9
                self._breach(
                    "partition-recovery",
                    f"{ip} has {sim.outbound} outbound connections, {goal} before the "
                    f"partition, {m.bound:.0f} s after it healed",
                )

    # ---- measures ------------------------------------------------------------------------------

    def _sample(self) -> None:
        m = self.measures
        now = self.network.now
        m.times.append(now)
        outbound, inbound, total = [], [], []
        for sim in self.honest:
            if sim.node is None:
                continue
            o = sim.outbound
            t = len(sim.established)
            outbound.append(o)
            total.append(t)
            inbound.append(sum(1 for _, k in sim.established.values() if k is PeerType.INBOUND))
        m.outbound.append(sorted(outbound))
        m.inbound.append(sorted(inbound))
        m.connections.append(sorted(total))
        victim = self.victim
        if victim is not None and victim.node is not None:
            held = [(self.by_ip.get(ip), k) for ip, k in victim.established.values()]
            bad = [k for owner, k in held if owner is not None and owner.role == "attacker"]
            m.victim_attacker.append(len(bad))
            m.victim_outbound_attacker.append(sum(1 for k in bad if k is PeerType.OUTBOUND))
            m.victim_total.append(len(held))
        across = 0
        if self._side:
            for sim in self.honest:
                side = self._side.get(sim.ip, 0)
                for ip, kind in sim.established.values():
                    if kind is not PeerType.INBOUND and self._side.get(ip, 0) != side:
                        across += 1
        m.across_cut.append(across)
        self.loop.call_at(now + self.scenario.sample_every, self._sample)

    def _sample_peer_sets(self) -> None:
        """Each node's outbound peers, once per rotation interval: how much of the set
        rotation replaces (section 4)."""
        for sim in self.honest:
            if sim.node is not None:
                peers = frozenset(
                    ip for ip, kind in sim.established.values() if kind is PeerType.OUTBOUND
                )
                self.measures.outbound_sets.setdefault(sim.ip, []).append(peers)
        interval = self._config.rotation_interval
        self.loop.call_at(self.network.now + interval, self._sample_peer_sets)

    # ---- running --------------------------------------------------------------------------------

    def _log(self, ip: str, what: str, detail: str) -> None:
        self.events.append(f"{self.network.now:.6f} {ip} {what} {detail}".rstrip())

    def run(self) -> Measures:
        """Build the network, run it for the scenario's duration, and return the measures;
        ``Breach`` at the first invariant that does not hold."""
        with _quiet_nodes():
            self._build()
            self._fans()
            self._schedule()
            end = self.scenario.duration
            loop, network = self.loop, self.network
            same_instant, last = 0, -1.0
            while network.now < end:
                loop.run_once(end - network.now)
                self.step += 1
                if network.now == last:
                    same_instant += 1
                    if same_instant > SPIN_LIMIT:  # checks KA-10 (no timer may spin)
                        self._breach("spin", f"{SPIN_LIMIT} passes without time passing")
                else:
                    same_instant, last = 0, network.now
                if self._dirty:
                    dirty, self._dirty = self._dirty, {}
                    for sim in dirty:
                        self._check_node(sim)
        m = self.measures
        m.steps = self.step
        m.connections_made = network.connections_made
        m.violations_sent = sum(v.sent for v in self._violators)
        m.silent_accepted = sum(s.accepted for s in self._silent)
        return m


@contextmanager
def _quiet_nodes() -> Iterator[None]:
    """A thousand nodes' connection logs are the event log's business, not the terminal's."""
    logger = logging.getLogger("obscura_ref")
    before = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(before)
