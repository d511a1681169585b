"""``ConnectionManager``: the node's policy over all its connections (spec/manager.md).

Sans-IO, like the connection machines: ``handle(fact, now, wall)`` takes what happened, with the
monotonic time and the wall-clock time (bans outlive a restart, so they are kept in wall-clock
time), and returns the decisions the node carries out, in order. The rules themselves are small
functions in the modules beside this one; this class keeps the state they are applied to: the
connections that count, the address book, the misbehaviour records and the bans.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from ..machines.padding import RandomSource
from ..machines.privacy import policy_of
from ..machines.reasons import CloseReason
from .admission import inbound_admission, may_open_outbound
from .backoff import forgotten, reconnect_delay
from .bans import BanList, MisbehaviourRecords
from .book import BookEntry, choose_outbound
from .eviction import choose_eviction
from .groups import address_group
from .partition import choose_probes, partitioned
from .rotation import choose_rotation
from .score import PeerFacts, score
from .settings import ManagerSettings

Address = tuple[str, int]
EvictionRule = Callable[[Sequence[PeerFacts], float, bytes], "int | None"]
OutboundRule = Callable[..., "BookEntry | None"]


@dataclass(frozen=True)
class PolicyRules:
    """The two choices an attacker with many addresses plays against: which inbound peer is
    evicted for a newcomer (section 5) and which book entry is dialled next (section 7). A
    node follows the spec's (None: the functions of eviction.py and book.py, looked up when
    used); ``obscura-ref simulate`` swaps in others to measure what the spec's rules are worth
    against an eclipse attempt (obscura_ref/sim/baseline.py), and a researcher can try a
    change to them the same way."""

    choose_eviction: EvictionRule | None = None
    choose_outbound: OutboundRule | None = None


SPEC_RULES = PolicyRules()


class PeerType(Enum):
    # Compared by identity, so hashed by identity: the counts are looked up by type per fact,
    # and Enum's own hash is a call into Python.
    __hash__ = object.__hash__

    OUTBOUND = "outbound"
    PERSISTENT = "persistent"
    INBOUND = "inbound"
    TEMPORARY = "temporary"


# ---- facts (in) -------------------------------------------------------------------------


@dataclass(frozen=True)
class Listening:
    """The node accepts connections on this address (it never dials it: RECO-2)."""

    address: Address


@dataclass(frozen=True)
class AddressAdded:
    """An address for the book: ``source`` is persistent, connect, seed or application."""

    address: Address
    source: str


@dataclass(frozen=True)
class InboundOffered:
    """A connection was accepted; nothing of it has been read."""

    peer: int
    address: Address


@dataclass(frozen=True)
class Opened:
    """A ``Dial`` was carried out: the connection's peer number."""

    peer: int
    address: Address
    type: PeerType


@dataclass(frozen=True)
class DialFailed:
    """A ``Dial`` could not even start (no socket, say): a failure of that address."""

    address: Address
    type: PeerType


@dataclass(frozen=True)
class Established:
    peer: int
    features: int
    dialler_nonce: int | None = None  # the handshake nonce of the side that dialled (RECO-10)


@dataclass(frozen=True)
class RttMeasured:
    peer: int
    seconds: float


@dataclass(frozen=True)
class Misbehaved:
    peer: int
    requirement: str


@dataclass(frozen=True)
class CloseBegan:
    """The connection left handshaking or established (or connecting), for ``reason``: it no
    longer counts, and its address waits for the close to finish."""

    peer: int
    reason: CloseReason


@dataclass(frozen=True)
class Closed:
    peer: int
    reason: CloseReason
    peer_reason: int | None = None  # the code of the peer's Disconnect, if it sent one


@dataclass(frozen=True)
class Tick:
    """The time a ``WakeAt`` asked for has come (or any time: ticks are idempotent)."""


