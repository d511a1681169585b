"""What a peer that never reads costs the node in memory (spec/node.md section 2, NODE-2).

The node runs in this process, so its resident memory is this process's, measured before and
while a peer sends pings and reads none of the pongs. The kernel's socket buffers, which take
many of those pongs first, are not part of it; what the node itself holds for the peer is its
send queue, which max_send_queue bounds.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from obscura_ref.machines.events import Established
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.node import READ_CHUNK
from obscura_ref.wire import Frame, FrameDecoder, Ping, Pong, encode_frame

from .test_node import Network, RawPeer, closes, established, fast, handshake_from

STATM = Path("/proc/self/statm")
LIMIT = 1024 * 1024  # max_send_queue
PINGS_PER_BURST = 256  # 6 KiB of 24-byte pings per pass of the loop


def resident() -> int:
    """This process's resident memory now, in bytes."""
    return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pongs(peer: RawPeer, decoder: FrameDecoder) -> list[Pong]:
    """The pongs among the frames that arrived since the last call (each frame read once)."""
    peer.poll()
    frames = [item for item in decoder.feed(bytes(peer.received)) if isinstance(item, Frame)]
    peer.received.clear()
    return [frame.message for frame in frames if isinstance(frame.message, Pong)]


def peer_of(net: Network, label: str) -> int:
    (node,) = net.nodes
    (peer,) = [row.peer for row in node.status() if row.address == label]
    return peer


@pytest.fixture
def net() -> Iterator[Network]:
    network = Network()
    yield network
    network.close()


@pytest.mark.skipif(not STATM.exists(), reason="reads /proc/self/statm")
@pytest.mark.spec("NODE-15", "NODE-11")
def test_a_peer_that_never_reads_its_pongs_costs_no_more_than_twice_the_limit(
    net: Network,
) -> None:
    # Unpadded 24-byte pongs: the frames smallest against any bookkeeping per frame.
    b = net.node(
        fast(
            f"max_send_queue={LIMIT}",
            "privacy_level=none",
            "ping_interval=30",  # the node's own pings stay out of the test
            "ping_timeout=10",
            "handshake_timeout=10",
            "inactivity_timeout=2",  # the stall closes the sink after this (NODE-11)
        )
    )
    address = b.listen("127.0.0.2", 0)
    # The sink's receive buffer is made small before it connects, so that the window it
    # offers stays small: fewer of the pongs wait in the kernel, more in the node.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    sock.connect_ex(address)
    sink = RawPeer(sock)
    good = RawPeer(address, source="127.3.0.1")
    sink.send(handshake_from(7))
    good.send(handshake_from(8))
    assert net.run(lambda: sum(isinstance(e.event, Established) for e in b.events) == 2)
    sink_id = peer_of(net, f"127.0.0.1:{sock.getsockname()[1]}")
    good_id = peer_of(net, f"127.3.0.1:{good.sock.getsockname()[1]}")

    burst = b"".join(encode_frame(Ping(n)) for n in range(PINGS_PER_BURST))
    unsent = memoryview(b"")
    nonce = 1000
    good.send(encode_frame(Ping(nonce)))
    answered = 0
    decoder = FrameDecoder()
    gc.collect()
    baseline = peak = resident()
    most_queued = 0
    deadline = time.monotonic() + 120  # a bound on a stuck test only: nothing here is timed
    while b.state_of(sink_id) is not None and time.monotonic() < deadline:
        if not unsent:
            unsent = memoryview(burst)
        with contextlib.suppress(BlockingIOError):  # the node has not read the last bursts
            unsent = unsent[sink.sock.send(unsent) :]
        net.loop.run_once(0)
        peak = max(peak, resident())
        rows = [row for row in b.status() if row.peer == sink_id]
        most_queued = max([most_queued] + [row.send_queue for row in rows])
        if peak - baseline > 4 * LIMIT:
            break  # failed already: no need to wait for the deadline
        if Pong(nonce) in pongs(good, decoder):
            answered += 1
            nonce += 1
            good.send(encode_frame(Ping(nonce)))
    grown = peak - baseline

    # The send queue itself takes up to LIMIT; the rest of the allowance is for the memory
    # allocator (a buffer that grows may leave its old place resident) and the loop's passing
    # objects. One bytes object and one memoryview per pong, as the node once queued them, made
    # it grow by about 12 times the limit here.
    assert grown <= 2 * LIMIT, f"resident memory grew by {grown:,} bytes for a {LIMIT:,} limit"
    assert b.state_of(sink_id) is None, "the sink was never closed"
    # Not read above the high-water mark (LIMIT / 2), the sink's queue stops there, give or
    # take the pongs of a read or two (24-byte pongs for 24-byte pings; NODE-12 reads once more
    # before the inactivity timer judges), so it never fills: the node closes it because it
    # took nothing for inactivity_timeout.
    assert LIMIT // 2 < most_queued <= LIMIT // 2 + 3 * READ_CHUNK
    assert [c.reason for c in closes(b)] == [CloseReason.SEND_STALLED]
    assert answered >= 5, f"only {answered} pings of the other peer answered meanwhile"
    assert established(b, good_id)
    good.send(encode_frame(Ping(nonce + 1)))
    assert net.run(lambda: Pong(nonce + 1) in pongs(good, decoder))
    assert established(b, good_id)
    sink.close()
    good.close()


