"""The node under load: the work of one pass, silence judged after a read, and the memory
budget (spec/node.md sections 1 and 2.1: NODE-10, NODE-12, NODE-14, NODE-16)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from obscura_ref.machines.connection import PeerConnection
from obscura_ref.machines.events import BytesReceived, Event
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.node import MIN_READ, PASS_READ_BUDGET, READ_CHUNK, Node
from obscura_ref.wire import Frame, FrameDecoder, MessageType, Opaque, Ping, Pong, encode_frame

from .test_node import Network, RawPeer, closes, established, fast, handshake_from, kinds

MiB = 1024 * 1024


@pytest.fixture
def net() -> Iterator[Network]:
    network = Network()
    yield network
    network.close()


def peer_by_port(node: Node, raw: RawPeer) -> int:
    port = raw.sock.getsockname()[1]
    (peer,) = [row.peer for row in node.status() if row.address.endswith(f":{port}")]
    return peer


def blast(raw: RawPeer, data: bytes) -> None:
    """Send as much of ``data`` as the kernel takes now (the peer is non-blocking)."""
    with contextlib.suppress(BlockingIOError, InterruptedError, ConnectionError):
        raw.sock.send(data)  # a connection the node closed is seen in its Closed events


def answer_pings(raw: RawPeer, decoder: FrameDecoder) -> None:
    """Play a well-behaved peer: answer every ping that has arrived."""
    raw.poll()
    for item in decoder.feed(bytes(raw.received)):
        if isinstance(item, Frame) and isinstance(item.message, Ping):
            raw.send(encode_frame(Pong(item.message.nonce)))
    raw.received.clear()


@pytest.mark.spec("NODE-10")
def test_one_pass_reads_a_bounded_number_of_bytes_and_the_rest_come_first_next(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 40
    passes: list[list[int]] = [[]]
    first_read: dict[int, int] = {}  # machine id: the pass of its first read
    original = PeerConnection.handle

    def recording(self: PeerConnection, event: Event, now: float) -> object:
        if isinstance(event, BytesReceived):
            passes[-1].append(len(event.data))
            first_read.setdefault(id(self), len(passes))
        return original(self, event, now)

    def pass_ended() -> bool:  # registered after the node's hook: runs once it has read
        passes.append([])
        return False

    b = net.node(fast("ping_interval=30", "ping_timeout=10", "inactivity_timeout=60"))
    net.loop.after_io(pass_ended)
    address = b.listen("127.0.0.2", 0)
    flooders = [RawPeer(address, source=f"127.{10 + i}.0.1") for i in range(count)]
    for index, raw in enumerate(flooders):
        raw.send(handshake_from(300 + index))
    assert net.run(lambda: kinds(b).count("Established") == count)
    monkeypatch.setattr(PeerConnection, "handle", recording)
    payload = encode_frame(Opaque(MessageType.Blocks, bytes(READ_CHUNK - 24)))
    for raw in flooders:  # each has a whole READ_CHUNK of a frame waiting: all are ready
        raw.send(payload)
    time.sleep(0.2)  # let every socket be readable before the pass
    passes[:] = [[]]
    while len(first_read) < count and len(passes) < 50:
        net.loop.run_once(0.5)
    assert len(first_read) == count
    # No pass read more than the budget and a part of it; the first read the budget.
    assert max(sum(sizes) for sizes in passes) <= PASS_READ_BUDGET + MIN_READ
    assert sum(passes[0]) >= PASS_READ_BUDGET
    # Each connection had its part (MIN_READ with this many), and every one was read within
    # the passes the budget needs for all of them: those left out of a pass came first in
    # the next, not after the ones read already.
    assert max(max(sizes, default=0) for sizes in passes) <= MIN_READ
    needed = -(-count * MIN_READ // PASS_READ_BUDGET)
    assert max(first_read.values()) <= needed
    for raw in flooders:
        raw.close()


@pytest.mark.spec("NODE-12", "NODE-13")
def test_a_peer_not_read_is_not_judged_silent_while_its_pongs_wait(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An application that never takes its events: after the Established event of each
    # connection the node stops reading from it (NODE-13).
    monkeypatch.setattr("obscura_ref.node.PEER_EVENT_LIMIT", 1)
    b = net.node(fast("ping_interval=0.3", "ping_timeout=0.2"))
    address = b.listen("127.0.0.2", 0)
    polite, mute = RawPeer(address), RawPeer(address, source="127.5.0.1")
    polite.send(handshake_from(11))
    mute.send(handshake_from(12))
    assert net.run(lambda: kinds(b).count("Established") == 2)
    polite_id, mute_id = peer_by_port(b, polite), peer_by_port(b, mute)
    assert b._peers[polite_id].app_behind
    decoder = FrameDecoder()
    deadline = time.monotonic() + 2.0  # several ping intervals
    while time.monotonic() < deadline:
        answer_pings(polite, decoder)
        net.loop.run_once(0.01)
    # The polite peer's pongs waited unread each time, and each time were read before its
    # pong timer judged: it is still established. The mute one, not read either, sent
    # nothing: the same rule closes it.
    assert established(b, polite_id)
    assert [(c.reason) for c in closes(b)] == [CloseReason.PING_TIMEOUT]
    assert b.state_of(mute_id) is None
    polite.close()
    mute.close()


def stream_big_frame(raw: RawPeer, nonce: int) -> bytes:
    """A handshake, then the header of a frame of 8 MiB: what follows is payload."""
    header = encode_frame(Opaque(MessageType.Blocks, bytes(8 * MiB)))[:24]
    raw.send(handshake_from(nonce))
    return header


@pytest.mark.spec("NODE-16")
def test_near_the_budget_the_connections_holding_most_are_not_read(net: Network) -> None:
    budget = 1 * MiB
    b = net.node(
        fast(
            f"memory_budget={budget}",
            "max_total_connections=8",  # a share of 128 KiB each
            "ping_interval=30",
            "ping_timeout=10",
            "inactivity_timeout=60",
        )
    )
    address = b.listen("127.0.0.2", 0)
    streams = [RawPeer(address, source=f"127.{20 + i}.0.1") for i in range(2)]
    good = RawPeer(address, source="127.30.0.1")
    headers = [stream_big_frame(raw, 40 + i) for i, raw in enumerate(streams)]
    good.send(handshake_from(50))
    assert net.run(lambda: kinds(b).count("Established") == 3)
    for raw, header in zip(streams, headers, strict=True):
        raw.send(header)
    chunk = bytes(READ_CHUNK)
    most = 0
    decoder, nonce, answered = FrameDecoder(), 1, 0
    good.send(encode_frame(Ping(nonce)))
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        for raw in streams:
            blast(raw, chunk)
        net.loop.run_once(0)
        most = max(most, b.memory().buffers)
        good.poll()
        frames = [i for i in decoder.feed(bytes(good.received)) if isinstance(i, Frame)]
        good.received.clear()
        if Pong(nonce) in [f.message for f in frames]:
            answered, nonce = answered + 1, nonce + 1
            good.send(encode_frame(Ping(nonce)))
    # The two streams passed three quarters of the budget; from then on, each holding more
    # than its share, neither was read: the buffers stopped short of the budget and nobody
    # was closed for it, while the third peer, holding nothing, was served throughout.
    assert b.memory().pressure
    assert budget * 3 // 4 < most <= budget * 3 // 4 + 2 * READ_CHUNK
    assert closes(b) == []
    assert answered >= 10
    for raw in [*streams, good]:
        raw.close()


@pytest.mark.spec("NODE-14")
def test_over_the_budget_the_connection_holding_most_is_closed(net: Network) -> None:
    budget = 1 * MiB
    b = net.node(
        fast(
            f"memory_budget={budget}",
            "max_total_connections=3",  # a share of a third of the budget each
            "max_inbound_connections=3",
            "ping_interval=30",
            "ping_timeout=10",
            "inactivity_timeout=60",
        )
    )
    address = b.listen("127.0.0.2", 0)
    streams = [RawPeer(address, source=f"127.{60 + i}.0.1") for i in range(3)]
    headers = [stream_big_frame(raw, 70 + i) for i, raw in enumerate(streams)]
    assert net.run(lambda: kinds(b).count("Established") == 3)
    for raw, header in zip(streams, headers, strict=True):
        raw.send(header)
    ids = [peer_by_port(b, raw) for raw in streams]
    chunk = bytes(READ_CHUNK)
    largest_before_close: set[int] = set()
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and not closes(b):
        held = {p: b._peers[p].held for p in b.peer_ids}
        top = max(held.values())
        largest_before_close = {p for p, h in held.items() if h == top}
        for raw in streams:
            blast(raw, chunk)
        net.loop.run_once(0)
        assert b.memory().buffers <= budget  # checked after each read: never over
    (closed,) = closes(b)
    assert closed.reason is CloseReason.MEMORY_BUDGET
    gone = set(ids) - set(b.peer_ids)
    assert len(gone) == 1
    # The one closed held the most (or grew to it in the last pass's read).
    assert gone <= largest_before_close or b.memory().buffers <= budget
    for raw in streams:
        raw.close()


@pytest.mark.spec("NODE-11")
def test_a_slow_reader_making_progress_is_not_closed(net: Network) -> None:
    b = net.node(fast("ping_interval=30", "ping_timeout=10", "inactivity_timeout=2"))
    address = b.listen("127.0.0.2", 0)
    slow = RawPeer(address)
    slow.send(handshake_from(90))
    assert net.run(lambda: kinds(b).count("Established") == 1)
    (peer,) = b.peer_ids
    b.send(peer, Opaque(MessageType.Blocks, bytes(8 * MiB)))  # far more than the kernel holds
    taken = 0
    started = time.monotonic()
    while time.monotonic() < started + 4.5:  # more than twice inactivity_timeout
        blast(slow, encode_frame(Ping(1)))  # not silent (KA-6)
        allowed = int((time.monotonic() - started) * 1_000_000) - taken  # 1 MB/s: progress
        if allowed > 0:
            with contextlib.suppress(BlockingIOError):
                taken += len(slow.sock.recv(min(allowed, 64 * 1024)))
        net.loop.run_once(0.02)
    assert established(b, peer)
    assert 0 < taken < 8 * MiB  # still behind, and kept
    slow.close()
