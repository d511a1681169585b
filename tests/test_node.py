"""Nodes on real loopback sockets: spec/node.md, and the machines' rules end to end.

Several nodes share one loop, so each test runs in one thread; raw sockets play the peers that
misbehave. Every wait is bounded, and every address is on 127.0.0.0/8.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from obscura_ref.config import NodeConfig, load
from obscura_ref.loop import EventLoop
from obscura_ref.machines.connection import ConnState
from obscura_ref.machines.events import Closed, Established, MessageReceived, RttMeasured
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.node import Node, NodeError, NodeEvent
from obscura_ref.wire import (
    Disconnect,
    Frame,
    Handshake,
    MessageType,
    Opaque,
    Ping,
    Pong,
    decode_frames,
    encode_frame,
)

FAST = [
    "ping_interval=0.3",
    "ping_timeout=0.2",
    "handshake_timeout=0.6",
    "close_timeout=1",
    "connection_timeout=2",
    "reconnect_interval=0.2",
]


def fast(*more: str) -> NodeConfig:
    return load(None, [*FAST, *more])


class Network:
    """Nodes sharing one loop; ``run`` drives them all until a condition holds."""

    def __init__(self) -> None:
        self.loop = EventLoop()
        self.nodes: list[Node] = []

    def node(self, config: NodeConfig | None = None) -> Node:
        node = Node(config or fast(), loop=self.loop)
        self.nodes.append(node)
        return node

    def run(self, done: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            self.loop.run_once(0.02)
        return True

    def close(self) -> None:
        for node in self.nodes:
            node.shutdown(0.5)
        self.loop.close()


@pytest.fixture
def net() -> Iterator[Network]:
    network = Network()
    yield network
    network.close()


def kinds(node: Node) -> list[str]:
    return [type(e.event).__name__ for e in node.events]


def closes(node: Node) -> list[Closed]:
    return [e.event for e in node.events if isinstance(e.event, Closed)]


def established(node: Node, peer: int) -> bool:
    state = node.state_of(peer)
    return state is not None and state.value == "established"


class RawPeer:
    """A peer that is only a socket: it sends what the test says and records what arrives."""

    def __init__(self, address: tuple[str, int] | socket.socket, source: str = "127.0.0.1") -> None:
        """Connect to ``address``, or play the peer on a socket the test accepted."""
        if isinstance(address, socket.socket):
            self.sock = address
            self.sock.setblocking(False)
        else:
            self.sock = socket.socket()
            self.sock.bind((source, 0))
            self.sock.setblocking(False)
            self.sock.connect_ex(address)
        self.received = bytearray()
        self.ended = False

    def send(self, data: bytes) -> None:
        self.sock.setblocking(True)
        self.sock.sendall(data)
        self.sock.setblocking(False)

    def poll(self) -> bool:
        """Read what has arrived; True once the node has ended the stream or reset it."""
        while not self.ended:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                break
            except ConnectionResetError:
                self.ended = True
                break
            if not chunk:
                self.ended = True
            self.received += chunk
        return self.ended

    def messages(self) -> list[object]:
        frames, _ = decode_frames(bytes(self.received))
        return [frame.message for frame in frames]

    def close(self) -> None:
        self.sock.close()


def handshake_from(nonce: int) -> bytes:
    return encode_frame(Handshake(1, int(time.time()), 1, 0, "raw/1", bytes(32), 0, nonce))


@pytest.mark.spec("NODE-4", "CONN-20", "CONN-22", "KA-4")
def test_two_nodes_handshake_ping_and_close_with_reasons_on_both_sides(net: Network) -> None:
    a, b = net.node(fast("close_timeout=30")), net.node(fast("close_timeout=30"))
    host, port = b.listen("127.0.0.2", 0)
    peer = a.connect(host, port)
    assert net.run(lambda: established(a, peer) and b.inbound_count() == 1)
    # Pings flow both ways and measure the round trip.
    assert net.run(lambda: "RttMeasured" in kinds(a) and "RttMeasured" in kinds(b))
    rtt = next(e.event for e in a.events if isinstance(e.event, RttMeasured))
    assert 0 <= rtt.seconds < 0.2
    a.send(peer, Opaque(MessageType.Blocks, b"a block"))
    assert net.run(lambda: "MessageReceived" in kinds(b))
    received = [e.event for e in b.events if isinstance(e.event, MessageReceived)]
    assert received[0].message == Opaque(MessageType.Blocks, b"a block")
    a.close(peer)
    # Both sockets close long before close_timeout: each side ends its sending side once its
    # queue is written, and so tells the other that it may close (NODE-4).
    assert net.run(lambda: not a.peer_ids and not b.peer_ids, timeout=10)
    assert [c.reason for c in closes(a)] == [CloseReason.REQUESTED]
    (b_closed,) = closes(b)
    assert b_closed.reason is CloseReason.PEER_DISCONNECTED
    assert b_closed.peer_reason == CloseReason.REQUESTED.code


@pytest.mark.spec("NODE-1", "NODE-5")
def test_ten_nodes_on_ten_address_groups_connect_ping_and_shut_down(net: Network) -> None:
    nodes = [net.node() for _ in range(10)]
    addresses = [node.listen(f"127.{10 + i}.0.1", 0) for i, node in enumerate(nodes)]
    links = []
    for i, node in enumerate(nodes):  # each node opens two connections, to the next two
        for step in (1, 2):
            host, port = addresses[(i + step) % 10]
            links.append((node, node.connect(host, port)))
    assert net.run(lambda: all(established(node, peer) for node, peer in links))
    assert all(node.inbound_count() == 2 for node in nodes)
    assert net.run(lambda: all("RttMeasured" in kinds(node) for node in nodes))
    groups = {row.address.split(".")[1] for node in nodes for row in node.status()}
    assert len(groups) == 10
    # The first node stops: its peers see its reason; the others keep their connections.
    assert nodes[0].shutdown(2.0)
    # Node 0 had connections to 1 and 2 (its own) and from 8 and 9.
    expected = {1: 3, 2: 3, 8: 3, 9: 3}
    assert net.run(lambda: all(len(nodes[i].status()) == expected.get(i, 4) for i in range(1, 10)))
    told = [c for node in nodes[1:] for c in closes(node)]
    assert len(told) == 4
    assert {c.peer_reason for c in told} == {CloseReason.SHUTTING_DOWN.code}
    assert {c.reason for c in closes(nodes[0])} == {CloseReason.SHUTTING_DOWN}


@pytest.mark.spec("NODE-1", "CONN-30")
def test_garbage_from_one_peer_closes_it_alone(net: Network) -> None:
    a, b = net.node(), net.node()
    address = b.listen("127.0.0.2", 0)
    peer = a.connect(*address)
    assert net.run(lambda: established(a, peer))
    # From an address of its own: the garbage bans the junk's address (BAN-2), not a's.
    junk = RawPeer(address, source="127.3.0.1")
    assert net.run(lambda: b.inbound_count() == 2)
    junk.send(b"OBX\x00GET / HTTP/1.1\r\nHost: example\r\n\r\n")  # the magic: plaintext
    assert net.run(junk.poll)
    assert junk.messages() == [Disconnect(CloseReason.INVALID_MESSAGE.code)]
    rtts_before = kinds(a).count("RttMeasured")
    assert net.run(lambda: kinds(a).count("RttMeasured") > rtts_before)  # a and b go on
    assert established(a, peer)
    junk.close()  # b ended its side and waits for junk's end (NODE-4) before it closes
    assert net.run(lambda: bool(closes(b)))
    assert [c.reason for c in closes(b)] == [CloseReason.INVALID_MESSAGE]


@pytest.mark.spec("NODE-1", "HS-22")
def test_a_silent_peer_is_closed_at_the_handshake_timeout(net: Network) -> None:
    a, b = net.node(), net.node()
    address = b.listen("127.0.0.2", 0)
    silent = RawPeer(address)
    peer = a.connect(*address)
    started = time.monotonic()
    assert net.run(silent.poll, timeout=3)
    waited = time.monotonic() - started
    assert 0.5 <= waited < 2.0  # handshake_timeout is 0.6 s
    assert silent.messages() == [Disconnect(CloseReason.HANDSHAKE_TIMEOUT.code)]
    assert established(a, peer)  # the node served the other connection meanwhile
    silent.close()


@pytest.mark.spec("NODE-2")
def test_a_peer_that_stops_reading_is_closed_when_its_queue_is_full(net: Network) -> None:
    limit = 256 * 1024
    b = net.node(fast(f"max_send_queue={limit}", "ping_interval=30", "ping_timeout=10"))
    address = b.listen("127.0.0.2", 0)
    sink = RawPeer(address)
    sink.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.send(handshake_from(7))
    assert net.run(lambda: any(isinstance(e.event, Established) for e in b.events))
    (peer,) = b.peer_ids
    peaks = []
    for _ in range(400):  # 400 x 64 KiB offered; the sink reads nothing
        if b.state_of(peer) is None:
            break
        b.send(peer, Opaque(MessageType.Blocks, bytes(64 * 1024)))
        peaks.append(max((row.send_queue for row in b.status()), default=0))
        net.loop.run_once(0)
    assert max(peaks) <= limit  # memory stayed bounded
    assert net.run(lambda: bool(closes(b)))
    assert [c.reason for c in closes(b)] == [CloseReason.SEND_QUEUE_FULL]
    sink.close()


@pytest.mark.spec("NODE-1", "LIM-16", "LIM-17")
def test_a_thousand_connections_at_once(net: Network, descriptors: None) -> None:
    a = net.node()
    b = net.node(
        fast("max_inbound_connections=1001", "max_total_connections=1001", "handshake_timeout=20")
    )
    address = b.listen("127.0.0.2", 0)
    peer = a.connect(*address)
    assert net.run(lambda: established(a, peer))
    crowd = [RawPeer(address, source=f"127.1.{i // 250}.{1 + i % 250}") for i in range(1000)]
    assert net.run(lambda: b.inbound_count() == 1001, timeout=20)
    before = kinds(a).count("RttMeasured")
    assert net.run(lambda: kinds(a).count("RttMeasured") > before)  # still served
    # One more, from another group, gets in: one of the crowd's group is evicted for it, the
    # most recently accepted of them (none has a handshake or a score), and is told why.
    extra = RawPeer(address, source="127.9.0.1")
    assert net.run(lambda: any(raw.poll() for raw in crowd[-10:]))
    evicted = [raw for raw in crowd if raw.ended]
    assert [raw.messages() for raw in evicted] == [[Disconnect(CloseReason.EVICTED.code)]]
    assert evicted == [crowd[-1]]
    assert extra.poll() is False and b.inbound_count() == 1001
    assert established(a, peer)
    for raw in crowd:
        raw.close()
    extra.close()
    assert net.run(lambda: b.inbound_count() == 1, timeout=20)  # a's connection remains
    reasons = {c.reason for c in closes(b)}
    assert reasons <= {CloseReason.PEER_CLOSED, CloseReason.EVICTED}
    assert established(a, peer)


@pytest.mark.spec("LIM-13")
def test_the_outbound_limit_refuses_a_connection(net: Network) -> None:
    a = net.node(fast("max_outbound_connections=1"))
    b, c = net.node(), net.node()
    a.connect(*b.listen("127.0.0.2", 0))
    with pytest.raises(NodeError, match="not dialled now"):
        a.connect(*c.listen("127.0.0.3", 0))
    assert a.outbound_count() == 1


@pytest.mark.spec("RECO-5")
def test_a_persistent_connection_is_opened_again(net: Network) -> None:
    a, b = net.node(), net.node()
    address = b.listen("127.0.0.2", 0)
    first = a.connect(*address, persistent=True)
    assert net.run(lambda: established(a, first) and b.inbound_count() == 1)
    (inbound,) = b.peer_ids
    b.close(inbound)  # the peer closes it: a reconnects after reconnect_interval
    assert net.run(lambda: any(established(a, p) for p in a.peer_ids if p != first))
    assert [c.reason for c in closes(a)] == [CloseReason.PEER_DISCONNECTED]
    (second,) = a.peer_ids
    a.close(second)  # closed locally: not reopened
    assert net.run(lambda: not a.peer_ids)
    net.run(lambda: False, timeout=0.5)
    assert a.peer_ids == []


class RawListener:
    """A listening socket that plays the peers a node connects to."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.address: tuple[str, int] = self.sock.getsockname()
        self.accepted: list[RawPeer] = []

    def poll(self) -> bool:
        """Accept what has arrived; True once a connection is waiting in ``accepted``."""
        while True:
            try:
                sock, _ = self.sock.accept()
            except BlockingIOError:
                return bool(self.accepted)
            self.accepted.append(RawPeer(sock))

    def close(self) -> None:
        for raw in self.accepted:
            raw.close()
        self.sock.close()