@pytest.mark.skipif(not STATM.exists(), reason="reads /proc/self/statm")
def test_fifty_peers_that_never_read_stay_under_the_budget(net: Network) -> None:
    """An acceptance test of section 2.1 as a whole (NODE-14, NODE-15 and NODE-16 each have a
    test of their own): fifty peers flood pings and read nothing, and the node's buffers, and
    its resident memory, stay within memory_budget while another peer is served."""
    budget = 4 * 1024 * 1024
    b = net.node(
        fast(
            f"memory_budget={budget}",
            "max_send_queue=262144",  # a high-water mark of 128 KiB each: 6.4 MiB for fifty
            "max_inbound_connections=60",
            "max_total_connections=60",  # a share of about 68 KiB each
            "ping_interval=30",
            "ping_timeout=10",
            "inactivity_timeout=30",
        )
    )
    address = b.listen("127.0.0.2", 0)
    sinks = []
    for index in range(50):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind((f"127.{100 + index}.0.1", 0))
        sock.setblocking(False)
        sock.connect_ex(address)
        sinks.append(RawPeer(sock))
    good = RawPeer(address, source="127.3.0.1")
    for index, sink in enumerate(sinks):
        sink.send(handshake_from(500 + index))
    good.send(handshake_from(499))
    assert net.run(lambda: sum(isinstance(e.event, Established) for e in b.events) == 51)
    good_id = peer_of(net, f"127.3.0.1:{good.sock.getsockname()[1]}")
    # The kernel's own buffers for these sockets are made small, so that the node's fill in
    # seconds rather than minutes (the kernel takes megabytes of pongs per socket first).
    for peer in b.peer_ids:
        accepted = b._peers[peer].sock
        assert accepted is not None
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    burst = b"".join(encode_frame(Ping(n)) for n in range(2048))
    decoder, nonce, answered = FrameDecoder(), 1, 0
    good.send(encode_frame(Ping(nonce)))
    gc.collect()
    baseline = peak = resident()
    most = 0
    pressed = False
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        for sink in sinks:
            with contextlib.suppress(BlockingIOError, ConnectionError):
                sink.sock.send(burst)
        net.loop.run_once(0)
        memory = b.memory()
        most, pressed = max(most, memory.buffers), pressed or memory.pressure
        assert memory.buffers <= budget  # after each pass: never over (NODE-14)
        peak = max(peak, resident())
        if Pong(nonce) in pongs(good, decoder):
            answered, nonce = answered + 1, nonce + 1
            good.send(encode_frame(Ping(nonce)))
    # The budget was approached (the pause of NODE-16 began), and held, in the node's own
    # count and in its resident memory, while the good peer's pings were answered throughout.
    assert pressed and most > budget // 2
    assert peak - baseline <= budget, f"resident memory grew by {peak - baseline:,} bytes"
    assert answered >= 20
    assert established(b, good_id)
    for raw in [*sinks, good]:
        raw.close()
