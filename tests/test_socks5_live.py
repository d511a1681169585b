"""The SOCKS5 client against a real SOCKS5 server (microsocks) and against fake proxies, all on
loopback: a small blocking driver plays the node's part.

What microsocks answers, read from its behaviour here: a success reply always reports the bound
address 0.0.0.0 port 0; a CONNECT to a loopback port where nothing listens gets REP 5,
"connection refused"; wrong credentials get the RFC 1929 status 2; a greeting without the one
method it wants gets 0xFF.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from obscura_ref.transport.socks5 import (
    Connected,
    NeedMore,
    Send,
    Socks5Client,
    Socks5ErrorCode,
    Socks5Failed,
    Socks5Outcome,
)

from .socks_server import HOST, free_port, microsocks

TIMEOUT = 5.0
USERNAME = "obscura"
PASSWORD = "isolation-1"
BANNER = b"the target speaks first\n"


class Target:
    """A loopback TCP server playing the peer: it sends BANNER, then echoes what it reads. It
    records the address of every connection it accepts."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(0.05)  # so that the accepting thread sees stop() soon
        self.port = int(self.listener.getsockname()[1])
        self.peers: list[str] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, address = self.listener.accept()
            except TimeoutError:
                continue
            self.peers.append(address[0])
            threading.Thread(target=self._echo, args=(connection,), daemon=True).start()

    @staticmethod
    def _echo(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(TIMEOUT)
            try:
                connection.sendall(BANNER)
                while data := connection.recv(4096):
                    connection.sendall(data)
            except OSError:
                pass  # the test ended the connection

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(TIMEOUT)
        self.listener.close()


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target()
    yield server
    server.stop()


@pytest.fixture
def proxy() -> Iterator[int]:
    with microsocks() as port:
        yield port


@pytest.fixture
def auth_proxy() -> Iterator[int]:
    with microsocks(USERNAME, PASSWORD) as port:
        yield port


def negotiate(
    proxy_port: int, client: Socks5Client, settle: float = 0.0
) -> tuple[socket.socket, Socks5Outcome]:
    """The node's part: writes what the client says, feeds it what the proxy says, until the
    client connects or fails. ``settle`` waits before each read, so that the proxy's reply and
    the target's first bytes may arrive together."""
    sock = socket.create_connection((HOST, proxy_port), timeout=TIMEOUT)
    sock.sendall(client.start())
    while True:
        time.sleep(settle)
        data = sock.recv(4096)
        outcome = client.receive(data) if data else client.eof()
        if isinstance(outcome, Send):
            sock.sendall(outcome.data)
        elif not isinstance(outcome, NeedMore):
            return sock, outcome


def read_exactly(sock: socket.socket, size: int, already: bytes = b"") -> bytes:
    data = already
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"the stream ended after {data!r}"
        data += chunk
    return data


def assert_reaches(sock: socket.socket, outcome: Socks5Outcome, target: Target) -> None:
    """The stream reaches the target: its banner (the client's leftover first), then an echo."""
    assert isinstance(outcome, Connected), outcome
    assert outcome.bound == ("0.0.0.0", 0)  # all microsocks ever reports
    assert read_exactly(sock, len(BANNER), outcome.leftover) == BANNER
    sock.sendall(b"through the proxy")
    assert read_exactly(sock, 17) == b"through the proxy"
    assert target.peers == [HOST]


@pytest.mark.spec("PRIV-40")
def test_connect_to_an_ipv4_literal_through_microsocks(proxy: int, target: Target) -> None:
    sock, outcome = negotiate(proxy, Socks5Client(HOST, target.port))
    with sock:
        assert_reaches(sock, outcome, target)


@pytest.mark.spec("PRIV-40")
def test_the_targets_first_bytes_in_the_replys_read_are_handed_on(
    proxy: int, target: Target
) -> None:
    # Reading late puts the banner behind the reply in one read: it must come out as leftover.
    sock, outcome = negotiate(proxy, Socks5Client(HOST, target.port), settle=0.2)
    with sock:
        assert isinstance(outcome, Connected)
        assert outcome.leftover == BANNER
        assert_reaches(sock, outcome, target)


@pytest.mark.spec("PRIV-40")
def test_a_name_is_resolved_by_the_proxy(proxy: int, target: Target) -> None:
    # "localhost" comes from /etc/hosts; never let the proxy look up a name that could lead off
    # loopback. microsocks, bound to 127.0.0.1 (-b), takes the name's IPv4 address.
    addresses = {str(info[4][0]) for info in socket.getaddrinfo("localhost", None, socket.AF_INET)}
    assert addresses and all(address.startswith("127.") for address in addresses), addresses
    sock, outcome = negotiate(proxy, Socks5Client("localhost", target.port))
    with sock:
        assert_reaches(sock, outcome, target)


@pytest.mark.spec("PRIV-41")
def test_the_right_credentials_connect(auth_proxy: int, target: Target) -> None:
    sock, outcome = negotiate(auth_proxy, Socks5Client(HOST, target.port, USERNAME, PASSWORD))
    with sock:
        assert_reaches(sock, outcome, target)


@pytest.mark.spec("PRIV-41", "PRIV-42")
def test_wrong_credentials_are_proxy_auth_failed(auth_proxy: int, target: Target) -> None:
    sock, outcome = negotiate(auth_proxy, Socks5Client(HOST, target.port, USERNAME, "wrong"))
    sock.close()
    # microsocks answers RFC 1929 status 2 (its "not allowed") to wrong credentials.
    assert outcome == Socks5Failed(
        Socks5ErrorCode.PROXY_AUTH_FAILED,
        "the proxy refused the username and password (status 0x02)",
    )
    assert target.peers == []


@pytest.mark.spec("PRIV-41", "PRIV-42")
def test_no_credentials_to_a_proxy_that_wants_them_is_proxy_auth_failed(
    auth_proxy: int, target: Target
) -> None:
    sock, outcome = negotiate(auth_proxy, Socks5Client(HOST, target.port))
    sock.close()
    assert outcome == Socks5Failed(
        Socks5ErrorCode.PROXY_AUTH_FAILED, "the proxy accepts none of the methods offered (0x00)"
    )


@pytest.mark.spec("PRIV-41", "PRIV-42")
def test_credentials_are_never_dropped_for_a_proxy_without_them(proxy: int, target: Target) -> None:
    # Only USERNAME/PASSWORD is offered, so a proxy that does not take credentials cannot be
    # used without them: microsocks answers 0xFF.
    sock, outcome = negotiate(proxy, Socks5Client(HOST, target.port, USERNAME, PASSWORD))
    sock.close()
    assert isinstance(outcome, Socks5Failed)
    assert outcome.code is Socks5ErrorCode.PROXY_AUTH_FAILED
    assert target.peers == []


@pytest.mark.spec("PRIV-42")
def test_a_port_where_nothing_listens_is_proxy_refused(proxy: int) -> None:
    sock, outcome = negotiate(proxy, Socks5Client(HOST, free_port()))
    sock.close()
    # microsocks turns its connect()'s ECONNREFUSED into REP 5.
    assert outcome == Socks5Failed(Socks5ErrorCode.PROXY_REFUSED, "connection refused (REP 0x05)")


# Fake proxies: loopback listeners that answer what no SOCKS5 server should.


@contextmanager
def fake_proxy(script: Callable[[socket.socket], None]) -> Iterator[int]:
    """A listener that runs ``script`` on the first connection it accepts; yields its port."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(TIMEOUT)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(TIMEOUT)
                script(connection)
        except BaseException as error:  # reported in the test's thread, below
            errors.append(error)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        thread.join(TIMEOUT)
        listener.close()
    assert not errors, errors


@pytest.mark.spec("PRIV-42")
def test_a_proxy_answering_garbage_is_proxy_garbage() -> None:
    def http_server(connection: socket.socket) -> None:  # the proxy setting names a web server
        assert read_exactly(connection, 3) == b"\x05\x01\x00"
        connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    with fake_proxy(http_server) as port:
        sock, outcome = negotiate(port, Socks5Client(HOST, 8333))
        sock.close()
    assert outcome == Socks5Failed(
        Socks5ErrorCode.PROXY_GARBAGE, "the method reply's version is 72, not 5"
    )


@pytest.mark.spec("PRIV-42")
def test_a_proxy_hanging_up_is_proxy_closed() -> None:
    def hang_up(connection: socket.socket) -> None:
        assert read_exactly(connection, 3) == b"\x05\x01\x00"
        connection.sendall(b"\x05\x00")
        assert read_exactly(connection, 10)[:4] == b"\x05\x01\x00\x01"
        connection.sendall(b"\x05\x00\x00")  # a part of the reply, then the end

    with fake_proxy(hang_up) as port:
        sock, outcome = negotiate(port, Socks5Client(HOST, 8333))
        sock.close()
    assert outcome == Socks5Failed(
        Socks5ErrorCode.PROXY_CLOSED,
        "the proxy ended the stream in state awaiting_reply (3 bytes of its answer read)",
    )


@pytest.mark.spec("PRIV-40")
def test_bytes_sent_with_the_reply_in_one_write_are_handed_on() -> None:
    def eager(connection: socket.socket) -> None:
        assert read_exactly(connection, 3) == b"\x05\x01\x00"
        connection.sendall(b"\x05\x00")
        request = read_exactly(connection, 5)
        read_exactly(connection, request[4] + 2)  # the name and the port
        connection.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x20\x8d" + BANNER)

    with fake_proxy(eager) as port:
        sock, outcome = negotiate(port, Socks5Client("peer.example", 8333), settle=0.1)
        sock.close()
    assert outcome == Connected(BANNER, ("127.0.0.1", 8333))
