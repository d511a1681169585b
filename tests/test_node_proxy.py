"""Nodes connecting through a SOCKS5 proxy (spec/privacy.md section 4): a real one (microsocks,
skipped without it unless OBSCURA_REQUIRE_SOCKS=1) and a fake one that never reaches anyone.
Every address is on 127.0.0.0/8; microsocks connects out from 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from obscura_ref.machines.reasons import CloseReason
from obscura_ref.node import Node, NodeError

from .socks_server import HOST, free_port, microsocks
from .test_node import Network, RawListener, RawPeer, closes, established, fast, kinds

USERNAME = "obscura"
PASSWORD = "isolation-1"


def proxied(port: int, *more: str) -> list[str]:
    """A node's settings for the proxy on ``port``: without credentials, no isolation, as
    microsocks without -u accepts only `NO AUTHENTICATION REQUIRED`."""
    return [f"proxy={HOST}:{port}", *more]


def status_of(node: Node) -> list[tuple[str, str]]:
    return [(status.address, status.state) for status in node.status()]


@pytest.fixture
def net() -> Iterator[Network]:
    network = Network()
    yield network
    network.close()


@pytest.fixture
def socks() -> Iterator[int]:
    with microsocks() as port:
        yield port


@pytest.mark.spec("PRIV-40", "PRIV-41", "PRIV-43", "KA-4")
def test_two_nodes_establish_and_ping_through_the_proxy(net: Network, socks: int) -> None:
    a = net.node(fast(*proxied(socks, "proxy_isolate=false")))
    b = net.node()
    host, port = b.listen("127.0.0.2", 0)
    peer = a.connect(host, port)
    assert net.run(lambda: established(a, peer) and b.inbound_count() == 1)
    assert net.run(lambda: "RttMeasured" in kinds(a) and "RttMeasured" in kinds(b))
    # A knows the peer by its own address; B sees the proxy's outgoing address.
    assert status_of(a) == [(f"{host}:{port}", "established")]
    ((b_address, b_state),) = status_of(b)
    assert b_address.startswith(f"{HOST}:") and b_state == "established"


@pytest.mark.spec("PRIV-41")
def test_the_configured_credentials_are_given_to_the_proxy(net: Network) -> None:
    with microsocks(USERNAME, PASSWORD) as socks:
        config = proxied(socks, f"proxy_username={USERNAME}", f"proxy_password={PASSWORD}")
        a, b = net.node(fast(*config)), net.node()
        host, port = b.listen("127.0.0.2", 0)
        peer = a.connect(host, port)
        assert net.run(lambda: established(a, peer) and b.inbound_count() == 1)


@pytest.mark.spec("PRIV-41", "PRIV-42")
def test_wrong_credentials_close_with_proxy_auth_failed(net: Network) -> None:
    with microsocks(USERNAME, PASSWORD) as socks:
        config = proxied(socks, f"proxy_username={USERNAME}", "proxy_password=wrong")
        a, b = net.node(fast(*config)), net.node()
        host, port = b.listen("127.0.0.2", 0)
        a.connect(host, port)
        assert net.run(lambda: bool(closes(a)))
        assert [c.reason for c in closes(a)] == [CloseReason.PROXY_AUTH_FAILED]
        assert b.inbound_count() == 0


@pytest.mark.spec("PRIV-42")
def test_a_peer_the_proxy_cannot_reach_closes_with_proxy_refused(net: Network, socks: int) -> None:
    a = net.node(fast(*proxied(socks, "proxy_isolate=false")))
    a.connect(HOST, free_port())  # nothing listens there
    assert net.run(lambda: bool(closes(a)))
    (closed,) = closes(a)
    assert closed.reason is CloseReason.PROXY_REFUSED
    assert "connection refused" in closed.detail


class FakeProxy:
    """A SOCKS5 proxy that reaches no one: it chooses the method offered, accepts any
    credentials and records them, records each CONNECT's target and then never answers."""

    def __init__(self) -> None:
        self.listener = RawListener("127.0.0.3")
        self.address = self.listener.address
        self.credentials: list[tuple[str, str]] = []
        self.targets: list[tuple[str, int]] = []
        self._answered: dict[int, int] = {}  # connection -> how many answers it got

    def poll(self) -> None:
        self.listener.poll()
        for index, raw in enumerate(self.listener.accepted):
            raw.poll()
            self._answer(index, raw, bytes(raw.received))

    def _answer(self, index: int, raw: RawPeer, data: bytes) -> None:
        """Answer what the client sent so far; ``data`` is all it sent, from its greeting."""
        answered = self._answered.get(index, 0)
        if len(data) < 3:
            return
        method, rest = data[2], data[3:]
        if answered == 0:
            raw.send(bytes([5, method]))  # the one method offered
            answered = 1
        if method == 2:  # RFC 1929: VER ULEN UNAME PLEN PASSWD
            ulen = rest[1] if len(rest) > 1 else 255
            plen = rest[2 + ulen] if len(rest) > 2 + ulen else 255
            if len(rest) < 3 + ulen + plen:
                self._answered[index] = answered
                return
            if answered == 1:
                username, password = rest[2 : 2 + ulen], rest[3 + ulen : 3 + ulen + plen]
                self.credentials.append((username.decode(), password.decode()))
                raw.send(b"\x01\x00")
                answered = 2
            rest = rest[3 + ulen + plen :]
        if answered == (2 if method == 2 else 1) and len(rest) >= 10:
            self.targets.append((socket.inet_ntoa(rest[4:8]), int.from_bytes(rest[8:10], "big")))
            answered += 1  # and never a reply
        self._answered[index] = answered

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def fake_proxy() -> Iterator[FakeProxy]:
    proxy = FakeProxy()
    yield proxy
    proxy.close()


