"""The embeddable node: connection machines on real sockets, driven by one ``EventLoop``
(spec/node.md).

This is the only module with sockets. Each connection is a ``PeerConnection`` machine plus a
socket, a bounded send queue and its timers; the node turns socket readiness and timer expiries
into the machine's events and carries out the actions the machine returns. Events for the
application (established, message, closed, ...) go to a callback or to the ``events`` queue.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import logging
import math
import selectors
import socket
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .banfile import BAN_FILE_NAME, BanFileError, read_ban_document, write_ban_document
from .budget import MemoryBudget
from .config import NodeConfig
from .eventqueue import AppEvent, EventQueue, NodeEvent
from .logs import reason_text
from .loop import EventLoop, TimerHandle
from .machines.connection import ConnState, Direction, Observation, PeerConnection
from .machines.events import (
    AbortTransport,
    Action,
    ArmTimer,
    BytesReceived,
    CancelTimer,
    Closed,
    CloseRequested,
    CloseTransport,
    EndOfStream,
    Established,
    Event,
    Misbehaviour,
    NodeLimit,
    ReleaseNonce,
    RttMeasured,
    SendBytes,
    SendMessage,
    TcpConnected,
    Timer,
    TimerExpired,
    TransportClosed,
    TransportFailed,
)
from .machines.handshake import LocalHandshake
from .machines.nonces import OwnNonces
from .machines.padding import RandomSource, SystemRandomSource
from .machines.privacy import GENERIC_USER_AGENT, policy_of
from .machines.reasons import CloseReason, sent_reason
from .manager import manager as mgr
from .manager.bans import BanFileError as NotABanFile
from .manager.bans import BanList
from .manager.groups import address_group, canonical_ip
from .manager.manager import (
    SPEC_RULES,
    ConnectionManager,
    Decision,
    Fact,
    ManagerStatus,
    PeerType,
    PolicyRules,
)
from .sendbuffer import SendBuffer
from .sockets import SocketFactory, StreamSocket
from .transport.socks5 import Socks5Client, credentials_request
from .wire import MessageType, Opaque
from .wire.registry import Feature, PrivacyFeature, flag_names

log = logging.getLogger("obscura_ref.node")

READ_CHUNK = 64 * 1024  # bytes read from one socket per readiness: no peer starves the others
PASS_READ_BUDGET = READ_CHUNK  # bytes read in one pass of the loop, all peers (NODE-10)
MIN_READ = 4 * 1024  # the least a pass reads from a readable socket it serves (NODE-10)
SILENCE_READ = 1  # bytes read from a peer before judging it silent: one is enough (NODE-12)
SEND_HIGH_WATER = 1024 * 1024  # unsent bytes above which a peer is not read from (NODE-15)
PEER_EVENT_LIMIT = 1_000  # waiting events of one connection before it is not read (NODE-13)
ACCEPTS_PER_READY = 64  # connections accepted per readiness of a listening socket
ACCEPT_BACKOFF = 0.5  # seconds a listener is not watched after accept failed (NODE-7)
# The timers that judge a peer by what it has sent: their expiry waits for a read (NODE-12).
SILENCE_TIMERS = frozenset({Timer.HANDSHAKE, Timer.PONG, Timer.INACTIVITY})
LISTEN_BACKLOG = 1024
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE

Address = tuple[str, int]
__all__ = [
    "AppEvent",
    "MemoryStatus",
    "Node",
    "NodeError",
    "NodeEvent",
    "PeerStatus",
    "parse_address",
]


class NodeError(Exception):
    """A request the node cannot carry out (an unknown peer, a limit reached, a bad address)."""


class _Thread:
    """What one thread drives: its nodes not shut down, and the loop it ran last. Two nodes
    of one thread on separate loops would each block in its own select while the other's
    sockets wait (README.md, "Embedding"): driving them in turn is refused."""

    def __init__(self) -> None:
        self.live: weakref.WeakSet[Node] = weakref.WeakSet()
        self.last: weakref.ref[EventLoop] | None = None


_THREADS: dict[int, _Thread] = {}


def _thread() -> _Thread:
    return _THREADS.setdefault(threading.get_ident(), _Thread())


@dataclass(frozen=True)
class PeerStatus:
    """One connection, as ``Node.status`` reports it."""

    peer: int
    address: str
    direction: str
    type: str  # outbound, persistent, inbound or temporary (spec/manager.md section 3)
    group: str  # the address group (spec/manager.md section 2)
    score: int  # spec/manager.md section 4
    persistent: bool
    state: str
    age: float
    established_for: float | None
    rtt: float | None
    version: int | None
    features: int | None
    privacy_features: int | None
    user_agent: str | None
    session_id: str | None  # the Noise handshake hash, hex, of an encrypted one (PRIV-35)
    bytes_sent: int
    bytes_received: int
    send_queue: int


@dataclass(frozen=True)
class MemoryStatus:
    """What the node holds against its ``memory_budget`` (spec/node.md section 2.1)."""

    buffers: int  # bytes the buffers of every connection hold (NODE-14)
    events: int  # bytes counted for the events the application has not taken
    budget: int
    pressure: bool  # above three quarters of the budget: the largest are not read (NODE-16)


@dataclass(eq=False, slots=True)
class _Peer:
    id: int
    address: Address
    kind: PeerType
    machine: PeerConnection
    sock: StreamSocket | None
    # One buffer, not an object per frame: max_send_queue bounds its memory (node.md section 2)
    send_queue: SendBuffer = field(default_factory=SendBuffer)
    timers: dict[Timer, TimerHandle] = field(default_factory=dict)
    registered: int = 0  # the selector events the socket is registered for
    eof_seen: bool = False  # the peer ended its side
    ending: bool = False  # CloseTransport: end our side once the queue is written
    overflow: bool = False  # a send did not fit the queue in the current batch
    refused: bool = (
        False  # refused or evicted at admission (LIM-16): closed once its Disconnect is out
    )
    live: bool = True  # the manager has not yet been told its close began (LIM-12)
    held: int = 0  # the bytes of its buffers, as counted in the node's total (NODE-14)
    backlogged: bool = False  # too much unsent: not read from until it drains (NODE-15)
    app_behind: bool = False  # too many of its events wait for the application (NODE-13)
    progress_at: float = 0.0  # when the socket last took queued bytes (NODE-11)
    stall_check: TimerHandle | None = None  # armed while bytes wait to be written (NODE-11)

    @property
    def label(self) -> str:
        # Made when asked, not kept: a text per connection is memory every idle one pays.
        return f"{self.address[0]}:{self.address[1]}"


_reason = reason_text  # a Disconnect's reason code as a log shows it: its name and the code


def _reason_name(code: int) -> str | None:
    """The name of a Disconnect's reason code, or None for a code no reason has."""
    reason = sent_reason(code)
    return None if reason is None else reason.label