def answer_handshake(net: Network, raw: RawPeer, nonce: int) -> None:
    """Wait for the node's handshake on ``raw``, then answer it as a responder."""
    assert net.run(lambda: raw.poll() or bool(raw.messages()))
    assert isinstance(raw.messages()[0], Handshake)
    raw.send(handshake_from(nonce))


@pytest.mark.spec("RECO-4", "RECO-5", "RECO-8")
def test_a_persistent_connection_waits_its_backoff_and_a_local_close_is_final(
    net: Network,
) -> None:
    interval = 0.8
    # No pings: nothing unread is left in the test's socket when it closes, so the node sees
    # an end of stream (peer_closed), not a reset.
    a = net.node(fast(f"reconnect_interval={interval}", "ping_interval=30", "ping_timeout=10"))
    listener = RawListener("127.0.0.3")
    first = a.connect(*listener.address, persistent=True)
    assert net.run(listener.poll)
    raw = listener.accepted.pop()
    answer_handshake(net, raw, 21)
    assert net.run(lambda: established(a, first))
    assert raw.poll() is False and len(raw.messages()) == 1  # only the node's handshake
    closed_at = time.monotonic()
    raw.close()  # the peer closes, not the node: RECO-5 opens the connection again
    assert net.run(lambda: bool(closes(a)))
    assert [c.reason for c in closes(a)] == [CloseReason.PEER_CLOSED]
    assert net.run(listener.poll, timeout=interval + 10)  # it does come back ...
    waited = time.monotonic() - closed_at
    # ... but not before delay(1), reconnect_interval with its jitter of at most a quarter
    assert waited >= 0.75 * interval - 0.02
    # The second connection is closed locally (requested): it is not opened again.
    raw = listener.accepted.pop()
    answer_handshake(net, raw, 22)
    (second,) = a.peer_ids
    assert net.run(lambda: established(a, second))
    a.close(second)
    assert net.run(raw.poll)
    assert raw.messages()[-1] == Disconnect(CloseReason.REQUESTED.code)
    raw.close()
    assert net.run(lambda: not a.peer_ids)
    assert [c.reason for c in closes(a)] == [CloseReason.PEER_CLOSED, CloseReason.REQUESTED]
    net.run(listener.poll, timeout=2 * interval + 0.5)
    assert listener.accepted == [] and a.peer_ids == []
    listener.close()


