"""Privacy levels end to end: two nodes on loopback at every pair of levels (spec/privacy.md)."""

from __future__ import annotations

import pytest

from obscura_ref.machines.events import Closed, Established, MessageReceived, RttMeasured
from obscura_ref.machines.privacy import GENERIC_USER_AGENT, PRIVACY_LEVELS
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.wire import MessageType, Opaque

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