def _fields(peer: _Peer, event: str, **more: object) -> dict[str, object]:
    """The structured fields of a log record about one connection (``--log-format json``,
    README.md's table of log keys); a value left None is left out."""
    fields: dict[str, object] = {
        "peer": peer.id,
        "address": peer.label,
        "direction": peer.machine.direction.value,
        "event": event,
    }
    fields.update((key, value) for key, value in more.items() if value is not None)
    return fields


def parse_address(text: str) -> Address:
    """``HOST:PORT`` or ``[HOST]:PORT`` with an IP address for HOST (no name lookups: they
    would block the loop)."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise NodeError(f"{text!r} is not HOST:PORT")
    try:
        host = canonical_ip(host)  # one text per address: bans and the book compare texts
    except ValueError:
        raise NodeError(f"{text!r}: {host!r} is not an IP address (no names)") from None
    if not port_text.isdigit():
        raise NodeError(f"{text!r}: the port {port_text!r} is not a number")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise NodeError(f"{text!r}: port out of range")
    return host, port


class Node:
    """Connection machines on real sockets, under one ``ConnectionManager``.

    The node turns socket readiness and timer expiries into events for each connection's
    ``PeerConnection`` and carries out the actions it returns (spec/node.md); it reports what
    happens to connections to the ``ConnectionManager`` as facts and carries out its decisions:
    admit, refuse, evict, dial, save the bans, wake it later (spec/manager.md). It decides
    nothing itself. Build it from a ``NodeConfig``, call ``listen`` and ``connect``, and drive
    it with ``step``, ``run_until`` or ``run_forever``; ``shutdown`` closes every connection
    gracefully. Events for the application arrive through ``on_event`` or the ``events``
    queue; ``status`` and ``manager_status`` describe the connections.
    """

    def __init__(
        self,
        config: NodeConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: RandomSource | None = None,
        on_event: Callable[[NodeEvent], None] | None = None,
        loop: EventLoop | None = None,
        observer: Callable[[int, Observation], None] | None = None,
        sockets: SocketFactory = socket.socket,
        rules: PolicyRules = SPEC_RULES,
    ) -> None:
        """``loop`` lets several nodes share one loop (and its clock), as tests of many nodes
        in one process do; by default the node has its own. ``observer``, when given, is told
        each rule every connection's machine applies and each frame it sends, with the peer's
        number (a narrated demo, debug logs); it must not call back into the node.
        ``sockets`` makes the node's sockets (obscura_ref/sockets.py): the operating system's
        by default, the simulator's in-memory ones under ``obscura-ref simulate``. ``rules``:
        the manager's eviction and outbound choices, the spec's unless an experiment swaps
        them (``PolicyRules``)."""
        self._observer = observer
        self._sockets = sockets
        self.config = (config or NodeConfig()).check_together()
        self._owns_loop = loop is None
        self.loop = EventLoop(clock) if loop is None else loop
        self._ran = False  # driven once by step, run_until or run_forever
        _thread().live.add(self)
        self._wall_clock = wall_clock
        self._rng: RandomSource = rng if rng is not None else SystemRandomSource()
        self._on_event = on_event
        # The events for an application without a callback; it takes them with popleft.
        self.events = EventQueue(self._events_taken)
        self.nonces = OwnNonces()
        self._settings = self.config.connection_settings()
        # Read once, not per frame.
        self._max_send_queue: int = self.config.max_send_queue
        self._high_water = min(SEND_HIGH_WATER, self._max_send_queue // 2)  # NODE-15
        self._stall_after: float = self.config.inactivity_timeout  # NODE-11
        # The rules of the memory budget, told what the buffers and events hold (NODE-14,
        # NODE-16, NODE-17).
        self._budget = MemoryBudget(self.config.memory_budget, self.config.max_total_connections)
        self._held = 0  # bytes the buffers of every connection hold (NODE-14)
        self._shedding = False
        policy = policy_of(self.config.privacy_level)
        self._local = LocalHandshake(
            privacy_features=policy.privacy_features,  # spec: PRIV-11
            # spec: PRIV-13
            user_agent=GENERIC_USER_AGENT if policy.generic_user_agent else self.config.user_agent,
            requires_encryption=policy.require_encryption,  # spec: PRIV-12
        )
        # spec: PRIV-40 (set: every outbound connection's socket goes to this proxy)
        self._proxy = parse_address(self.config.proxy) if self.config.proxy else None
        if self.config.proxy_username or self.config.proxy_password:
            try:  # refused now, not at each dial
                credentials_request(self.config.proxy_username, self.config.proxy_password)
            except ValueError as exc:
                raise NodeError(f"proxy_username and proxy_password: {exc}") from None
        self._peers: dict[int, _Peer] = {}
        # Open connections by direction, kept as counts: admission must not cost a scan.
        self._open = {Direction.OUTBOUND: 0, Direction.INBOUND: 0}
        self._next_id = 1
        self._listeners: list[StreamSocket] = []
        self._watched: set[StreamSocket] = set()  # the listeners the selector watches
        self._resting: set[StreamSocket] = set()  # listeners whose accept failed (NODE-7)
        settings = self.config.manager_settings()
        self._ban_file = None if settings.data_dir is None else settings.data_dir / BAN_FILE_NAME
        key = self._rng.getrandbits(256).to_bytes(32, "little")  # spec: LIM-11
        self.manager = ConnectionManager(
            settings, key, self._rng, self.loop.clock(), self._load_bans(), rules
        )
        self._facts: deque[Fact] = deque()
        self._deciding = False
        self._wake: TimerHandle | None = None
        self._dialled: dict[Address, int] = {}  # the peer numbers of the dials just made
        # The manager's first look, on the first pass of the loop: the seed nodes are dialled
        # then, once the application has had the chance to listen.
        self.loop.call_at(self.loop.clock(), lambda: self._decide(mgr.Tick()))
        # Connections the selector found readable, read in that order within a budget per
        # pass; those the budget left out come first in the next pass (spec: NODE-10).
        self._readable: OrderedDict[int, None] = OrderedDict()
        self._on_serve = self._serve_readable  # asked for each pass that finds one readable
        # Bound once: the loop holds these, with a peer number, for every connection.
        self._on_ready = self._ready
        self._on_timer = self._timer_fired
        self._on_accept = self._accept_ready
        self._stop_requested = False  # leave run_forever
        self._shutting_down = False  # no more dials, no more accepts (NODE-5)
        self._cut_requested = False  # stop waiting for graceful closes
        # Events for the machines, carried out one batch of actions at a time: an event that
        # arises while a batch is being carried out waits for the batch to finish.
        self._inbox: deque[tuple[_Peer, Event]] = deque()
        self._draining = False
        # Connections with bytes queued by the events being handled: written once those are
        # done, so that the frames of one read (a pong for each ping) go out in one send.
        self._unflushed: dict[int, _Peer] = {}
        self._bans_to_save: dict[str, object] | None = None  # written once per pass (BAN-6)

    # ---- the application's side --------------------------------------------------------

    def listen(self, host: str, port: int) -> Address:
        """Accept connections on HOST:PORT; returns the address bound (port 0 picks one)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = self._sockets(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            # The address in the message: "Address already in use" alone does not say which.
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
        sock.setblocking(False)
        self._listeners.append(sock)
        self._watch_listeners()
        bound = sock.getsockname()
        log.info(
            "listening on %s:%s",
            bound[0],
            bound[1],
            extra={"event": "listening", "address": f"{bound[0]}:{bound[1]}"},
        )
        self._decide(mgr.Listening((bound[0], bound[1])))
        return bound[0], bound[1]

    def connect(self, host: str, port: int, *, persistent: bool = False) -> int:
        """Add an address to the address book and dial it now; returns the connection's peer
        number. A persistent address is reopened whenever its connection is lost (spec:
        RECO-5). NodeError when the manager does not dial it now (a limit, a ban, the address
        already connected); a persistent address stays in the book and is dialled once it
        can be."""
        address = parse_address(f"[{host}]:{port}")
        self._dialled.clear()
        self._decide(mgr.AddressAdded(address, "persistent" if persistent else "connect"))
        peer = self._dialled.get(address)
        if peer is None:
            raise NodeError(
                f"{address[0]}:{address[1]} not dialled now: a limit is reached, the address is "
                "banned, our own, or already connected (spec/manager.md sections 3, 6, 7)"
            )
        return peer

    def _dial(self, address: Address, kind: PeerType) -> None:
        """Carry out a ``Dial``: open the socket and start the connection's machine."""
        # Only the socket's endpoint is the proxy's: the peer's own address stays the
        # connection's for the manager, bans, groups, status and logs.
        endpoint = address if self._proxy is None else self._proxy  # spec: PRIV-40, PRIV-43
        try:
            proxy = None if self._proxy is None else self._proxy_client(address)
        except ValueError as exc:  # an address SOCKS5 cannot carry (a scoped IPv6 one, say)
            self._dial_failed(address, kind, "cannot give {} to the proxy", exc)
            return
        family = socket.AF_INET6 if ":" in endpoint[0] else socket.AF_INET
        source = self._source_for(family, endpoint[0])
        try:
            sock = self._sockets(family, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors, say
            self._dial_failed(address, kind, "cannot open a socket for {}", exc)
            return
        try:
            sock.setblocking(False)
            if source is not None:
                sock.bind((source, 0))
            status = sock.connect_ex(endpoint)
        except OSError as exc:
            sock.close()
            self._dial_failed(address, kind, "cannot connect to {}", exc)
            return
        peer = self._add_peer(Direction.OUTBOUND, address, sock, kind, proxy)  # spec: PRIV-43
        self._dialled[address] = peer.id
        self._decide(mgr.Opened(peer.id, address, kind))
        log.info(
            "peer %d %s %s connecting",
            peer.id,
            peer.label,
            kind.value,
            extra=_fields(peer, "connecting", type=kind.value),
        )
        if status not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            # Reported on the next pass of the loop, so that the caller has the peer number
            # before it hears of the close.
            failure = TransportFailed(f"connect: {errno.errorcode.get(status, status)}")
            self.loop.call_at(self.loop.clock(), lambda: self._handle(peer, failure))
        else:
            self._update_interest(peer)

    def _dial_failed(self, address: Address, kind: PeerType, what: str, exc: Exception) -> None:
        """A dial that could not even start: logged, told to the manager (which backs off)."""
        text = f"{address[0]}:{address[1]}"
        log.warning(
            "%s: %s",
            what.format(text),
            exc,
            extra={"event": "dial_failed", "address": text},
        )
        self._decide(mgr.DialFailed(address, kind))
        self._log_next_attempt(address)

    def _proxy_client(self, address: Address) -> Socks5Client:
        """The SOCKS5 client that asks the proxy for ``address``, with the credentials of
        spec/privacy.md section 4."""
        host, port = address
        if self.config.proxy_username:  # spec: PRIV-41
            return Socks5Client(host, port, self.config.proxy_username, self.config.proxy_password)
        if self.config.proxy_isolate:
            # Fresh credentials per connection: a Tor client gives each its own circuit.
            username = self._rng.getrandbits(128).to_bytes(16, "big").hex()  # spec: PRIV-44
            password = self._rng.getrandbits(128).to_bytes(16, "big").hex()
            return Socks5Client(host, port, username, password)
        return Socks5Client(host, port)  # spec: PRIV-41 (no credentials: no authentication)

    def _source_for(self, family: int, destination: str) -> str | None:
        """On loopback, a node that listens on one specific address connects from it too, so
        that its peers see one address for it: several nodes on one machine keep their
        address groups apart. Elsewhere the system chooses the source address."""
        if not ipaddress.ip_address(destination).is_loopback:
            return None
        for listener in self._listeners:
            host = ipaddress.ip_address(listener.getsockname()[0])
            if listener.family == family and host.is_loopback:
                return str(host)
        return None

    def send(self, peer_id: int, message: Opaque) -> None:
        """Queue an opaque message for an established connection."""
        if message.message_type is MessageType.Dummy:  # spec: PRIV-61 (the node's own)
            raise NodeError("Dummy messages are the node's own (traffic shaping): not sendable")
        peer = self._peer(peer_id)
        if not peer.machine.accepts_app_messages:
            raise NodeError(f"peer {peer_id} is {peer.machine.state.value}, not established")
        self._handle(peer, SendMessage(message))

    def close(self, peer_id: int, reason: CloseReason = CloseReason.REQUESTED) -> None:
        """Close one connection: gracefully (Disconnect with the reason, flush, close) when it
        is handshaking or established; at once, sending nothing, while it is still
        connecting."""
        self._handle(self._peer(peer_id), CloseRequested(reason))

    def status(self) -> list[PeerStatus]:
        """One row per connection, open or closing (README.md, the ``connections`` of
        ``--status-json``)."""
        now = self.loop.clock()
        scores = self.manager.status(now, self._wall_clock()).scores
        rows = []
        for peer in self._peers.values():
            m = peer.machine
            n = m.negotiated
            rows.append(
                PeerStatus(
                    peer=peer.id,
                    address=peer.label,
                    direction=m.direction.value,
                    type=peer.kind.value,
                    group=address_group(peer.address[0]),
                    score=scores.get(peer.id, 0),
                    persistent=peer.kind is PeerType.PERSISTENT,
                    state=m.state.value,
                    age=now - m.opened_at,
                    established_for=None if m.established_at is None else now - m.established_at,
                    rtt=m.last_rtt,
                    version=None if n is None else n.version,
                    features=None if n is None else n.features,
                    privacy_features=None if n is None else n.privacy_features,
                    user_agent=None if n is None else n.peer_user_agent,
                    # spec: PRIV-35
                    session_id=None if m.session_id is None else m.session_id.hex(),
                    bytes_sent=m.bytes_sent,
                    bytes_received=m.bytes_received,
                    send_queue=len(peer.send_queue),
                )
            )
        return rows

    def memory(self) -> MemoryStatus:
        """What the node holds against its memory budget now (spec/node.md section 2.1)."""
        budget = self._budget
        return MemoryStatus(self._held, self.events.held_bytes, budget.budget, budget.pressure)

    def manager_status(self) -> ManagerStatus:
        """Counts per type and group, scores, bans, entries waiting to be dialled (NODE-9)."""
        return self.manager.status(self.loop.clock(), self._wall_clock())

    def outbound_count(self) -> int:
        """Outbound connections not yet closed."""
        return self._open[Direction.OUTBOUND]

    def inbound_count(self) -> int:
        """Inbound connections not yet closed."""
        return self._open[Direction.INBOUND]

    @property
    def peer_ids(self) -> list[int]:
        """The numbers of the connections not yet closed, oldest first."""
        return list(self._peers)

    def state_of(self, peer_id: int) -> ConnState | None:
        """The connection's state, or None once it is closed (or was never opened)."""
        peer = self._peers.get(peer_id)
        return None if peer is None else peer.machine.state

    # ---- running -----------------------------------------------------------------------

    def step(self, max_wait: float | None = 0.0) -> None:
        """Run one pass of the loop, waiting at most ``max_wait`` seconds for something."""
        self._check_one_loop()
        self.loop.run_once(max_wait)

    def run_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Run until ``done()`` holds or ``timeout`` seconds pass; returns ``done()``."""
        self._check_one_loop()
        return self.loop.run_until(done, timeout)

    def run_forever(self) -> None:
        """Run until ``stop`` is called (a signal handler may call it, even before this)."""
        self._check_one_loop()
        while not self._stop_requested:
            self.step(1.0)
        self._stop_requested = False

    def _check_one_loop(self) -> None:
        """NodeError when this thread ran another live node's loop since it last ran this
        node's: two loops driven in turn from one thread (README.md, "Embedding")."""
        thread = _thread()
        last = None if thread.last is None else thread.last()
        other_ran = last is not None and last is not self.loop
        if self._ran and other_ran and any(other.loop is last for other in thread.live):
            raise NodeError(
                "another node of this thread runs on a different EventLoop, driven in "
                "turn with this one: each would wait in its own select while the other's "
                "sockets wait; make one obscura_ref.loop.EventLoop and pass it to every "
                "node (Node(config, loop=loop)), or shut the other node down"
            )
        self._ran = True
        thread.last = weakref.ref(self.loop)

    def stop(self) -> None:
        """Make ``run_forever`` return after the current step."""
        self._stop_requested = True

    def cut_shutdown(self) -> None:
        """Make a ``shutdown`` under way stop waiting for graceful closes (a second signal)."""
        self._cut_requested = True

    def shutdown(self, timeout: float | None = None) -> bool:
        """Close every connection with ``shutting_down``, run until they are closed or
        ``timeout`` (default ``close_timeout``) passes, then release every socket. Returns
        whether every connection closed gracefully in time (spec: NODE-5)."""
        self._shutting_down = True  # spec: NODE-5
        if self._wake is not None:
            self.loop.cancel(self._wake)
        for listener in self._listeners:
            if listener in self._watched:
                self.loop.unregister(listener)
            listener.close()
        self._listeners.clear()
        self._watched.clear()
        for peer in list(self._peers.values()):
            if peer.machine.is_live:
                self._handle(peer, CloseRequested(CloseReason.SHUTTING_DOWN))  # spec: NODE-5
        limit = self.config.close_timeout if timeout is None else timeout
        # The loop itself: a shutdown is never refused.
        graceful = self.loop.run_until(lambda: not self._peers or self._cut_requested, limit)
        graceful = graceful and not self._peers
        for peer in list(self._peers.values()):
            self._handle(peer, TransportFailed("node shut down before the close finished"))
        self._save_bans()  # bans of this last pass, if its timers did not run
        if self._owns_loop:
            self.loop.close()
        _thread().live.discard(self)
        return graceful

    # ---- inside: sockets ---------------------------------------------------------------

    def _peer(self, peer_id: int) -> _Peer:
        peer = self._peers.get(peer_id)
        if peer is None:
            raise NodeError(f"no peer {peer_id}")
        return peer

    def _add_peer(
        self,
        direction: Direction,
        address: Address,
        sock: StreamSocket,
        kind: PeerType,
        proxy: Socks5Client | None = None,
    ) -> _Peer:
        nonce = self.nonces.issue(self._rng)  # spec: HS-13
        machine = PeerConnection(
            direction,
            self.loop.clock(),
            self._settings,
            self._local,
            nonce,
            int(self._wall_clock()),
            self.nonces,
            self._rng,
            proxy=proxy,
        )
        if self._observer is not None:
            machine.observer = functools.partial(self._observer, self._next_id)
        peer = _Peer(self._next_id, address, kind, machine, sock)
        self._next_id += 1
        self._peers[peer.id] = peer
        self._open[direction] += 1
        self._perform(peer, machine.start())
        if not self._draining:
            self._flush_queued()  # else at the end of the batch being carried out
        return peer

    def _accept(self, listener: StreamSocket) -> None:
        for _ in range(ACCEPTS_PER_READY):
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say
                self._pause_accepting(listener, exc)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = self._add_peer(
                Direction.INBOUND, (address[0], address[1]), sock, PeerType.INBOUND
            )
            log.info(
                "peer %d %s inbound accepted", peer.id, peer.label, extra=_fields(peer, "accepted")
            )
            # spec: LIM-16 (decided before a byte of it is read: Admit makes it readable)
            self._decide(mgr.InboundOffered(peer.id, peer.address))

    def _pause_accepting(self, listener: StreamSocket, error: OSError) -> None:
        """The listener stays readable while accept fails: stop watching it for a moment
        instead of spinning, and log once per pause (spec: NODE-7)."""
        log.warning("accept failed: %s; accepting again in %g s", error, ACCEPT_BACKOFF)
        self._resting.add(listener)
        self._watch_listeners()  # spec: NODE-7
        self.loop.call_at(self.loop.clock() + ACCEPT_BACKOFF, self._end_rest, listener)

    def _end_rest(self, listener: StreamSocket) -> None:
        self._resting.discard(listener)
        self._watch_listeners()

    def _watch_listeners(self) -> None:
        """Watch each listening socket that may accept now: not one resting after a failed
        accept (NODE-7), and none while the application's events hold half the budget
        (NODE-17)."""
        for listener in self._listeners:
            wanted = listener not in self._resting and not self._budget.events_full
            if wanted and listener not in self._watched:
                self.loop.register(listener, _READ, self._on_accept, listener)
                self._watched.add(listener)
            elif not wanted and listener in self._watched:
                self.loop.unregister(listener)
                self._watched.discard(listener)

    def _accept_ready(self, mask: int, listener: StreamSocket) -> None:
        self._accept(listener)

    def _ready(self, mask: int, peer_id: int) -> None:
        # spec: NODE-1 (each readiness touches one peer; its failure closes it alone)
        peer = self._peers.get(peer_id)
        if peer is None or peer.sock is None:
            return
        if peer.machine.is_connecting:
            if mask & _WRITE:
                self._connect_finished(peer)
            return
        if mask & _WRITE:
            self._flush(peer)
        if mask & _READ and peer.sock is not None:
            self._readable[peer.id] = None  # spec: NODE-10 (read after, in turn)
            self.loop.after_io_once(self._on_serve)

    def _serve_readable(self) -> bool:
        """Read from the readable connections in the order they became readable, until
        ``PASS_READ_BUDGET`` bytes are read in this pass; returns whether some are left for
        the next pass, which serves them first (spec: NODE-3, NODE-10). The budget is shared:
        each connection gets an equal part of it, ``READ_CHUNK`` at most and ``MIN_READ`` at
        least, so that a well-behaved peer among many flooders is read every few passes and a
        lone transfer still reads in large pieces."""
        budget = PASS_READ_BUDGET
        part = max(MIN_READ, min(READ_CHUNK, budget // max(1, len(self._readable))))
        while self._readable and budget > 0:  # spec: NODE-10
            peer_id, _ = self._readable.popitem(last=False)
            peer = self._peers.get(peer_id)
            if peer is not None and peer.sock is not None and self._may_read(peer):
                budget -= self._read(peer, part)
        return bool(self._readable)

    def _connect_finished(self, peer: _Peer) -> None:
        assert peer.sock is not None
        status = peer.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if status:
            self._handle(peer, TransportFailed(f"connect: {errno.errorcode.get(status, status)}"))
            return
        peer.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        via = "" if self._proxy is None else f" to the proxy {self._proxy[0]}:{self._proxy[1]}"
        log.info(
            "peer %d %s outbound connected%s",
            peer.id,
            peer.label,
            via,
            extra=_fields(peer, "connected"),
        )
        self._handle(peer, TcpConnected())

    def _read(self, peer: _Peer, size: int) -> int:
        """Read at most ``size`` bytes from the peer's socket, once, and hand them to its
        machine; returns how many bytes were read."""
        assert peer.sock is not None
        try:
            data = peer.sock.recv(size)  # spec: NODE-3 (size is READ_CHUNK at most)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:  # reset, unreachable, ...
            self._handle(peer, TransportFailed(f"receive: {exc.strerror or exc}"))
            return 0
        if data:
            self._handle(peer, BytesReceived(data))
            return len(data)
        peer.eof_seen = True
        if peer.ending and not peer.send_queue:
            self._transport_closed(peer)  # spec: NODE-4 (both sides ended: close cleanly)
        else:
            self._handle(peer, EndOfStream())
            self._update_interest(peer)
        return 0

    def _flush(self, peer: _Peer) -> None:
        sock = peer.sock
        if sock is not None and peer.send_queue:
            # One send of everything queued: the kernel takes what fits in its buffer.
            try:
                with peer.send_queue.view() as unsent:
                    sent = sock.send(unsent)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:  # reset, broken pipe, ...
                self._handle(peer, TransportFailed(f"send: {exc.strerror or exc}"))
                return
            peer.send_queue.consume(sent)
            if sent:
                peer.progress_at = self.loop.clock()  # spec: NODE-11
            self._account(peer)
            if peer.send_queue and peer.stall_check is None and peer.machine.is_open:
                self._arm_stall_check(peer)
        if peer.sock is not None and peer.ending and not peer.send_queue:
            self._end_sending(peer)
        self._update_interest(peer)
        if self._budget.pressure and not self._draining:
            self._check_budget()  # written bytes may end the pressure (NODE-16)

    def _arm_stall_check(self, peer: _Peer) -> None:
        """Look again when the peer will have taken none of our bytes for
        ``inactivity_timeout`` (spec: NODE-11): one timer per connection with bytes waiting,
        not one per write."""
        peer_id = peer.id
        peer.stall_check = self.loop.call_at(
            peer.progress_at + self._stall_after, lambda: self._check_stall(peer_id)
        )

    def _check_stall(self, peer_id: int) -> None:
        peer = self._peers.get(peer_id)
        if peer is None:
            return
        peer.stall_check = None
        if not peer.send_queue or not peer.machine.is_open:
            return
        # The time against the deadline as armed (KA-10's way), so it cannot re-arm at it.
        if self.loop.clock() >= peer.progress_at + self._stall_after:
            self._handle(peer, NodeLimit(CloseReason.SEND_STALLED))  # spec: NODE-11
        else:
            self._arm_stall_check(peer)

    def _end_sending(self, peer: _Peer) -> None:
        """Everything queued is written: end our side; close once the peer has ended its
        side, reading and discarding until then (spec: NODE-4)."""
        assert peer.sock is not None
        # spec: NODE-4 (end our side; the socket closes when the peer ends its side)
        # If the peer is gone already, the close below or at close_timeout follows.
        with contextlib.suppress(OSError):
            peer.sock.shutdown(socket.SHUT_WR)
        if peer.eof_seen or peer.refused:
            # A refused or evicted connection (LIM-16) is not waited for: its descriptor is wanted.
            self._transport_closed(peer)

    def _transport_closed(self, peer: _Peer) -> None:
        self._release_socket(peer)
        self._handle(peer, TransportClosed())

    def _release_socket(self, peer: _Peer) -> None:
        if peer.sock is None:
            return
        if peer.registered:
            self.loop.unregister(peer.sock)
            peer.registered = 0
        peer.sock.close()
        peer.sock = None
        peer.send_queue.clear()

    def _update_interest(self, peer: _Peer) -> None:
        if peer.sock is None:
            return
        # spec: NODE-15 (paused above the high-water mark, read again at half of it)
        queued = len(peer.send_queue)
        limit = self._high_water // 2 if peer.backlogged else self._high_water
        peer.backlogged = queued > limit
        wanted = 0
        if peer.machine.is_connecting or queued:
            wanted |= _WRITE
        if self._may_read(peer):
            wanted |= _READ
        if wanted == peer.registered:
            return
        sock = peer.sock
        if not peer.registered:
            self.loop.register(sock, wanted, self._on_ready, peer.id)
        elif not wanted:
            self.loop.unregister(sock)
        else:
            self.loop.modify(sock, wanted, self._on_ready, peer.id)
        peer.registered = wanted

    def _may_read(self, peer: _Peer) -> bool:
        """Whether the node reads from this connection now. Closing connections are always
        read, to discard and to see the peer's end of stream (NODE-4); an open one is not
        while its peer leaves too much of ours unsent (NODE-15), while the application is
        behind on its events (NODE-13), or while the node is short of memory and it holds
        more than its share (NODE-16)."""
        if not peer.machine.reads or peer.eof_seen:
            return False
        if peer.machine.is_closing:
            return True
        paused = peer.backlogged or peer.app_behind  # spec: NODE-15, NODE-13
        if paused or self._budget.events_full:  # spec: NODE-17
            return False
        # What reading it would make grow: what we queue for it and its events; not the frame
        # it is sending, which only reading can finish and give back (NODE-14 bounds that).
        holds = peer.send_queue.allocated + self.events.bytes_of(peer.id)
        return self._budget.may_read(holds)  # spec: NODE-16

    def _events_taken(self, peer_id: int) -> None:
        """The application took an event of ``peer_id`` from ``events``."""
        if self._budget.events_full and self._budget.update_events(self.events.held_bytes):
            self._events_filled()  # spec: NODE-17 (no longer)
        peer = self._peers.get(peer_id)
        caught_up = self.events.waiting(peer_id) <= PEER_EVENT_LIMIT // 2  # spec: NODE-13
        if peer is not None and peer.app_behind and caught_up:
            peer.app_behind = False
            self._update_interest(peer)
        if self._budget.pressure:
            if peer is not None:
                self._update_interest(peer)  # it may be back within its share (NODE-16)
            self._check_budget()

    def _events_filled(self) -> None:
        """Stop, or go back to, reading every open connection and accepting new ones, as the
        undelivered events passed half the budget or fell to a quarter of it (spec: NODE-17)."""
        log.warning(
            "memory: the application's undelivered events hold %d bytes: %s",
            self.events.held_bytes,
            "reading and accepting stopped"
            if self._budget.events_full
            else "reading and accepting again",
        )
        for peer in list(self._peers.values()):
            self._update_interest(peer)
        self._watch_listeners()

    # ---- inside: memory ----------------------------------------------------------------

    def _account(self, peer: _Peer) -> None:
        """Count again what this connection's buffers hold (spec: NODE-14)."""
        held = peer.send_queue.allocated + peer.machine.held_bytes
        self._held += held - peer.held
        peer.held = held

    def _check_budget(self) -> None:
        """Keep what the node holds under ``memory_budget``: above three quarters of it, stop
        reading from the connections that hold more than their share, until it is down to
        half (NODE-16); above all of it, close the connection that holds most, and the next,
        until under (NODE-14)."""
        budget = self._budget
        held = self._held + self.events.held_bytes
        if budget.update_pressure(held):  # spec: NODE-16
            log.warning(
                "memory: %d bytes held of a budget of %d: %s reading from the peers that hold most",
                held,
                budget.budget,
                "stopped" if budget.pressure else "resumed",
            )
            for peer in list(self._peers.values()):
                self._update_interest(peer)
        if not budget.over(self._held) or self._shedding:
            return
        self._shedding = True
        try:
            while budget.over(self._held):  # spec: NODE-14
                chosen = budget.victim((p.id, p.held) for p in self._peers.values())
                if chosen is None:
                    break
                worst = self._peers[chosen]
                log.warning(
                    "memory: %d bytes held in buffers, over the budget of %d: closing peer %d, "
                    "which holds %d",
                    self._held,
                    budget.budget,
                    worst.id,
                    worst.held,
                )
                self._handle(worst, NodeLimit(CloseReason.MEMORY_BUDGET))  # spec: NODE-14
                if worst.id in self._peers:
                    break  # cannot happen: the machine closes at once; never loop on it
        finally:
            self._shedding = False

    # ---- inside: the machine's actions -------------------------------------------------

    def _handle(self, peer: _Peer, event: Event) -> None:
        """Feed an event to a peer's machine and carry out its actions. An event that arises
        while a batch of actions is being carried out (a send that fails, a callback that
        closes) waits until that batch is done, so every batch is carried out whole and in
        order, against the machine that returned it."""
        self._inbox.append((peer, event))  # spec: NODE-8
        if self._draining:
            return
        self._draining = True
        try:
            while self._inbox:
                target, pending = self._inbox.popleft()
                if target.id in self._peers:
                    self._perform(target, target.machine.handle(pending, self.loop.clock()))
        finally:
            self._draining = False
        self._flush_queued()
        if self._budget.near(self._held + self.events.held_bytes):
            self._check_budget()

    def _flush_queued(self) -> None:
        """Write what the events just handled queued: one send per connection, not one per
        frame."""
        while self._unflushed:
            _, peer = self._unflushed.popitem()
            if peer.id in self._peers:
                self._flush(peer)

    def _perform(self, peer: _Peer, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendBytes):
                self._queue(peer, action.data)
            elif isinstance(action, CloseTransport):
                self._log_closing(peer)
                peer.ending = True
                if peer.sock is not None and not peer.send_queue:
                    self._end_sending(peer)
            elif isinstance(action, AbortTransport):
                self._log_closing(peer)
                self._release_socket(peer)
            elif isinstance(action, ArmTimer):
                self._arm(peer, action.timer, action.deadline)
            elif isinstance(action, CancelTimer):
                handle = peer.timers.pop(action.timer, None)
                if handle is not None:
                    self.loop.cancel(handle)
            elif isinstance(action, ReleaseNonce):
                self.nonces.release(action.nonce)  # spec: HS-13
            else:
                self._tell(peer, action)
        if peer.overflow and peer.machine.is_open:
            peer.overflow = False
            self._handle(peer, NodeLimit(CloseReason.SEND_QUEUE_FULL))
        if peer.live and not peer.machine.is_live:
            peer.live = False
            reason = peer.machine.close_reason or CloseReason.NETWORK_ERROR
            self._decide(mgr.CloseBegan(peer.id, reason))  # spec: LIM-12 (no longer counts)
        if peer.id in self._peers:
            self._account(peer)
            # A connection with bytes to write is looked at again once they are written: one
            # change of what the selector watches, not one now and one after.
            if peer.id not in self._unflushed and (peer.machine.is_live or peer.machine.is_closing):
                self._update_interest(peer)

    def _log_closing(self, peer: _Peer) -> None:
        reason = peer.machine.close_reason
        if reason is not None and not peer.ending:
            log.info(
                "peer %d %s %s closing: %s (%s)",
                peer.id,
                peer.label,
                peer.machine.direction.value,
                reason.label,
                reason.requirement,
                extra=_fields(peer, "closing", reason=reason.label, requirement=reason.requirement),
            )

    def _queue(self, peer: _Peer, data: bytes) -> None:
        if peer.sock is None:
            return
        limit = self._max_send_queue
        queued = len(peer.send_queue)
        open_state = peer.machine.is_open
        if open_state and (peer.overflow or queued + len(data) > limit):  # spec: NODE-2
            peer.overflow = True
            return
        peer.send_queue.append(data)
        if not queued:
            peer.progress_at = self.loop.clock()  # spec: NODE-11 (waiting from now)
            # Written once the events being handled are done, without waiting for the
            # next readiness.
            self._unflushed[peer.id] = peer

    def _arm(self, peer: _Peer, timer: Timer, deadline: float) -> None:
        if peer.id not in self._peers:
            return  # closed already: its timers are gone
        old = peer.timers.pop(timer, None)
        if old is not None:
            self.loop.cancel(old)
        peer.timers[timer] = self.loop.call_at(deadline, self._on_timer, peer.id, timer)

    def _timer_fired(self, peer_id: int, timer: Timer) -> None:
        peer = self._peers.get(peer_id)
        if peer is None:
            return
        peer.timers.pop(timer, None)
        if timer in SILENCE_TIMERS and peer.sock is not None and peer.machine.reads:
            # What the peer sent and we have not read yet counts: read it first, even while
            # reading from it is paused, then let the machine judge.
            if not peer.eof_seen:
                self._read(peer, SILENCE_READ)  # spec: NODE-12
            if peer.id not in self._peers:
                return
        self._handle(peer, TimerExpired(timer))

    def _tell(self, peer: _Peer, event: AppEvent) -> None:
        if isinstance(event, Established):
            n = event.negotiated
            log.info(
                "peer %d %s %s established: version %d, features %#x (%s), privacy features %#x "
                "(%s), user agent %r%s",
                peer.id,
                peer.label,
                peer.machine.direction.value,
                n.version,
                n.features,
                " ".join(flag_names(Feature, n.features)) or "none",
                n.privacy_features,
                " ".join(flag_names(PrivacyFeature, n.privacy_features)) or "none",
                n.peer_user_agent,
                ""
                if event.session_id is None
                else f", encrypted, session id {event.session_id.hex()}",
                extra=_fields(
                    peer,
                    "established",
                    version=n.version,
                    features=flag_names(Feature, n.features),
                    privacy_features=flag_names(PrivacyFeature, n.privacy_features),
                    user_agent=n.peer_user_agent,
                    session_id=None if event.session_id is None else event.session_id.hex(),
                ),
            )
            self._decide(mgr.Established(peer.id, n.features, event.dialler_nonce))
        elif isinstance(event, RttMeasured):
            log.debug(
                "peer %d %s rtt %.1f ms",
                peer.id,
                peer.label,
                1000 * event.seconds,
                extra=_fields(peer, "rtt", rtt=event.seconds),
            )
            self._decide(mgr.RttMeasured(peer.id, event.seconds))
        elif isinstance(event, Misbehaviour):
            log.warning(
                "peer %d %s misbehaved: %s (%s): %s",
                peer.id,
                peer.label,
                event.reason.label,
                event.requirement,
                event.detail,
                extra=_fields(
                    peer, "misbehaved", reason=event.reason.label, requirement=event.requirement
                ),
            )
            self._decide(mgr.Misbehaved(peer.id, event.requirement))  # spec: BAN-1
        elif isinstance(event, Closed):
            self._closed(peer, event)
        delivered = NodeEvent(peer.id, peer.label, event)
        if self._on_event is not None:
            self._on_event(delivered)
        else:
            self.events.append(delivered)
            if self.events.waiting(peer.id) >= PEER_EVENT_LIMIT:  # spec: NODE-13
                peer.app_behind = True
            if not self._budget.events_full and self._budget.update_events(self.events.held_bytes):
                self._events_filled()  # spec: NODE-17

    def _closed(self, peer: _Peer, event: Closed) -> None:
        said = "" if event.peer_reason is None else f", peer's reason {_reason(event.peer_reason)}"
        log.info(
            "peer %d %s %s closed: %s (%s)%s: %s",
            peer.id,
            peer.label,
            peer.machine.direction.value,
            event.reason.label,
            event.reason.requirement,
            said,
            event.detail,
            extra=_fields(
                peer,
                "closed",
                reason=event.reason.label,
                requirement=event.reason.requirement,
                peer_reason=None
                if event.peer_reason is None
                else _reason_name(event.peer_reason) or event.peer_reason,
            ),
        )
        for handle in peer.timers.values():
            self.loop.cancel(handle)
        peer.timers.clear()
        if peer.stall_check is not None:
            self.loop.cancel(peer.stall_check)
        self._release_socket(peer)
        self._held -= peer.held
        peer.held = 0
        self._readable.pop(peer.id, None)
        del self._peers[peer.id]
        self._open[peer.machine.direction] -= 1
        self._decide(mgr.Closed(peer.id, event.reason, event.peer_reason))
        if peer.kind is not PeerType.INBOUND:
            self._log_next_attempt(peer.address)

    def _log_next_attempt(self, address: Address) -> None:
        """After a failed dial or a lost connection, say when the address is tried again:
        the operator sees the backoff grow (spec/manager.md section 8, RECO-4). A close the
        node asked for, or an address that left the book, schedules nothing."""
        entry = self.manager.book.get(address)
        now = self.loop.clock()
        if entry is None or entry.failures == 0 or not now < entry.next_attempt < math.inf:
            return
        log.info(
            "next attempt to %s in %.3f s (failure %d)",
            entry.text,
            entry.next_attempt - now,
            entry.failures,
            extra={"event": "next_attempt", "address": entry.text},
        )

    # ---- inside: the manager's decisions -----------------------------------------------

    def _load_bans(self) -> BanList:
        """The bans of the ban file, or none without a data_dir (spec: BAN-7, BAN-8)."""
        if self._ban_file is None:
            return BanList()
        try:
            document = read_ban_document(self._ban_file)
            if document is None:
                return BanList()
            return BanList.from_document(document, self._wall_clock())  # spec: BAN-7
        except NotABanFile as exc:  # spec: BAN-8 (named, never a traceback)
            raise BanFileError(f"ban file {self._ban_file}: {exc}") from None

    def _decide(self, fact: Fact) -> None:
        """Tell the manager a fact and carry out its decisions, in order. A fact that arises
        while decisions are carried out (a dial reports Opened) waits for them, as NODE-8
        has events wait for a machine's actions."""
        self._facts.append(fact)
        if self._deciding:
            return
        self._deciding = True
        try:
            while self._facts:
                now, wall = self.loop.clock(), self._wall_clock()
                for decision in self.manager.handle(self._facts.popleft(), now, wall):
                    self._carry_out(decision)
        finally:
            self._deciding = False

    def _save_bans(self) -> None:
        document, self._bans_to_save = self._bans_to_save, None
        if self._ban_file is None or document is None:
            return
        try:
            write_ban_document(self._ban_file, document)  # spec: BAN-6
        except BanFileError as exc:
            log.error("%s", exc)

    def _carry_out(self, decision: Decision) -> None:
        if isinstance(decision, mgr.WakeAt):
            if self._wake is not None:
                if self._wake.deadline == decision.time and not self._wake.cancelled:
                    return  # armed for that time already: most facts leave it unchanged
                self.loop.cancel(self._wake)
            if not self._shutting_down:
                self._wake = self.loop.call_at(decision.time, lambda: self._decide(mgr.Tick()))
        elif isinstance(decision, mgr.Dial):
            if not self._shutting_down:
                self._dial(decision.address, decision.type)
        elif isinstance(decision, mgr.SaveBans):
            if self._ban_file is not None:
                # Written at the end of this pass, once however many bans it made: a flood
                # of misbehaving peers must not cost a write to the disk each.
                if self._bans_to_save is None:
                    self.loop.call_at(self.loop.clock(), self._save_bans)
                self._bans_to_save = decision.document
        else:
            peer = self._peers.get(decision.peer)
            if peer is None:
                return
            if isinstance(decision, mgr.Admit):
                self._update_interest(peer)
            elif isinstance(decision, mgr.Refuse):
                peer.refused = True  # spec: NODE-4 (closed once its Disconnect is written)
                self._handle(peer, CloseRequested(decision.reason))
            elif peer.machine.is_live:  # Evict
                # spec: NODE-4 (one evicted for a newcomer is not waited for either)
                peer.refused = decision.reason in (CloseReason.EVICTED, CloseReason.BANNED)
                self._handle(peer, CloseRequested(decision.reason))
