"""Target ``manager``: the ``ConnectionManager`` (spec/manager.md) fed any sequence of facts a
node could report, with small limits so that they are reached.

The input is a settings byte, a u32 whose bits say which of the node's dials fail before they
start (bit i for dial i modulo 32), then ops: each a byte, a delay byte (the time moves forward by
DELAYS[delay]) and its operands. The harness keeps the node's side of the story, as
obscura_ref/node.py tells it: it carries out each decision at once, in order, so a ``Dial`` is
followed by ``Opened`` or ``DialFailed``, an ``Evict`` or ``Refuse``
by that peer's ``CloseBegan`` with the decision's reason, a misbehaviour by the close it causes;
a ``Tick`` comes at the time the last ``WakeAt`` asked for, before any later fact, as the node's
timer heap brings it. The ops pick among the peers for which the fact makes sense:
``Established`` for a live peer not yet established, ``Closed`` after its ``CloseBegan``...

Checked after every fact: no exception; the connections that count, by type and in all, within
the limits (LIM-12, LIM-13, LIM-14, LIM-16), and the same as the manager's own counts; no
``Dial`` of a banned address (BAN-4), of a listening address, or to the IP of a connection that
counts or is being dialled (RECO-2); ``Admit`` and ``Refuse`` only of the peer just offered,
``Evict`` only of a peer that counts; one ``WakeAt``, last, never in the past; the book never
holds more entries than addresses were added.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

from obscura_ref.machines.reasons import CloseReason
from obscura_ref.manager import manager as mgr
from obscura_ref.manager.bans import POINTS
from obscura_ref.manager.book import SOURCES
from obscura_ref.manager.settings import ManagerSettings

from .common import Breach, Reader, Writer, check

Address = tuple[str, int]
KEY = bytes(range(32))
WALL = 1_000_000.0  # the wall clock when the manager starts
SMALL = ManagerSettings(  # the settings of the scenario vectors (obscura_ref/conformance)
    max_outbound_connections=2,
    max_inbound_connections=3,
    max_total_connections=6,
    max_temporary_connections=1,
    temporary_timeout=10.0,
    ban_duration=100.0,
    reconnect_interval=1.0,
    reconnect_max_interval=8.0,
    rotation_interval=600.0,
    partition_timeout=120.0,
)
SETTINGS = (
    SMALL,
    # a total below the sum of the others, two seed nodes, rotation and partitions soon
    ManagerSettings(
        max_outbound_connections=2,
        max_inbound_connections=2,
        max_total_connections=3,
        max_temporary_connections=1,
        temporary_timeout=5.0,
        ban_duration=30.0,
        reconnect_interval=1.0,
        reconnect_max_interval=4.0,
        rotation_interval=30.0,
        partition_timeout=20.0,
        seed_nodes=(("127.20.0.1", 9000), ("127.21.0.1", 9000)),
    ),
    # no rotation (PRIV-10), one of each, two temporary
    ManagerSettings(
        max_outbound_connections=1,
        max_inbound_connections=1,
        max_total_connections=2,
        max_temporary_connections=2,
        temporary_timeout=3.0,
        ban_duration=10.0,
        reconnect_interval=0.5,
        reconnect_max_interval=2.0,
        rotation_interval=10.0,
        partition_timeout=5.0,
        privacy_level="none",
    ),
    # no room at all
    ManagerSettings(
        max_outbound_connections=0,
        max_inbound_connections=0,
        max_total_connections=0,
        max_temporary_connections=0,
    ),
)
DELAYS = (0, 0, 0.001, 0.01, 0.1, 0.5, 1, 2, 3, 4, 5, 8, 10, 20, 30, 60, 100, 120, 600, 3600)
PORTS = (5000, 5001, 5002, 5003, 5004, 9000, 8330, 1)
# The reasons a connection's own machine closes with; the others are the manager's decisions.
MACHINE_REASONS = tuple(
    reason
    for reason in CloseReason
    if reason
    not in {
        CloseReason.CONNECTION_LIMIT,
        CloseReason.BANNED,
        CloseReason.EVICTED,
        CloseReason.ROTATED,
        CloseReason.TEMPORARY_DONE,
        CloseReason.TEMPORARY_TIMEOUT,
        CloseReason.DUPLICATE_CONNECTION,
    }
)
REQUIREMENTS = (*sorted(POINTS), "CONN-30", "PRIV-27")  # named and not: 0 points
MAX_TICKS = 8  # ticks delivered at their times in one op

# The ops, by their byte modulo their count; operands in brackets (addr: see Run.address).
(
    LISTEN,  # [addr]
    ADD,  # [addr, source: byte]
    INBOUND,  # [addr]
    ESTABLISHED,  # [peer: byte, features: byte, dialler's nonce: byte] (see nonce_of)
    RTT,  # [peer: byte, rtt: byte] in 20 ms steps
    MISBEHAVED,  # [peer: byte, requirement: byte] then its close, invalid_message
    CLOSE_BEGAN,  # [peer: byte, reason: byte]
    CLOSED,  # [peer: byte, peer_reason: byte] of a peer whose close began
    TICK,  # a tick the node gives of its own (ticks are idempotent)
    WALL_JUMP,  # [delay: byte] the wall clock jumps forward, the monotonic one does not
) = range(10)
OP_COUNT = 10


@dataclass
class Peer:
    """A connection as the node knows it."""

    number: int
    address: Address
    type: mgr.PeerType
    counts: bool = True  # from its admission or dial until its close began (LIM-12)
    established: bool = False
    closing: CloseReason | None = None  # its CloseBegan was reported, with this reason


class Run:
    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.settings = reader.pick(SETTINGS)
        self.failing = reader.uint(4)  # bit i: the node's dial i % 32 fails before it starts
        self.dials = 0
        self.manager = mgr.ConnectionManager(self.settings, KEY, random.Random(1), 0.0)
        self.now = 0.0
        self.jumped = 0.0  # the wall clock's jumps, added to the monotonic time
        self.wake: float | None = None
        self.addresses: list[Address] = []  # every address the input named, for reuse
        self.added: set[Address] = set(self.settings.seed_nodes)  # offered to the book
        self.own: set[Address] = set()
        self.peers: dict[int, Peer] = {}
        self.dialling: list[tuple[Address, mgr.PeerType]] = []
        self.next_peer = 1
        self.offered: int | None = None  # the peer of the InboundOffered being decided
        self.facts: list[mgr.Fact] = []  # reported by the node while it carries decisions out

    @property
    def wall(self) -> float:
        return WALL + self.now + self.jumped

    def address(self) -> Address:
        """One byte: below 0x80, an address named before (index); else a new one from two more
        bytes: bits 0-1 its family (IPv4, IPv6, IPv4-mapped IPv6), bits 2-4 its port."""
        first = self.reader.byte()
        if first < 0x80 and self.addresses:
            return self.addresses[first % len(self.addresses)]
        group, host = self.reader.byte(), self.reader.byte()
        ip = ipaddress.ip_address(f"127.{group}.0.{host}")
        if first & 3 == 1:
            ip = ipaddress.ip_address(f"2001:db8:{group:x}::{host:x}")
        text = f"::ffff:{ip}" if first & 3 == 2 else str(ip)  # canonical (groups.canonical_ip)
        address = (text, PORTS[(first >> 2) & 7])
        self.addresses.append(address)
        return address

    def peer(self, wanted: str) -> Peer | None:
        """A peer, by the next byte, among those for which a fact of kind ``wanted`` can come."""
        choices = [
            p
            for p in self.peers.values()
            if (wanted == "live" and p.closing is None)
            or (wanted == "new" and p.closing is None and not p.established)
            or (wanted == "established" and p.closing is None and p.established)
            or (wanted == "closing" and p.closing is not None)
        ]
        index = self.reader.byte()
        return choices[index % len(choices)] if choices else None

    # ---- one fact, and the node's side of the decisions ----------------------------------

    def report(self, fact: mgr.Fact) -> None:
        """Hand ``fact`` to the manager, then every fact its decisions make the node report."""
        self.facts.append(fact)
        while self.facts:
            self.decide(self.facts.pop(0))

    def decide(self, fact: mgr.Fact) -> None:
        if isinstance(fact, mgr.InboundOffered):
            self.offered = fact.peer
            self.peers[fact.peer] = Peer(fact.peer, fact.address, mgr.PeerType.INBOUND, False)
        elif isinstance(fact, mgr.Opened | mgr.DialFailed):
            self.dialling.remove((fact.address, fact.type))
            if isinstance(fact, mgr.Opened):
                self.peers[fact.peer] = Peer(fact.peer, fact.address, fact.type)
        elif isinstance(fact, mgr.Established):
            self.peers[fact.peer].established = True
        elif isinstance(fact, mgr.CloseBegan):
            peer = self.peers[fact.peer]
            peer.counts, peer.closing = False, fact.reason
        elif isinstance(fact, mgr.Closed):
            del self.peers[fact.peer]
        elif isinstance(fact, mgr.Listening):
            self.own.add(fact.address)
        elif isinstance(fact, mgr.AddressAdded):
            self.added.add(fact.address)
        decisions = self.manager.handle(fact, self.now, self.wall)
        check(bool(decisions) and isinstance(decisions[-1], mgr.WakeAt), "no WakeAt last")
        for decision in decisions[:-1]:
            self.carry_out(decision)
            self.check_counts()
        self.offered = None
        wake = decisions[-1]
        assert isinstance(wake, mgr.WakeAt)
        check(wake.time >= self.now, f"WakeAt({wake.time}) in the past at {self.now}")
        self.wake = wake.time
        counted = self.check_counts()
        own = {kind: self.manager.count(kind) for kind in mgr.PeerType}
        if own != counted:  # (messages are built only on failure: this runs on every fact)
            raise Breach(f"the manager counts {own}, the node {counted}")
        book = len(self.manager.book)
        check(book <= len(self.added), f"{book} entries in the book, {len(self.added)} added")

    def carry_out(self, decision: mgr.Decision) -> None:
        if isinstance(decision, mgr.Admit | mgr.Refuse):
            check(decision.peer == self.offered, f"{decision} names no peer just offered")
            if isinstance(decision, mgr.Admit):
                self.peers[decision.peer].counts = True
            else:  # refused: the node closes it with that reason (LIM-16, BAN-3)
                self.facts.append(mgr.CloseBegan(decision.peer, decision.reason))
        elif isinstance(decision, mgr.Evict):
            peer = self.peers.get(decision.peer)
            check(peer is not None and peer.counts, f"{decision} of a peer that does not count")
            assert peer is not None
            peer.counts = False  # the node closes it at once (LIM-12: it counts no more)
            self.facts.append(mgr.CloseBegan(decision.peer, decision.reason))
        elif isinstance(decision, mgr.Dial):
            address, kind = decision.address, decision.type
            check(address not in self.own, f"{decision}: one of its own addresses (RECO-2)")
            check(not self.manager.bans.is_banned(address[0], self.wall), f"{decision}: BAN-4")
            busy = {p.address[0] for p in self.peers.values() if p.counts}
            busy |= {a[0] for a, _ in self.dialling}
            check(address[0] not in busy, f"{decision}: an IP that counts already (RECO-2)")
            self.dialling.append((address, kind))  # it counts from now on (LIM-12)
            self.dials += 1
            if self.failing >> (self.dials % 32) & 1:
                self.facts.append(mgr.DialFailed(address, kind))
            else:
                self.facts.append(mgr.Opened(self.next_peer, address, kind))
                self.next_peer += 1
        else:
            check(isinstance(decision, mgr.SaveBans), f"{decision} before the WakeAt")

    def check_counts(self) -> dict[mgr.PeerType, int]:
        """The connections that count, as the node knows them, by type: within the limits
        (LIM-12 to LIM-14, LIM-16)."""
        counts = {kind: 0 for kind in mgr.PeerType}
        for peer in self.peers.values():
            counts[peer.type] += peer.counts
        for _, kind in self.dialling:
            counts[kind] += 1
        limits = {
            mgr.PeerType.OUTBOUND: self.settings.max_outbound_connections,
            mgr.PeerType.INBOUND: self.settings.max_inbound_connections,
            mgr.PeerType.TEMPORARY: self.settings.max_temporary_connections,
        }
        for kind, limit in limits.items():
            if counts[kind] > limit:
                raise Breach(f"{counts[kind]} {kind.value} over the limit {limit}")
        total, limit = sum(counts.values()), self.settings.max_total_connections
        if total > limit:
            raise Breach(f"{total} connections over max_total_connections {limit}")
        return counts

    # ---- the ops -----------------------------------------------------------------------

    def step(self) -> None:
        reader = self.reader
        op = reader.byte() % OP_COUNT
        until = self.now + reader.pick(DELAYS)
        # The node's timer heap: each tick asked for comes at its time, before any later fact;
        # after MAX_TICKS in one op, one late tick, as a loop that fell behind gives.
        for _ in range(MAX_TICKS):
            if self.wake is None or self.wake > until:
                break
            self.now = max(self.now, self.wake)
            self.report(mgr.Tick())
        else:
            self.now = until
            self.report(mgr.Tick())
        self.now = until
        if op == LISTEN:
            self.report(mgr.Listening(self.address()))
        elif op == ADD:
            address = self.address()
            self.report(mgr.AddressAdded(address, reader.pick(SOURCES)))
        elif op == INBOUND:
            address = self.address()
            self.next_peer += 1
            self.report(mgr.InboundOffered(self.next_peer - 1, address))
        elif op == ESTABLISHED:
            peer = self.peer("new")
            features, nonce = reader.byte(), nonce_of(reader.byte())
            if peer is not None:
                self.report(mgr.Established(peer.number, features, nonce))
        elif op == RTT:
            peer = self.peer("established")
            seconds = reader.byte() * 0.02
            if peer is not None:
                self.report(mgr.RttMeasured(peer.number, seconds))
        elif op == MISBEHAVED:
            peer = self.peer("live")
            requirement = reader.pick(REQUIREMENTS)
            if peer is not None:  # the machine reports it, then closes (CONN-31)
                self.report(mgr.Misbehaved(peer.number, requirement))
                if peer.closing is None:
                    self.report(mgr.CloseBegan(peer.number, CloseReason.INVALID_MESSAGE))
        elif op == CLOSE_BEGAN:
            peer = self.peer("live")
            reason = reader.pick(MACHINE_REASONS)
            if peer is not None:
                self.report(mgr.CloseBegan(peer.number, reason))
        elif op == CLOSED:
            peer = self.peer("closing")
            code = reader.byte()
            if peer is not None:
                assert peer.closing is not None
                sent = peer.closing is CloseReason.PEER_DISCONNECTED  # a code only then
                self.report(mgr.Closed(peer.number, peer.closing, code if sent else None))
        elif op == TICK:
            self.report(mgr.Tick())
        elif op == WALL_JUMP:
            self.jumped += reader.pick(DELAYS)


def run(data: bytes) -> None:
    manager = Run(Reader(data))
    manager.report(mgr.Tick())  # the node gives one when it starts (spec/manager.md section 1)
    while not manager.reader.done:
        manager.step()


class Ops:
    """Writes an input op by op (the seed builder's side of ``Run.step``)."""

    def __init__(self, settings: int = 0, failing: int = 0) -> None:
        self.writer = Writer().byte(settings).uint(failing, 4)

    def op(self, code: int, delay: float, *operands: int) -> Ops:
        index = max(i for i, d in enumerate(DELAYS) if d <= max(delay, 0))
        self.writer.byte(code).byte(index)
        for operand in operands:
            self.writer.byte(operand)
        return self

    def bytes(self) -> bytes:
        return self.writer.bytes()


def nonce_of(value: int) -> int:
    """A dialler's handshake nonce (RECO-10) from one byte: small ones, which two connections
    share often, and the largest u64 values."""
    return value if value < 0xF0 else 2**64 - (0x100 - value)


def new_address(text: str) -> tuple[int, int, int]:
    """The operands that name ``IP:PORT`` as a new address: exactly for 127.G.0.H (plain or
    IPv4-mapped) on a port of PORTS, else the nearest the format can write."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    kind = 2 if host.startswith("::ffff:") else 0
    parts = host.removeprefix("::ffff:").split(".")
    if len(parts) != 4:
        kind, parts = 1, ["0", *host.split(":")[-3:]]
    group, hosted = (int(p or "0", 16 if kind == 1 else 10) & 0xFF for p in (parts[1], parts[3]))
    index = PORTS.index(int(port)) if int(port) in PORTS else int(port) % len(PORTS)
    return 0x80 | index << 2 | kind, group, hosted
