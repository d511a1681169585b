"""Privacy levels end to end: two nodes on loopback at every pair of levels (spec/privacy.md)."""

from __future__ import annotations

import collections
import contextlib
import math
import random
import socket
import threading

import pytest

from obscura_ref.machines.events import Closed, Established, MessageReceived, RttMeasured
from obscura_ref.machines.privacy import GENERIC_USER_AGENT, PRIVACY_LEVELS
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.node import Node, NodeError
from obscura_ref.wire import MAGIC, MessageType, Opaque

from .test_node import Network, fast, kinds, net  # noqa: F401 (net is a fixture)

ENCRYPTING = ("standard", "high", "maximum")
ENCRYPTED_PAIRS = {(a, b) for a in ENCRYPTING for b in ENCRYPTING}
REFUSED_PAIRS = {("none", "high"), ("high", "none"), ("none", "maximum")}
GENERIC = ("high", "maximum")


def events_of(node: object, kind: type) -> list[object]:
    return [e.event for e in node.events if isinstance(e.event, kind)]  # type: ignore[attr-defined]


@pytest.mark.spec("PRIV-11", "PRIV-12", "PRIV-13", "PRIV-35", "PRIV-50", "PRIV-53", "PRIV-58")
@pytest.mark.parametrize("dialler", PRIVACY_LEVELS)
@pytest.mark.parametrize("listener", PRIVACY_LEVELS)
def test_two_nodes_at_each_pair_of_levels(net: Network, dialler: str, listener: str) -> None:  # noqa: F811
    a = net.node(fast(f"privacy_level={dialler}", "user_agent=a-node/1"))
    b = net.node(fast(f"privacy_level={listener}", "user_agent=b-node/1"))
    host, port = b.listen("127.0.0.2", 0)
    peer = a.connect(host, port)
    if (dialler, listener) == ("maximum", "none"):
        # spec: PRIV-58 (no plaintext fallback): the listener takes the random first bytes for
        # a bad magic and says so in plaintext, which the dialler refuses to read on.
        assert net.run(lambda: bool(events_of(a, Closed)) and bool(events_of(b, Closed)))
        (closed_a,) = events_of(a, Closed)
        (closed_b,) = events_of(b, Closed)
        assert closed_a.reason is CloseReason.NOISE_OUT_OF_PLACE  # type: ignore[attr-defined]
        assert closed_b.reason is CloseReason.INVALID_MESSAGE  # type: ignore[attr-defined]
        assert not events_of(a, Established) and not events_of(b, Established)
        return
    if (dialler, listener) in REFUSED_PAIRS:
        # spec: PRIV-12 (the side at high refuses; the other hears its reason)
        assert net.run(lambda: bool(events_of(a, Closed)) and bool(events_of(b, Closed)))
        (closed_a,) = events_of(a, Closed)
        (closed_b,) = events_of(b, Closed)
        refuser, other = (closed_a, closed_b) if dialler != "none" else (closed_b, closed_a)
        assert refuser.reason is CloseReason.ENCRYPTION_REQUIRED  # type: ignore[attr-defined]
        assert other.peer_reason == CloseReason.ENCRYPTION_REQUIRED.code  # type: ignore[attr-defined]
        # The refuser never establishes; a responder that does not require encryption has
        # accepted the initiator's handshake before the initiator judged its own.
        assert not events_of(a if dialler != "none" else b, Established)
        return
    assert net.run(lambda: "RttMeasured" in kinds(a) and "RttMeasured" in kinds(b))
    assert events_of(a, RttMeasured) and events_of(b, RttMeasured)
    a.send(peer, Opaque(MessageType.Blocks, b"a block"))
    assert net.run(lambda: "MessageReceived" in kinds(b))
    (received,) = events_of(b, MessageReceived)
    assert received.message == Opaque(MessageType.Blocks, b"a block")  # type: ignore[attr-defined]
    (status_a,) = a.status()
    (status_b,) = b.status()
    if (dialler, listener) in ENCRYPTED_PAIRS:
        # spec: PRIV-11, PRIV-35 (both sides report the same session id)
        assert status_a.session_id is not None and len(status_a.session_id) == 64
        assert status_a.session_id == status_b.session_id
        (est,) = events_of(a, Established)
        assert est.session_id is not None and est.session_id.hex() == status_a.session_id  # type: ignore[attr-defined]
    else:
        assert status_a.session_id is None and status_b.session_id is None
    # spec: PRIV-13 (a node at high sends the generic user agent, whatever it is configured)
    assert status_a.user_agent == (GENERIC_USER_AGENT if listener in GENERIC else "b-node/1")
    assert status_b.user_agent == (GENERIC_USER_AGENT if dialler in GENERIC else "a-node/1")


