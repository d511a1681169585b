"""The SOCKS5 client machine (RFC 1928, RFC 1929) on its own: no socket, the proxy played here."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obscura_ref.machines.events import LocalProtocolError
from obscura_ref.transport.socks5 import (
    MAX_REPLY,
    Connected,
    NeedMore,
    Send,
    Socks5Client,
    Socks5ErrorCode,
    Socks5Failed,
    Socks5Outcome,
    Socks5State,
)

GARBAGE = Socks5ErrorCode.PROXY_GARBAGE
AUTH_FAILED = Socks5ErrorCode.PROXY_AUTH_FAILED
REFUSED = Socks5ErrorCode.PROXY_REFUSED

NO_AUTH = b"\x05\x00"  # the proxy's choice: no authentication
USER_PASS = b"\x05\x02"  # the proxy's choice: username and password
AUTH_OK = b"\x01\x00"


def reply(code: int = 0, address: bytes = b"\x01\x7f\x00\x00\x01", port: int = 8333) -> bytes:
    """A CONNECT reply; ``address`` is ATYP followed by BND.ADDR."""
    return bytes([5, code, 0]) + address + port.to_bytes(2, "big")


def chunks(data: bytes, size: int | None) -> list[bytes]:
    if size is None:
        return [data]
    return [data[i : i + size] for i in range(0, len(data), size)]


def converse(
    client: Socks5Client, answers: Sequence[bytes], size: int | None = None
) -> tuple[list[bytes], Socks5Outcome]:
    """Plays the proxy: each answer is fed after the client's previous message, whole or in
    chunks of ``size`` bytes, until the client connects or fails. Returns what the client sent
    and its last outcome."""
    sent = [client.start()]
    outcome: Socks5Outcome = NeedMore()
    for answer in answers:
        for chunk in chunks(answer, size):
            outcome = client.receive(chunk)
            if isinstance(outcome, Send):
                sent.append(outcome.data)
            elif not isinstance(outcome, NeedMore):
                return sent, outcome
    return sent, outcome


def failure(
    client: Socks5Client, answers: Sequence[bytes], size: int | None = None
) -> Socks5Failed:
    outcome = converse(client, answers, size)[1]
    assert isinstance(outcome, Socks5Failed), outcome
    return outcome


# The requests the client sends.


@pytest.mark.spec("PRIV-40")
def test_without_credentials_the_greeting_offers_no_authentication_only() -> None:
    assert Socks5Client("127.0.0.1", 8333).start() == b"\x05\x01\x00"


@pytest.mark.spec("PRIV-41")
def test_with_credentials_the_greeting_offers_username_and_password_only() -> None:
    # Offering "no authentication" beside it would let a proxy skip the credentials, and Tor
    # isolates streams by them.
    assert Socks5Client("127.0.0.1", 8333, "user", "pass").start() == b"\x05\x01\x02"


@pytest.mark.spec("PRIV-40")
@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", b"\x01\x7f\x00\x00\x01"),
        ("203.0.113.9", b"\x01\xcb\x00\x71\x09"),
        ("::1", b"\x04" + bytes(15) + b"\x01"),
        ("2001:db8::2", b"\x04\x20\x01\x0d\xb8" + bytes(11) + b"\x02"),
        ("localhost", b"\x03\x09localhost"),
        ("example.onion", b"\x03\x0dexample.onion"),
        ("bücher.example", b"\x03\x15xn--bcher-kva.example"),
        ("127.1", b"\x03\x05127.1"),  # not a literal Python reads: the proxy's to interpret
    ],
)
def test_the_connect_request_names_the_target_as_given(host: str, address: bytes) -> None:
    sent, outcome = converse(Socks5Client(host, 8333), [NO_AUTH])
    assert sent[1:] == [b"\x05\x01\x00" + address + b"\x20\x8d"]
    assert outcome == Send(sent[1])


@pytest.mark.spec("PRIV-40")
def test_a_name_is_never_resolved_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lookups(*args: object, **kwargs: object) -> object:
        raise AssertionError("resolved locally")

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        monkeypatch.setattr(socket, name, no_lookups)
    sent, outcome = converse(Socks5Client("peer.example", 1), [NO_AUTH, reply()])
    assert sent[1] == b"\x05\x01\x00\x03\x0cpeer.example\x00\x01"
    assert isinstance(outcome, Connected)


@pytest.mark.spec("PRIV-41")
def test_the_credentials_go_after_the_proxy_chooses_them_then_the_request() -> None:
    client = Socks5Client("127.0.0.1", 8333, "isolation-7", "pässword")
    sent, outcome = converse(client, [USER_PASS, AUTH_OK, reply()])
    assert sent == [
        b"\x05\x01\x02",
        b"\x01\x0bisolation-7\x09p\xc3\xa4ssword",
        b"\x05\x01\x00\x01\x7f\x00\x00\x01\x20\x8d",
    ]
    assert outcome == Connected(b"", ("127.0.0.1", 8333))


# The success reply and what follows it.


@pytest.mark.spec("PRIV-40")
@pytest.mark.parametrize(
    ("address", "bound"),
    [
        (b"\x01\x00\x00\x00\x00", "0.0.0.0"),
        (b"\x04" + bytes(15) + b"\x01", "::1"),
        (b"\x03\x0bproxy.local", "proxy.local"),
        (b"\x03\xff" + b"a" * 255, "a" * 255),
        (b"\x03\x02\xff!", "\\xff!"),  # reported, never decoded strictly
    ],
)
def test_connected_reports_the_bound_address(address: bytes, bound: str) -> None:
    outcome = converse(Socks5Client("127.0.0.1", 1), [NO_AUTH, reply(0, address, 65535)])[1]
    assert outcome == Connected(b"", (bound, 65535))


@pytest.mark.spec("PRIV-40")
@pytest.mark.parametrize("address", [b"\x01\x7f\x00\x00\x01", b"\x03\x03a.b", b"\x04" + bytes(16)])
def test_bytes_after_the_reply_are_the_targets_and_handed_on_unchanged(address: bytes) -> None:
    peer = b"\x00\x05\x01\x00\x01" + bytes(range(256)) * 300  # could pass for another reply
    outcome = converse(Socks5Client("127.0.0.1", 1), [NO_AUTH, reply(0, address) + peer])[1]
    assert isinstance(outcome, Connected)
    assert outcome.leftover == peer


@pytest.mark.spec("PRIV-40")
@given(st.binary(max_size=64), st.integers(0, 10 + 64))
def test_wherever_the_reply_is_cut_the_bytes_after_it_are_handed_on(peer: bytes, cut: int) -> None:
    stream = reply() + peer
    client = Socks5Client("127.0.0.1", 1)
    converse(client, [NO_AUTH])
    first = client.receive(stream[:cut])
    if cut < len(reply()):
        assert first == NeedMore()
        first = client.receive(stream[cut:])
        assert first == Connected(stream[len(reply()) :], ("127.0.0.1", 8333))
    else:
        assert first == Connected(stream[len(reply()) : cut], ("127.0.0.1", 8333))


@pytest.mark.spec("PRIV-40")
def test_at_most_one_reply_is_buffered() -> None:
    client = Socks5Client("127.0.0.1", 1)
    converse(client, [NO_AUTH])
    longest = reply(0, b"\x03\xff" + b"a" * 255)
    assert len(longest) == MAX_REPLY
    for byte in longest[:-1]:
        assert client.receive(bytes([byte])) == NeedMore()
        assert len(client._buffer) < MAX_REPLY
    outcome = client.receive(longest[-1:] + bytes(100_000))
    assert outcome == Connected(bytes(100_000), ("a" * 255, 8333))
    assert len(client._buffer) == 0


# Chunking: the same bytes give the same outcome, however they arrive.

CONVERSATIONS: list[tuple[tuple[str, ...], list[bytes], Socks5Outcome]] = [
    ((), [NO_AUTH, reply()], Connected(b"", ("127.0.0.1", 8333))),
    (("u", "p"), [USER_PASS, AUTH_OK, reply()], Connected(b"", ("127.0.0.1", 8333))),
    ((), [NO_AUTH, reply(0, b"\x03\x01x")], Connected(b"", ("x", 8333))),
    ((), [b"\x05\xff"], Socks5Failed(AUTH_FAILED, "")),
    (("u", "p"), [USER_PASS, b"\x01\x01"], Socks5Failed(AUTH_FAILED, "")),
    ((), [NO_AUTH, reply(5)], Socks5Failed(REFUSED, "")),
    ((), [NO_AUTH, reply(1, b"\x03\x00")], Socks5Failed(GARBAGE, "")),
    ((), [b"\x04\x00"], Socks5Failed(GARBAGE, "")),
    ((), [NO_AUTH, b"\x05\x00\x00\x02" + bytes(6)], Socks5Failed(GARBAGE, "")),
]


def same(outcome: Socks5Outcome, expected: Socks5Outcome) -> bool:
    if isinstance(expected, Socks5Failed):  # the detail is checked elsewhere
        return isinstance(outcome, Socks5Failed) and outcome.code is expected.code
    return outcome == expected


@pytest.mark.spec("PRIV-40", "PRIV-41", "PRIV-42")
@pytest.mark.parametrize(("credentials", "answers", "expected"), CONVERSATIONS)
@pytest.mark.parametrize("size", [None, 1, 2, 3])
def test_any_chunking_gives_the_same_outcome(
    credentials: tuple[str, ...], answers: list[bytes], expected: Socks5Outcome, size: int | None
) -> None:
    outcome = converse(Socks5Client("127.0.0.1", 8333, *credentials), answers, size)[1]
    assert same(outcome, expected), outcome


@pytest.mark.spec("PRIV-40")
def test_one_byte_at_a_time_needs_more_until_the_last_byte_of_each_answer() -> None:
    client = Socks5Client("127.0.0.1", 8333, "u", "p")
    client.start()
    for answer in (USER_PASS, AUTH_OK, reply()):
        outcomes = [client.receive(bytes([byte])) for byte in answer]
        assert outcomes[:-1] == [NeedMore()] * (len(answer) - 1)
        assert not isinstance(outcomes[-1], NeedMore | Socks5Failed)
    assert client.state is Socks5State.CONNECTED


# Failures: each named (PRIV-42).


@pytest.mark.spec("PRIV-42")
@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (1, "general SOCKS server failure"),
        (2, "connection not allowed by ruleset"),
        (3, "network unreachable"),
        (4, "host unreachable"),
        (5, "connection refused"),
        (6, "TTL expired"),
        (7, "command not supported"),
        (8, "address type not supported"),
        (9, "unassigned code 0x09"),
        (0xFF, "unassigned code 0xff"),
    ],
)
def test_a_connect_failure_is_proxy_refused_naming_the_rfc_meaning(code: int, meaning: str) -> None:
    failed = failure(Socks5Client("127.0.0.1", 1), [NO_AUTH, reply(code)])
    assert failed == Socks5Failed(REFUSED, f"{meaning} (REP 0x{code:02x})")


@pytest.mark.spec("PRIV-42")
def test_a_failure_reply_is_judged_without_waiting_for_its_address() -> None:
    # A proxy may close right after a short failure reply: its REP is still worth naming.
    failed = failure(Socks5Client("127.0.0.1", 1), [NO_AUTH, b"\x05\x05\x00\x01\x00"])
    assert failed.code is REFUSED


@pytest.mark.spec("PRIV-41", "PRIV-42")
@pytest.mark.parametrize("credentials", [(), ("u", "p")])
def test_no_acceptable_method_is_proxy_auth_failed(credentials: tuple[str, ...]) -> None:
    failed = failure(Socks5Client("127.0.0.1", 1, *credentials), [b"\x05\xff"])
    assert failed.code is AUTH_FAILED
    assert "none of the methods" in failed.detail


@pytest.mark.spec("PRIV-41", "PRIV-42")
@pytest.mark.parametrize("status", [1, 2, 0xFF])
def test_credentials_refused_is_proxy_auth_failed(status: int) -> None:
    failed = failure(Socks5Client("127.0.0.1", 1, "u", "p"), [USER_PASS, bytes([1, status])])
    assert failed == Socks5Failed(
        AUTH_FAILED, f"the proxy refused the username and password (status 0x{status:02x})"
    )


@pytest.mark.spec("PRIV-42")
@pytest.mark.parametrize(
    ("credentials", "answers", "detail"),
    [
        ((), [b"\x04\x00"], "the method reply's version is 4, not 5"),
        ((), [b"HTTP/1.1 400 Bad Request\r\n"], "the method reply's version is 72, not 5"),
        # A method the client did not offer: above all, a proxy skipping the credentials.
        (("u", "p"), [NO_AUTH], "the proxy chose method 0x00, not offered (0x02)"),
        ((), [USER_PASS], "the proxy chose method 0x02, not offered (0x00)"),
        ((), [b"\x05\x01"], "the proxy chose method 0x01, not offered (0x00)"),
        (("u", "p"), [USER_PASS, b"\x05\x00"], "the RFC 1929 reply's version is 5, not 1"),
        ((), [NO_AUTH, b"\x04\x00\x00\x01" + bytes(6)], "the CONNECT reply's version is 4, not 5"),
        (
            (),
            [NO_AUTH, b"\x05\x00\x01\x01" + bytes(6)],
            "the CONNECT reply's reserved byte is 1, not 0",
        ),
        (
            (),
            [NO_AUTH, b"\x05\x00\x00\x05" + bytes(6)],
            "the CONNECT reply's address type is 5, not 1, 3 or 4",
        ),
        (
            (),
            [NO_AUTH, b"\x05\x00\x00\x00" + bytes(6)],
            "the CONNECT reply's address type is 0, not 1, 3 or 4",
        ),
        ((), [NO_AUTH, b"\x05\x00\x00\x03\x00\x00\x00"], "the CONNECT reply's domain has length 0"),
        # The proxy cannot answer a request the client has not sent yet.
        (
            (),
            [NO_AUTH + reply()],
            "10 bytes after its method reply, before the client's next request",
        ),
        (
            ("u", "p"),
            [USER_PASS + AUTH_OK],
            "2 bytes after its method reply, before the client's next request",
        ),
        (
            ("u", "p"),
            [USER_PASS, AUTH_OK + b"\x05"],
            "1 bytes after its RFC 1929 reply, before the client's next request",
        ),
    ],
)
def test_garbage_is_proxy_garbage(
    credentials: tuple[str, ...], answers: list[bytes], detail: str
) -> None:
    failed = failure(Socks5Client("127.0.0.1", 1, *credentials), answers)
    assert failed == Socks5Failed(GARBAGE, detail)


@pytest.mark.spec("PRIV-42")
@pytest.mark.parametrize(
    ("credentials", "answers", "state", "read"),
    [
        ((), [], "awaiting_method", 0),
        ((), [b"\x05"], "awaiting_method", 1),
        (("u", "p"), [USER_PASS], "awaiting_auth", 0),
        (("u", "p"), [USER_PASS, b"\x01"], "awaiting_auth", 1),
        ((), [NO_AUTH], "awaiting_reply", 0),
        ((), [NO_AUTH, reply()[:-1]], "awaiting_reply", 9),
    ],
)
def test_the_proxy_ending_the_stream_early_is_proxy_closed(
    credentials: tuple[str, ...], answers: list[bytes], state: str, read: int
) -> None:
    client = Socks5Client("127.0.0.1", 1, *credentials)
    assert isinstance(converse(client, answers)[1], NeedMore | Send)
    assert client.eof() == Socks5Failed(
        Socks5ErrorCode.PROXY_CLOSED,
        f"the proxy ended the stream in state {state} ({read} bytes of its answer read)",
    )
    assert client.state is Socks5State.FAILED


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=4), st.booleans())
def test_no_bytes_from_the_proxy_make_the_client_raise(answers: list[bytes], auth: bool) -> None:
    client = Socks5Client("peer.example", 1, *(("u", "p") if auth else ()))
    outcome = converse(client, answers)[1]
    if isinstance(outcome, NeedMore | Send):
        assert isinstance(client.eof(), Socks5Failed)
    assert len(client._buffer) <= MAX_REPLY


def test_the_error_codes_are_snake_case_close_reasons() -> None:
    assert [code.value for code in Socks5ErrorCode] == [
        "proxy_auth_failed",
        "proxy_refused",
        "proxy_garbage",
        "proxy_closed",
    ]
    assert all(code.value == code.name.lower() for code in Socks5ErrorCode)


# Misuse by the caller, and what the constructor refuses.


def test_a_finished_machine_refuses_any_further_call() -> None:
    connected = Socks5Client("127.0.0.1", 1)
    converse(connected, [NO_AUTH, reply()])
    failed = Socks5Client("127.0.0.1", 1)
    converse(failed, [b"\x05\xff"])
    closed = Socks5Client("127.0.0.1", 1)
    closed.start()
    closed.eof()
    for client in (connected, failed, closed):
        with pytest.raises(LocalProtocolError):
            client.receive(b"\x00")
        with pytest.raises(LocalProtocolError):
            client.eof()
        with pytest.raises(LocalProtocolError):
            client.start()


def test_the_machine_must_be_started_once_before_it_reads() -> None:
    client = Socks5Client("127.0.0.1", 1)
    with pytest.raises(LocalProtocolError):
        client.receive(NO_AUTH)
    with pytest.raises(LocalProtocolError):
        client.eof()
    client.start()
    with pytest.raises(LocalProtocolError):
        client.start()
    assert client.receive(NO_AUTH) == Send(b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x01")


@pytest.mark.parametrize(
    ("host", "port", "credentials", "message"),
    [
        ("127.0.0.1", 0, (), "port 0 is not in 1..65535"),
        ("127.0.0.1", 65536, (), "port 65536 is not in 1..65535"),
        ("127.0.0.1", True, (), "port True is not in 1..65535"),
        ("", 1, (), "is 0 bytes long, not 1..255"),
        ("a." * 127 + "bc", 1, (), "is 256 bytes long, not 1..255"),
        ("a" * 64 + ".example", 1, (), "is not a valid host name"),
        ("a..b", 1, (), "is not a valid host name"),
        ("a b", 1, (), "a space or a control character"),
        ("a\x00b", 1, (), "a space or a control character"),
        ("fe80::1%eth0", 1, (), "cannot carry an IPv6 scope"),
        ("127.0.0.1", 1, ("u", None), "give both or neither"),
        ("127.0.0.1", 1, (None, "p"), "give both or neither"),
        ("127.0.0.1", 1, ("", "p"), "the username is 0 bytes long"),
        ("127.0.0.1", 1, ("u", ""), "the password is 0 bytes long"),
        ("127.0.0.1", 1, ("u" * 256, "p"), "the username is 256 bytes long"),
        ("127.0.0.1", 1, ("u", "é" * 128), "the password is 256 bytes long"),
    ],
)
def test_the_constructor_refuses_what_the_requests_cannot_carry(
    host: str, port: int, credentials: tuple[str | None, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Socks5Client(host, port, *credentials)


def test_the_longest_name_and_credentials_fit() -> None:
    name = "a." * 127 + "b"
    client = Socks5Client(name, 65535, "u" * 255, "p" * 255)
    assert client.start() == b"\x05\x01\x02"
    sent = converse(Socks5Client(name, 65535), [NO_AUTH])[0]
    assert sent[1] == b"\x05\x01\x00\x03\xff" + name.encode() + b"\xff\xff"