@pytest.mark.spec("HS-12", "HS-13")
def test_a_node_connected_to_its_own_address_closes_both_sides_with_self_connection(
    net: Network,
) -> None:
    node = net.node()
    # Listening on every address, dialling 127.0.0.1: not one of its listening addresses, so
    # RECO-2 lets the dial through, and the handshake must catch it.
    _, port = node.listen("0.0.0.0", 0)
    outbound = node.connect("127.0.0.1", port)
    assert net.run(
        lambda: "Established" in kinds(node) or (len(closes(node)) == 2 and not node.peer_ids)
    )
    assert "Established" not in kinds(node)
    closed = {e.peer: e.event for e in node.events if isinstance(e.event, Closed)}
    (inbound,) = set(closed) - {outbound}
    # The responder (inbound) side detects it: it checks version, then nonce (handshake.md
    # table 3.1), and the initiator's nonce is still in the node's set, since the initiator's
    # handshake is outstanding until it completes or closes (HS-13). The initiator (outbound)
    # side never gets a handshake back: it hears the responder's Disconnect with that reason.
    assert closed[inbound].reason is CloseReason.SELF_CONNECTION
    assert closed[outbound].reason is CloseReason.PEER_DISCONNECTED
    assert closed[outbound].peer_reason == CloseReason.SELF_CONNECTION.code
    assert len(node.nonces) == 0  # both nonces released at the close