def test_two_connections_have_different_session_ids(net: Network) -> None:  # noqa: F811
    a, b = net.node(), net.node()
    for host, port in (b.listen("127.0.0.2", 0), b.listen("127.0.0.3", 0)):
        a.connect(host, port)
    assert net.run(lambda: len(events_of(a, Established)) == 2)
    ids = {row.session_id for row in a.status()}
    assert len(ids) == 2 and None not in ids


class Relay:
    """A loopback relay between a dialling node and a listening one that records every byte
    each way: what an observer of the line sees."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.listener = socket.create_server(("127.0.0.3", 0))
        self.address = self.listener.getsockname()[:2]
        self.target = target
        self.outbound = bytearray()  # dialler to listener
        self.inbound = bytearray()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(self.target)
        pumps = [
            threading.Thread(target=self._pump, args=(client, server, self.outbound)),
            threading.Thread(target=self._pump, args=(server, client, self.inbound)),
        ]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, record: bytearray) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                record += data
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def looks_random(data: bytes) -> bool:
    """Two tests of NIST SP 800-22's kind, at a significance of 1e-4: the share of one bits
    (the frequency test) and the byte histogram (chi-square with 255 degrees of freedom, whose
    1e-4 quantile is about 347)."""
    bits = len(data) * 8
    ones = sum(bin(byte).count("1") for byte in data)
    monobit = abs(2 * ones - bits) / math.sqrt(bits)
    expected = len(data) / 256
    counts = collections.Counter(data)
    chi2 = sum((counts.get(b, 0) - expected) ** 2 / expected for b in range(256))
    return monobit < 3.9 and chi2 < 347


def captured(net: Network, level: str) -> tuple[bytes, bytes]:  # noqa: F811
    """The bytes of one connection from a node at ``level`` to one at standard, both seeded,
    after a few pings each way."""
    # ping_timeout above twice MAX_SEND_DELAY: shaping holds the ping and the pong each.
    config = ("ping_interval=0.2", "ping_timeout=0.15")
    a = Node(fast(f"privacy_level={level}", *config), loop=net.loop, rng=random.Random(7))
    b = Node(fast(*config), loop=net.loop, rng=random.Random(8))
    net.nodes += [a, b]
    relay = Relay(b.listen("127.0.0.2", 0))
    try:
        a.connect(*relay.address)
        assert net.run(lambda: kinds(a).count("RttMeasured") >= 5, timeout=10)
        return bytes(relay.outbound), bytes(relay.inbound)
    finally:
        relay.close()


@pytest.mark.spec("PRIV-50", "PRIV-51", "PRIV-53")
def test_an_encrypted_first_connection_looks_random_from_byte_zero(
    net: Network,  # noqa: F811
) -> None:
    outbound, inbound = captured(net, "maximum")
    for stream in (outbound, inbound):
        assert len(stream) > 1500
        assert stream[:4] != MAGIC and MAGIC not in stream  # no frame, no magic, anywhere
        assert looks_random(stream), stream[:64].hex()
    # The same measure tells a plaintext connection: the tests can fail.
    plain_out, _ = captured(net, "none")
    assert plain_out[:4] == MAGIC and not looks_random(plain_out)


@pytest.mark.spec("PRIV-61")
def test_an_application_cannot_send_a_dummy(net: Network) -> None:  # noqa: F811
    a, b = net.node(), net.node()
    host, port = b.listen("127.0.0.2", 0)
    peer = a.connect(host, port)
    assert net.run(lambda: bool(events_of(a, Established)))
    with pytest.raises(NodeError, match="Dummy"):
        a.send(peer, Opaque(MessageType.Dummy, b"mine"))
    assert events_of(a, Closed) == []