def proxied_by(proxy: FakeProxy, *more: str) -> list[str]:
    host, port = proxy.address
    return [f"proxy={host}:{port}", "connection_timeout=0.3", *more]


@pytest.mark.spec("PRIV-40", "PRIV-43", "CONN-2")
def test_a_node_configured_for_the_proxy_never_opens_a_direct_connection(
    net: Network, fake_proxy: FakeProxy
) -> None:
    peer_listener = RawListener("127.0.0.4")
    try:
        a = net.node(fast(*proxied_by(fake_proxy, "proxy_isolate=false")))
        host, port = peer_listener.address
        a.connect(host, port, persistent=True)

        def proxying() -> bool:
            fake_proxy.poll()
            return bool(fake_proxy.targets) and status_of(a) == [(f"{host}:{port}", "proxying")]

        # Held by the proxy, the connection is known by the peer's address, not the proxy's.
        assert net.run(proxying)

        def attempts() -> bool:
            fake_proxy.poll()
            return len(fake_proxy.targets) >= 3

        assert net.run(attempts)  # each closed at connection_timeout, then dialled again
        assert set(fake_proxy.targets) == {(host, port)}
        assert {c.reason for c in closes(a)} == {CloseReason.CONNECT_TIMEOUT}
        assert not peer_listener.poll()  # not one connection reached the peer's address
    finally:
        peer_listener.close()


@pytest.mark.spec("PRIV-44", "PRIV-41")
def test_each_connection_gets_fresh_random_credentials(net: Network, fake_proxy: FakeProxy) -> None:
    a = net.node(fast(*proxied_by(fake_proxy)))  # proxy_isolate is true by default
    a.connect("127.0.0.4", free_port(), persistent=True)

    def attempts() -> bool:
        fake_proxy.poll()
        return len(fake_proxy.credentials) >= 3

    assert net.run(attempts)
    usernames = [username for username, _ in fake_proxy.credentials]
    passwords = [password for _, password in fake_proxy.credentials]
    assert len(set(usernames + passwords)) == len(usernames) + len(passwords)
    for text in usernames + passwords:
        assert len(text) == 32 and int(text, 16) >= 0  # 16 random bytes as hex


def test_an_address_the_proxy_cannot_carry_is_a_failed_dial_not_a_crash(
    net: Network, fake_proxy: FakeProxy
) -> None:
    a = net.node(fast(*proxied_by(fake_proxy)))
    with pytest.raises(NodeError):
        a.connect("fe80::1%lo", 9000)  # a scoped IPv6 address: SOCKS5 has no scope
    assert not fake_proxy.targets and a.peer_ids == []