Fact = (
    Listening
    | AddressAdded
    | InboundOffered
    | Opened
    | DialFailed
    | Established
    | RttMeasured
    | Misbehaved
    | CloseBegan
    | Closed
    | Tick
)


# ---- decisions (out) --------------------------------------------------------------------


@dataclass(frozen=True)
class Admit:
    peer: int


@dataclass(frozen=True)
class Refuse:
    peer: int
    reason: CloseReason


@dataclass(frozen=True)
class Evict:
    peer: int
    reason: CloseReason


@dataclass(frozen=True)
class Dial:
    address: Address
    type: PeerType


@dataclass(frozen=True)
class SaveBans:
    document: dict[str, object]


@dataclass(frozen=True)
class WakeAt:
    time: float


Decision = Admit | Refuse | Evict | Dial | SaveBans | WakeAt

# Closes the node asked for itself: neither a failed dial nor a lost connection (section 8).
_NODE_ASKED = frozenset(
    {
        CloseReason.REQUESTED,
        CloseReason.SHUTTING_DOWN,
        CloseReason.TEMPORARY_DONE,
        CloseReason.ROTATED,
        CloseReason.DUPLICATE_CONNECTION,
        CloseReason.CONNECTION_LIMIT,
        CloseReason.EVICTED,
    }
)
_LIMITS = {
    PeerType.OUTBOUND: "max_outbound_connections",
    PeerType.INBOUND: "max_inbound_connections",
    PeerType.TEMPORARY: "max_temporary_connections",
}


@dataclass(slots=True)
class _Peer:
    peer: int
    address: Address
    type: PeerType
    opened_at: float
    # Whether it holds a slot: from its admission until its close begins (LIM-12); set
    # only by the manager's _start_counting and _stop_counting, which keep its counts.
    counts: bool = False
    established_at: float | None = None
    min_rtt: float | None = None
    features: int | None = None
    dialler_nonce: int | None = None


class _Either(Container[str]):
    """In the keys of a counter or in a small set: membership without copying the counter."""

    __slots__ = ("_counted", "_more")

    def __init__(self, counted: Counter[str], more: set[str]) -> None:
        self._counted, self._more = counted, more

    def __contains__(self, item: object) -> bool:
        return item in self._counted or item in self._more


@dataclass
class ManagerStatus:
    """What NODE-9 asks a node to report."""

    counts: dict[str, int]
    groups: dict[str, int]
    scores: dict[int, int]
    bans: list[tuple[str, float]]
    waiting: list[tuple[str, int, float]]  # address, failures, next attempt (monotonic)
    partitioned: bool = False
    book: int = field(default=0)