@pytest.mark.spec("CONN-34")
def test_a_refused_connect_is_a_network_error(net: Network) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    a = net.node()
    a.connect("127.0.0.1", port)
    assert net.run(lambda: bool(closes(a)))
    (closed,) = closes(a)
    assert closed.reason is CloseReason.NETWORK_ERROR and "ECONNREFUSED" in closed.detail


def test_a_callback_receives_the_events() -> None:
    seen: list[NodeEvent] = []
    loop = EventLoop()
    a = Node(fast(), loop=loop, on_event=seen.append)
    b = Node(fast(), loop=loop)
    peer = a.connect(*b.listen("127.0.0.2", 0))
    deadline = time.monotonic() + 5
    while not established(a, peer) and time.monotonic() < deadline:
        loop.run_once(0.02)
    assert [type(e.event) for e in seen] == [Established] and not a.events
    a.shutdown(1)
    b.shutdown(1)
    loop.close()


@pytest.mark.spec("KA-3")
def test_a_peer_that_never_answers_pings_is_closed(net: Network) -> None:
    b = net.node()
    address = b.listen("127.0.0.2", 0)
    mute = RawPeer(address)
    mute.send(handshake_from(9))
    assert net.run(mute.poll, timeout=3)
    sent = mute.messages()
    assert isinstance(sent[0], Handshake) and isinstance(sent[1], Ping)
    assert sent[-1] == Disconnect(CloseReason.PING_TIMEOUT.code)
    mute.close()


@pytest.mark.spec("NODE-3")
def test_reads_are_bounded_per_readiness(net: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    from obscura_ref.machines.connection import PeerConnection
    from obscura_ref.machines.events import BytesReceived
    from obscura_ref.node import READ_CHUNK

    sizes: list[int] = []
    original = PeerConnection.handle

    def recording(self: PeerConnection, event: object, now: float) -> object:
        if isinstance(event, BytesReceived):
            sizes.append(len(event.data))
        return original(self, event, now)  # type: ignore[arg-type]

    monkeypatch.setattr(PeerConnection, "handle", recording)
    b = net.node()
    address = b.listen("127.0.0.2", 0)
    flood = RawPeer(address)
    flood.send(handshake_from(3) + encode_frame(Opaque(MessageType.Blocks, bytes(1_000_000))))
    assert net.run(lambda: "MessageReceived" in kinds(b))
    assert sum(sizes) > 1_000_000 and max(sizes) <= READ_CHUNK
    flood.close()


def waiting_messages(node: Node, peer: int) -> int:
    return sum(e.peer == peer and isinstance(e.event, MessageReceived) for e in node.events)


@pytest.mark.spec("NODE-13")
def test_reading_pauses_only_for_the_connection_the_application_is_behind_on(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("obscura_ref.node.PEER_EVENT_LIMIT", 40)
    b = net.node(fast("ping_interval=30", "ping_timeout=10"))
    address = b.listen("127.0.0.2", 0)
    chatty, quiet = RawPeer(address), RawPeer(address)
    message = encode_frame(Opaque(MessageType.Inv, b"x"))
    chatty.send(handshake_from(4))
    quiet.send(handshake_from(5))
    assert net.run(lambda: kinds(b).count("Established") == 2)
    by_port = {int(row.address.rsplit(":", 1)[1]): row.peer for row in b.status()}
    chatty_id = by_port[chatty.sock.getsockname()[1]]
    quiet_id = by_port[quiet.sock.getsockname()[1]]
    chatty.send(message * 100)
    assert net.run(lambda: b.events.waiting(chatty_id) >= 40)
    net.run(lambda: False, timeout=0.3)
    held = waiting_messages(b, chatty_id)
    chatty.send(message * 100)  # while paused, this waits in the kernel, not in the node
    quiet.send(message * 5)  # the other connection is read as before
    assert net.run(lambda: waiting_messages(b, quiet_id) == 5)
    net.run(lambda: False, timeout=0.3)
    assert waiting_messages(b, chatty_id) == held and held <= 101
    # The application takes events until at most half the limit of chatty's wait: it resumes.
    while b.events.waiting(chatty_id) > 20:
        b.events.popleft()
    taken = held - waiting_messages(b, chatty_id)
    assert net.run(lambda: waiting_messages(b, chatty_id) + taken >= 120)
    chatty.close()
    quiet.close()


@pytest.mark.spec("NODE-13")
def test_the_pause_holds_with_many_ready_peers(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("obscura_ref.node.PEER_EVENT_LIMIT", 40)
    b = net.node(fast("ping_interval=30", "ping_timeout=10"))
    address = b.listen("127.0.0.2", 0)
    peers = [RawPeer(address) for _ in range(10)]
    message = encode_frame(Opaque(MessageType.Inv, b"x"))
    for index, raw in enumerate(peers):
        raw.send(handshake_from(200 + index))
    assert net.run(lambda: len(b.events) >= 10)
    b.events.clear()
    for raw in peers:
        raw.send(message * 100)
    net.run(lambda: False, timeout=0.3)
    for raw in peers:
        raw.send(message * 100)  # each connection is paused: this waits in the kernel
    net.run(lambda: False, timeout=0.5)
    for peer in b.peer_ids:  # the cap, and at most what one read delivered
        assert 40 <= waiting_messages(b, peer) <= 100
    for raw in peers:
        raw.close()


@pytest.fixture
def descriptors() -> Iterator[None]:
    """Room for a few thousand sockets in this process, given back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.spec("LIM-16", "NODE-4")
def test_a_thousand_attempts_against_the_default_limit(net: Network, descriptors: None) -> None:
    b = net.node(fast("handshake_timeout=20", "close_timeout=30"))
    address = b.listen("127.0.0.2", 0)
    crowd = [RawPeer(address, source=f"127.1.{i // 250}.{1 + i % 250}") for i in range(1000)]
    limit = b.config.max_inbound_connections
    # Every newcomer evicts one of the crowd (all in one group, none with a handshake); the
    # evicted are told why and closed at once, without waiting close_timeout for them.
    assert net.run(lambda: sum(raw.poll() for raw in crowd) >= 1000 - limit, timeout=20)
    evicted = [raw for raw in crowd if raw.ended]
    assert len(evicted) == 1000 - limit
    assert all(raw.messages() == [Disconnect(CloseReason.EVICTED.code)] for raw in evicted)
    assert b.inbound_count() == limit
    for raw in crowd:
        raw.close()
    assert net.run(lambda: b.inbound_count() == 0, timeout=20)
    assert net.loop.timers_pending == 1  # nothing of them is left: only the manager's wake-up


@pytest.mark.spec("NODE-4")
def test_a_closing_connection_ends_its_side_and_waits_for_the_peers_end(net: Network) -> None:
    b = net.node(fast("close_timeout=30", "ping_interval=30", "ping_timeout=10"))
    raw = RawPeer(b.listen("127.0.0.2", 0))
    raw.send(handshake_from(12))
    assert net.run(lambda: "Established" in kinds(b))
    (peer,) = b.peer_ids
    big = Opaque(MessageType.Blocks, bytes(8_000_000))
    b.send(peer, big)
    assert b.status()[0].send_queue > 0  # more than the kernel takes: part of it waits in b
    b.close(peer)
    assert net.run(raw.poll)  # all that was queued, the Disconnect, then the end of b's side
    assert raw.messages()[-2:] == [big, Disconnect(CloseReason.REQUESTED.code)]
    heard = len(raw.received)
    # b keeps its socket, reading and discarding (no pong), until raw ends its side.
    raw.send(encode_frame(Ping(13)))
    net.run(lambda: False, timeout=0.5)
    assert b.state_of(peer) is ConnState.CLOSING and not closes(b)
    assert raw.sock.recv(1) == b"" and len(raw.received) == heard  # no reset, nothing more
    raw.close()
    assert net.run(lambda: not b.peer_ids, timeout=10)  # long before close_timeout
    assert [c.reason for c in closes(b)] == [CloseReason.REQUESTED]


@pytest.mark.spec("NODE-8")
def test_connections_that_come_and_go_leave_no_timer_and_events_stay_in_order(
    net: Network,
) -> None:
    b = net.node()
    address = b.listen("127.0.0.2", 0)
    for index in range(100):
        raw = RawPeer(address)
        raw.send(handshake_from(index + 100))
        if index % 2:  # half are reset right after their handshake
            raw.sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        raw.close()
    assert net.run(lambda: len(closes(b)) == 100 and not b.peer_ids, timeout=10)
    assert net.loop.timers_pending == 1  # the manager's own wake-up only
    seen: dict[int, list[str]] = {}
    for event in b.events:
        seen.setdefault(event.peer, []).append(type(event.event).__name__)
    for kinds_of_peer in seen.values():
        assert kinds_of_peer[-1] == "Closed" and kinds_of_peer.count("Closed") == 1


@pytest.mark.spec("NODE-8", "CONN-25")
def test_a_callback_that_closes_mid_batch_sends_nothing_after_the_disconnect() -> None:
    loop = EventLoop()
    closer: list[Node] = []

    def on_event(event: NodeEvent) -> None:
        if isinstance(event.event, MessageReceived):
            closer[0].close(event.peer)

    b = Node(fast(), loop=loop, on_event=on_event)
    closer.append(b)
    address = b.listen("127.0.0.2", 0)
    raw = RawPeer(address)
    raw.send(handshake_from(5))
    deadline = time.monotonic() + 5
    while not b.peer_ids and time.monotonic() < deadline:
        loop.run_once(0.02)
    raw.send(encode_frame(Opaque(MessageType.Inv, b"x")) + encode_frame(Ping(77)))
    while not raw.poll() and time.monotonic() < deadline:
        loop.run_once(0.02)
    names = [type(m).__name__ for m in raw.messages()]
    assert names == ["Handshake", "Pong", "Disconnect"]
    raw.close()
    b.shutdown(1)
    loop.close()


@pytest.mark.spec("PRIV-1", "PRIV-2")
@pytest.mark.parametrize(("level", "padded"), [("standard", True), ("none", False)])
def test_the_privacy_level_reaches_the_wire(net: Network, level: str, padded: bool) -> None:
    b = net.node(fast(f"privacy_level={level}", "ping_interval=30", "ping_timeout=10"))
    raw = RawPeer(b.listen("127.0.0.2", 0))
    raw.send(handshake_from(6) + encode_frame(Ping(8)))

    def frames(count: int) -> Callable[[], bool]:
        def arrived() -> bool:
            raw.poll()
            return len(decode_frames(bytes(raw.received))[0]) >= count

        return arrived

    assert net.run(frames(2))
    (peer,) = b.peer_ids
    b.send(peer, Opaque(MessageType.Inv, b"app"))
    assert net.run(frames(3))
    handshake, pong, app = decode_frames(bytes(raw.received))[0][:3]
    assert pong.message == Pong(8)
    # A pong's 8-byte nonce is padded to 64 bytes (56 of padding) under standard, not at all
    # under none; a handshake gets 0 to 32 bytes under standard, none under none.
    assert len(pong.padding) == (56 if padded else 0)
    assert len(handshake.padding) <= (32 if padded else 0)
    # An opaque message is sent as given at every level (under standard, its 3 bytes would
    # otherwise have been padded to 64).
    assert app == Frame(Opaque(MessageType.Inv, b"app"), b"")
    raw.close()


@pytest.mark.spec("NODE-7")
def test_running_out_of_descriptors_rests_the_listener(
    net: Network, descriptors: None, caplog: pytest.LogCaptureFixture
) -> None:
    b = net.node()
    address = b.listen("127.0.0.2", 0)
    crowd = [RawPeer(address) for _ in range(40)]
    time.sleep(0.1)  # all 40 wait in the backlog
    open_now = len(os.listdir("/proc/self/fd"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 5, hard))
    try:
        with caplog.at_level("WARNING", logger="obscura_ref.node"):
            net.run(lambda: False, timeout=1.0)
        failures = [r for r in caplog.records if "accept failed" in r.getMessage()]
        assert 1 <= len(failures) <= 4  # once per rest, not once per loop pass
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert net.run(lambda: b.inbound_count() + len(closes(b)) >= 40, timeout=5)
    for raw in crowd:
        raw.close()


def test_stop_before_run_forever_is_kept(net: Network) -> None:
    node = net.node()
    node.stop()
    started = time.monotonic()
    node.run_forever()
    assert time.monotonic() - started < 1.0


@pytest.mark.spec("RECO-5")
def test_a_reconnect_that_cannot_open_a_socket_is_tried_again(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = net.node(), net.node()
    address = b.listen("127.0.0.2", 0)
    first = a.connect(*address, persistent=True)
    assert net.run(lambda: established(a, first) and b.inbound_count() == 1)
    failures = [0]

    def out_of_descriptors(family: int, kind: int) -> socket.socket:
        """The node's socket factory, whose first two sockets cannot be had."""
        if failures[0] < 2:
            failures[0] += 1
            raise OSError(24, "Too many open files")
        return socket.socket(family, kind)

    monkeypatch.setattr(a, "_sockets", out_of_descriptors)
    (inbound,) = b.peer_ids
    b.close(inbound)
    assert net.run(lambda: first not in a.peer_ids)
    assert net.run(lambda: any(established(a, p) for p in a.peer_ids), timeout=5)
    assert failures[0] == 2  # two attempts failed; the node lived on and tried again