class ConnectionManager:
    def __init__(
        self,
        settings: ManagerSettings,
        key: bytes,
        rng: RandomSource,
        now: float,
        bans: BanList | None = None,
        rules: PolicyRules = SPEC_RULES,
    ) -> None:
        """``key``: the node's 32 secret bytes (LIM-11); ``rng``: the draws of the backoff's
        jitter; ``bans``: those loaded from the ban file (BAN-7); ``rules``: the spec's
        eviction and outbound choices unless an experiment replaces them."""
        self.settings = settings
        self.rules = rules
        self.key = key
        self._rng = rng
        self.started_at = now
        self.bans = bans if bans is not None else BanList()
        self.records = MisbehaviourRecords()
        self.book: dict[Address, BookEntry] = {}
        self._peers: dict[int, _Peer] = {}
        # The connections that count (LIM-12), by type, with their addresses and groups
        # counted: a fact costs the connections it is about, not a look at every one.
        self._counting_by_type: dict[PeerType, dict[int, _Peer]] = {kind: {} for kind in PeerType}
        self._counting_ips: Counter[str] = Counter()
        self._counting_groups: Counter[str] = Counter()
        self._dialing: dict[Address, PeerType] = {}  # decided, not yet reported Opened
        self._own: set[Address] = set()
        self._rotated_groups: set[str] = set()
        self._probed: dict[Address, float] = {}  # completed probes, when (section 10)
        self._next_rotation = now + settings.rotation_interval
        self._last_outbound_at: float | None = None  # when one was last established and open
        self._partitioned = False
        self._now = now
        self._wall = 0.0
        self._out: list[Decision] = []
        for host, port in settings.seed_nodes:
            self.book[(host, port)] = BookEntry(host, port, "seed")

    # ---- the one entry point -------------------------------------------------------------

    def handle(self, fact: Fact, now: float, wall: float) -> list[Decision]:
        self._now, self._wall, self._out = now, wall, []
        self._track_partition()  # one established until now and lost now: silence from now
        handler = getattr(self, f"_on_{type(fact).__name__}")
        handler(fact)
        self._maintain()
        out, self._out = self._out, []
        return out

    # ---- facts ---------------------------------------------------------------------------

    def _on_Listening(self, fact: Listening) -> None:
        self._own.add(fact.address)  # spec: RECO-2

    def _on_AddressAdded(self, fact: AddressAdded) -> None:
        entry = self.book.get(fact.address)
        if entry is None:
            entry = BookEntry(fact.address[0], fact.address[1], fact.source)
            self.book[fact.address] = entry
            entry.next_attempt = min(entry.next_attempt, self._now)
            if any(p.address == fact.address for p in self._peers.values()):
                entry.next_attempt = math.inf  # a connection to it is not closed yet
        elif fact.source == "persistent":
            entry.source = fact.source  # an address added again keeps its failures and wait
        if fact.source == "connect" and self._eligible_now(fact.address):
            self._dial(fact.address, PeerType.OUTBOUND)  # asked for by name: dialled first

    def _on_InboundOffered(self, fact: InboundOffered) -> None:
        record = _Peer(fact.peer, fact.address, PeerType.INBOUND, self._now)
        if self.bans.is_banned(fact.address[0], self._wall):
            self._peers[fact.peer] = record  # not counting
            self._out.append(Refuse(fact.peer, CloseReason.BANNED))  # spec: BAN-3
            return
        # spec: LIM-16 (rule 2: room for one more inbound and one more in all)
        room = inbound_admission(
            self._count(PeerType.INBOUND), self.settings.max_inbound_connections
        )
        if room is None and self._total() < self.settings.max_total_connections:
            self._peers[fact.peer] = record
            self._start_counting(record)
            self._out.append(Admit(fact.peer))
            return
        candidates = [self._facts(p) for p in self._counting(PeerType.INBOUND)]
        evict = self.rules.choose_eviction or choose_eviction
        victim = evict(candidates, self._now, self.key)  # spec: LIM-17
        if victim is None:
            self._peers[fact.peer] = record  # not counting
            self._out.append(Refuse(fact.peer, CloseReason.CONNECTION_LIMIT))  # spec: LIM-16
            return
        self._evict(self._peers[victim], CloseReason.EVICTED)  # spec: LIM-12 (counts no more)
        self._peers[fact.peer] = record
        self._start_counting(record)
        self._out.append(Admit(fact.peer))

    def _on_Opened(self, fact: Opened) -> None:
        self._dialing.pop(fact.address, None)
        peer = _Peer(fact.peer, fact.address, fact.type, self._now)
        self._peers[fact.peer] = peer
        self._start_counting(peer)
        if self.bans.is_banned(peer.address[0], self._wall):  # banned while it was dialled
            self._evict(peer, CloseReason.BANNED)  # spec: BAN-2

    def _on_DialFailed(self, fact: DialFailed) -> None:
        self._dialing.pop(fact.address, None)
        self._failed(fact.address)

    def _on_Established(self, fact: Established) -> None:
        peer = self._peers.get(fact.peer)
        if peer is None:
            return
        peer.established_at, peer.features = self._now, fact.features
        peer.dialler_nonce = fact.dialler_nonce
        self._one_per_address(peer)  # spec: RECO-10
        entry = self.book.get(peer.address)
        if entry is not None:
            entry.failures = 0  # spec: RECO-4 (a completed handshake resets the count)
            entry.next_attempt = self._now
        if peer.type is PeerType.TEMPORARY and peer.counts:
            self._evict(peer, CloseReason.TEMPORARY_DONE)  # spec: TYPE-2

    def _one_per_address(self, peer: _Peer) -> None:
        """A connection this node dialled and one it accepted, with one address, both
        established: close the one whose dialler's handshake nonce is the greater, which the
        other end closes too (RECO-10). Two accepted ones may be two nodes behind one address."""
        if peer.dialler_nonce is None or not peer.counts:
            return
        accepted = peer.type is PeerType.INBOUND
        for other in self._counting(None):
            same = other.address[0] == peer.address[0] and other is not peer
            crossed = (other.type is PeerType.INBOUND) != accepted
            if not (same and crossed) or other.dialler_nonce is None:
                continue  # a known dialler's nonce means its handshake completed
            # spec: RECO-10 (equal nonces cannot be told apart: the newer one goes)
            loser = other if other.dialler_nonce > peer.dialler_nonce else peer
            self._evict(loser, CloseReason.DUPLICATE_CONNECTION)
            return

    def _on_RttMeasured(self, fact: RttMeasured) -> None:
        peer = self._peers.get(fact.peer)
        if peer is not None and (peer.min_rtt is None or fact.seconds < peer.min_rtt):
            peer.min_rtt = fact.seconds

    def _on_Misbehaved(self, fact: Misbehaved) -> None:
        peer = self._peers.get(fact.peer)
        if peer is None:
            return
        ip = peer.address[0]
        # spec: BAN-1
        if not self.records.add(ip, fact.requirement, self._wall, self.settings.ban_duration):
            return
        until = self._wall + self.settings.ban_duration
        self.bans.ban(ip, until, fact.requirement)  # spec: BAN-2
        for other in list(self._peers.values()):
            if other.counts and other.address[0] == ip and other.peer != fact.peer:
                self._evict(other, CloseReason.BANNED)  # spec: BAN-2
        self._out.append(SaveBans(self.bans.to_document()))  # spec: BAN-6

    def _on_CloseBegan(self, fact: CloseBegan) -> None:
        peer = self._peers.get(fact.peer)
        if peer is None:
            return
        self._stop_counting(peer)  # spec: LIM-12
        entry = self.book.get(peer.address)
        if peer.type is PeerType.INBOUND or entry is None:
            return
        if fact.reason in (CloseReason.SELF_CONNECTION, CloseReason.REQUESTED):
            del self.book[peer.address]  # spec: RECO-3, RECO-8
        else:
            entry.next_attempt = math.inf  # not dialled again before its close is done

    def _on_Closed(self, fact: Closed) -> None:
        peer = self._peers.pop(fact.peer, None)
        if peer is not None:
            self._stop_counting(peer)  # already done at CloseBegan, as a node reports it
        if peer is None or peer.type is PeerType.INBOUND:
            return
        ourselves = fact.peer_reason == CloseReason.SELF_CONNECTION.code  # the peer found it
        if ourselves or fact.reason in (CloseReason.SELF_CONNECTION, CloseReason.REQUESTED):
            self.book.pop(peer.address, None)  # spec: RECO-3, RECO-8 (the application let go)
            return
        entry = self.book.get(peer.address)
        if fact.reason in _NODE_ASKED:
            if entry is not None:
                entry.next_attempt = self._now  # eligible again, by the order of section 7
            if fact.reason is CloseReason.TEMPORARY_DONE:
                self._probed[peer.address] = self._now  # spec: RECO-7 (not probed again soon)
                if self._partitioned and not self._room(PeerType.OUTBOUND):
                    self._make_room()  # spec: RECO-7 (so the address that answered is dialled)
            return
        self._failed(peer.address)

    def _on_Tick(self, fact: Tick) -> None:
        if self.bans.expire(self._wall):  # spec: BAN-5
            self._out.append(SaveBans(self.bans.to_document()))
        for peer in list(self._counting(PeerType.TEMPORARY)):
            if self._now >= peer.opened_at + self.settings.temporary_timeout:
                self._evict(peer, CloseReason.TEMPORARY_TIMEOUT)  # spec: TYPE-2
        if self._now >= self._next_rotation:
            self._next_rotation = self._now + self.settings.rotation_interval
            self._rotate()

    # ---- rules applied after every fact --------------------------------------------------

    def _failed(self, address: Address) -> None:
        """A failed dial or a lost connection: back off, or leave the book (section 8)."""
        entry = self.book.get(address)
        if entry is None:
            return
        entry.failures += 1
        if forgotten(entry.failures, entry.persistent, entry.source == "seed"):
            del self.book[address]  # spec: RECO-6 (seed nodes stay: RECO-9)
            return
        delay = reconnect_delay(
            entry.failures,
            self.settings.reconnect_interval,
            self.settings.reconnect_max_interval,
            self._rng.getrandbits(64),
        )
        entry.next_attempt = self._now + delay  # spec: RECO-4

    def _rotate(self) -> None:
        if not policy_of(self.settings.privacy_level).rotate:  # spec: PRIV-10
            return
        outbound = [self._facts(p) for p in self._counting(PeerType.OUTBOUND)]
        chosen = choose_rotation(outbound, self.settings.max_outbound_connections, self._now)
        for number in chosen:  # spec: PRIV-10
            peer = self._peers[number]
            self._rotated_groups.add(address_group(peer.address[0]))
            self._evict(peer, CloseReason.ROTATED)

    def _make_room(self) -> None:
        """Close the outbound connection of lowest score (oldest first) in the group that
        holds the most outbound connections (section 10)."""
        established = [p for p in self._counting(PeerType.OUTBOUND) if p.established_at is not None]
        if not established:
            return
        sizes: dict[str, int] = {}
        for p in established:
            group = address_group(p.address[0])
            sizes[group] = sizes.get(group, 0) + 1
        crowded = max(sizes.items(), key=lambda item: (item[1], item[0]))[0]
        victim = min(
            (p for p in established if address_group(p.address[0]) == crowded),
            key=lambda p: (score(self._facts(p), self._now), p.opened_at, p.peer),
        )
        self._evict(victim, CloseReason.ROTATED)  # spec: RECO-7

    def _evict(self, peer: _Peer, reason: CloseReason) -> None:
        """Close a connection the manager chose: it stops counting now (LIM-12), and its
        address is not dialled again before the close is done."""
        self._stop_counting(peer)  # spec: LIM-12
        entry = self.book.get(peer.address)
        if entry is not None and peer.type is not PeerType.INBOUND:
            entry.next_attempt = math.inf
        self._out.append(Evict(peer.peer, reason))

    def _maintain(self) -> None:
        """Fill the slots that are free, probe when partitioned, and ask for the next tick."""
        self._track_partition()
        self._dial_persistent()
        self._fill_outbound()
        self._probe()
        self._out.append(WakeAt(self._next_wake()))

    def _dial_persistent(self) -> None:
        for entry in self.book.values():
            address = (entry.host, entry.port)
            if not entry.persistent or entry.next_attempt > self._now:
                continue
            if address in self._own or self._connected(address):  # spec: RECO-2
                continue
            if self.bans.is_banned(entry.host, self._wall):  # spec: BAN-4
                continue
            if self._total() >= self.settings.max_total_connections:  # spec: LIM-14
                return
            self._dial(address, PeerType.PERSISTENT)  # spec: RECO-5

    def _fill_outbound(self) -> None:
        choose = self.rules.choose_outbound or choose_outbound
        while self.book and self._room(PeerType.OUTBOUND):  # spec: LIM-13, LIM-14
            entry = None
            # spec: PRIV-10 (a rotated group only when no entry of another group is eligible)
            for excluded in (self._rotated_groups, set()):
                entry = choose(  # spec: RECO-1
                    (e for e in self.book.values() if not e.persistent),
                    now=self._now,
                    key=self.key,
                    own=self._own,
                    connected_ips=self._connected_ips(),
                    used_groups=self._used_groups(),
                    excluded_groups=excluded,
                    banned=lambda ip: self.bans.is_banned(ip, self._wall),  # spec: BAN-4
                )
                if entry is not None or not excluded:
                    break
            if entry is None:
                break
            self._dial((entry.host, entry.port), PeerType.OUTBOUND)
        if not self._room(PeerType.OUTBOUND):
            self._rotated_groups.clear()  # the slots are filled again (section 9)

    def _track_partition(self) -> None:
        # Their addresses only: this runs on every fact, and facts of each would cost more.
        established = [p.address[0] for p in self._outward() if p.established_at is not None]
        if established:
            self._last_outbound_at = self._now
        self._partitioned = partitioned(  # spec: RECO-7
            established,
            self._last_outbound_at,
            self.started_at,
            self._now,
            self.settings.partition_timeout,
        )

    def _probe(self) -> None:
        if not self._partitioned:
            return
        free = self.settings.max_temporary_connections - self._count(PeerType.TEMPORARY)
        free = min(free, self.settings.max_total_connections - self._total())
        if free <= 0:
            return
        recent = self._now - self.settings.partition_timeout
        self._probed = {a: t for a, t in self._probed.items() if t > recent and a in self.book}
        probes = choose_probes(
            (e for e in self.book.values() if (e.host, e.port) not in self._probed),
            now=self._now,
            key=self.key,
            own=self._own,
            connected_ips=self._connected_ips(),
            connected_groups=self._connected_groups(),  # dials too
            banned=lambda ip: self.bans.is_banned(ip, self._wall),
            free_slots=free,
        )
        for entry in probes:
            self._dial((entry.host, entry.port), PeerType.TEMPORARY)  # spec: RECO-7

    def _next_wake(self) -> float:
        times = [self._next_rotation]
        expiry = self.bans.next_expiry()
        if expiry is not None:  # wall-clock seconds from now, on the monotonic clock
            # never at the current instant: a wake-up must find time passed (KA-10)
            times.append(self._now + max(0.001, expiry - self._wall))
        times += [
            p.opened_at + self.settings.temporary_timeout
            for p in self._counting(PeerType.TEMPORARY)
        ]
        times += [
            e.next_attempt for e in self.book.values() if self._now < e.next_attempt < math.inf
        ]
        if self._partitioned or self._last_outbound_at is None:
            times.append(self._now + max(1.0, self.settings.partition_timeout / 4))
        elif not any(p.established_at is not None for p in self._outward()):
            times.append(self._last_outbound_at + self.settings.partition_timeout)  # RECO-7
        return min(times)

    # ---- counting ------------------------------------------------------------------------

    def _eligible_now(self, address: Address) -> bool:
        """Whether an outbound dial to ``address`` is allowed now (RECO-2, BAN-4, LIM-13)."""
        return (
            self._room(PeerType.OUTBOUND)  # spec: LIM-13, LIM-14
            and address not in self._own  # spec: RECO-2
            and not self._connected(address)
            and not self.bans.is_banned(address[0], self._wall)  # spec: BAN-4
        )

    def _dial(self, address: Address, kind: PeerType) -> None:
        self._dialing[address] = kind
        self._out.append(Dial(address, kind))

    def _start_counting(self, peer: _Peer) -> None:
        peer.counts = True
        self._counting_by_type[peer.type][peer.peer] = peer
        self._counting_ips[peer.address[0]] += 1
        self._counting_groups[address_group(peer.address[0])] += 1

    def _stop_counting(self, peer: _Peer) -> None:
        if not peer.counts:
            return
        peer.counts = False  # spec: LIM-12
        del self._counting_by_type[peer.type][peer.peer]
        for counter, key in (
            (self._counting_ips, peer.address[0]),
            (self._counting_groups, address_group(peer.address[0])),
        ):
            counter[key] -= 1
            if not counter[key]:
                del counter[key]

    def _counting(self, kind: PeerType | None) -> Iterable[_Peer]:
        if kind is not None:
            return self._counting_by_type[kind].values()
        return (p for peers in self._counting_by_type.values() for p in peers.values())

    def _count(self, kind: PeerType) -> int:
        dialing = sum(1 for t in self._dialing.values() if t is kind)
        return len(self._counting_by_type[kind]) + dialing

    def _total(self) -> int:
        return sum(map(len, self._counting_by_type.values())) + len(self._dialing)

    def _room(self, kind: PeerType) -> bool:
        limit: int = getattr(self.settings, _LIMITS[kind])
        total = self.settings.max_total_connections
        # spec: LIM-13, LIM-14
        return may_open_outbound(self._count(kind), limit) and may_open_outbound(
            self._total(), total
        )

    def _outward(self) -> list[_Peer]:
        return [
            *self._counting(PeerType.OUTBOUND),
            *self._counting(PeerType.PERSISTENT),
        ]

    def _connected_ips(self) -> Container[str]:
        """The addresses of the connections that count and of the dials under way."""
        return _Either(self._counting_ips, {a[0] for a in self._dialing})

    def _connected_groups(self) -> Container[str]:
        return _Either(self._counting_groups, {address_group(a[0]) for a in self._dialing})

    def _connected(self, address: Address) -> bool:
        return address[0] in self._connected_ips()

    def _used_groups(self) -> set[str]:
        return {address_group(p.address[0]) for p in self._outward()} | {
            address_group(a[0]) for a, t in self._dialing.items() if t is not PeerType.TEMPORARY
        }

    def _facts(self, peer: _Peer) -> PeerFacts:
        return PeerFacts(
            peer=peer.peer,
            ip=peer.address[0],
            opened_at=peer.opened_at,
            established_at=peer.established_at,
            min_rtt=peer.min_rtt,
            features=peer.features,
            misbehaviour=self.records.points(peer.address[0]),
            persistent=peer.type is PeerType.PERSISTENT,
        )

    # ---- monitoring ----------------------------------------------------------------------

    @property
    def partitioned(self) -> bool:
        """Whether the node is partitioned (section 10), as of the last fact."""
        return self._partitioned

    def count(self, kind: PeerType) -> int:
        """The connections of ``kind`` that count against its limit now, dials under way
        included (LIM-12)."""
        return self._count(kind)

    def total(self) -> int:
        """Every connection that counts now (LIM-14)."""
        return self._total()

    def type_of(self, peer: int) -> PeerType | None:
        record = self._peers.get(peer)
        return None if record is None else record.type

    def status(self, now: float, wall: float) -> ManagerStatus:
        """Counts per type and group, scores, bans and waiting entries (spec: NODE-9)."""
        counts = {kind.value: self._count(kind) for kind in PeerType}
        groups: dict[str, int] = {}
        for peer in self._counting(None):
            group = address_group(peer.address[0])
            groups[group] = groups.get(group, 0) + 1
        return ManagerStatus(
            counts=counts,
            groups=dict(sorted(groups.items())),
            scores={p.peer: score(self._facts(p), now) for p in self._counting(None)},
            bans=[(b.address, b.until) for b in self.bans.bans() if b.until > wall],
            waiting=sorted(
                (e.text, e.failures, e.next_attempt)
                for e in self.book.values()
                if now < e.next_attempt < math.inf
            ),
            partitioned=self._partitioned,
            book=len(self.book),
        )
