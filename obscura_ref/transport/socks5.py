"""A SOCKS5 client as a sans-IO machine: RFC 1928, with RFC 1929's username and password
(spec/privacy.md section 4: the connection machine runs it in its state `proxying`).

The machine never touches a socket. The caller opens a TCP connection to the proxy, writes
``start()``, feeds every byte the proxy sends to ``receive()`` and writes each ``Send`` it gets
back, until ``Connected`` (the stream now reaches the target) or ``Socks5Failed``. The messages,
as RFC 1928 and RFC 1929 draw them (sizes in bytes):

    client greeting        VER=5 NMETHODS METHODS        1 1 1..255   (RFC 1928 section 3)
    proxy's choice         VER=5 METHOD                  1 1
    client credentials     VER=1 ULEN UNAME PLEN PASSWD  1 1 1..255 1 1..255   (RFC 1929)
    proxy's verdict        VER=1 STATUS                  1 1
    client request         VER=5 CMD=1 RSV=0 ATYP DST.ADDR DST.PORT   (RFC 1928 section 4)
    proxy's reply          VER=5 REP RSV=0 ATYP BND.ADDR BND.PORT     (RFC 1928 section 6)

ATYP is 1 (four bytes of IPv4), 3 (a length byte, then a domain name) or 4 (16 bytes of IPv6).
The client speaks only when the proxy has answered, so a proxy that sends more than its answer
before the client's next request breaks the exchange; after the success reply, though, every
byte is the target's and is handed on unchanged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ..machines.events import LocalProtocolError
from ..machines.table import Rule

SOCKS_VERSION = 5  # RFC 1928 section 3
AUTH_VERSION = 1  # RFC 1929 section 2: the sub-negotiation's own version
NO_AUTHENTICATION = 0x00
USERNAME_PASSWORD = 0x02
NO_ACCEPTABLE_METHODS = 0xFF
CONNECT = 0x01
ATYP_IPV4 = 0x01
ATYP_DOMAIN = 0x03
ATYP_IPV6 = 0x04
ADDRESS_LENGTHS = {ATYP_IPV4: 4, ATYP_IPV6: 16}  # a domain's is its first byte
MAX_REPLY = 4 + 1 + 255 + 2  # the longest reply: a 255-byte domain name

# RFC 1928 section 6: the meaning of each REP the RFC assigns.
REPLY_MEANINGS = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}


class Socks5ErrorCode(Enum):
    """Why the negotiation failed; each value is the close reason the node reports."""

    PROXY_AUTH_FAILED = "proxy_auth_failed"  # no acceptable method, or the credentials refused
    PROXY_REFUSED = "proxy_refused"  # the proxy could not or would not reach the target
    PROXY_GARBAGE = "proxy_garbage"  # bytes no SOCKS5 proxy may send
    PROXY_CLOSED = "proxy_closed"  # the proxy ended the stream before the negotiation finished


@dataclass(frozen=True)
class NeedMore:
    """The proxy's answer is not complete yet: read more."""


@dataclass(frozen=True)
class Send:
    """Bytes to write to the proxy now."""

    data: bytes


@dataclass(frozen=True)
class Connected:
    """The proxy reached the target. ``leftover`` is what followed its reply: the target's first
    bytes, for the next layer. ``bound`` is the address the proxy reports it used."""

    leftover: bytes
    bound: tuple[str, int]


@dataclass(frozen=True)
class Socks5Failed:
    code: Socks5ErrorCode
    detail: str


Socks5Outcome = NeedMore | Send | Connected | Socks5Failed


class Socks5State(Enum):
    IDLE = "idle"  # the TCP connection to the proxy is not used yet
    AWAITING_METHOD = "awaiting_method"  # sent the greeting, awaits the proxy's choice
    AWAITING_AUTH = "awaiting_auth"  # sent the credentials, awaits the verdict
    AWAITING_REPLY = "awaiting_reply"  # sent the CONNECT request, awaits the reply
    CONNECTED = "connected"
    FAILED = "failed"


class Socks5Input(Enum):
    START = "start"  # the TCP connection to the proxy is open
    BYTES = "bytes"  # bytes from the proxy
    EOF = "eof"  # the proxy ended the stream


S = Socks5State
SOCKS5_TRANSITIONS: dict[tuple[Socks5State, Socks5Input], Rule[Socks5State]] = {
    (S.IDLE, Socks5Input.START): Rule(
        "_greet", (S.AWAITING_METHOD,), ("PRIV-40", "PRIV-41"), "send the greeting"
    ),
    (S.AWAITING_METHOD, Socks5Input.BYTES): Rule(
        "_read_method",
        (S.AWAITING_METHOD, S.AWAITING_AUTH, S.AWAITING_REPLY, S.FAILED),
        ("PRIV-40", "PRIV-41", "PRIV-42"),
        "check the method chosen; send the credentials or the CONNECT request",
    ),
    (S.AWAITING_AUTH, Socks5Input.BYTES): Rule(
        "_read_verdict",
        (S.AWAITING_AUTH, S.AWAITING_REPLY, S.FAILED),
        ("PRIV-41", "PRIV-42"),
        "check the credentials' verdict; send the CONNECT request",
    ),
    (S.AWAITING_REPLY, Socks5Input.BYTES): Rule(
        "_read_reply",
        (S.AWAITING_REPLY, S.CONNECTED, S.FAILED),
        ("PRIV-40", "PRIV-42"),
        "check the reply; hand on the bytes after it",
    ),
    (S.AWAITING_METHOD, Socks5Input.EOF): Rule(
        "_closed", (S.FAILED,), ("PRIV-42",), "fail: proxy_closed"
    ),
    (S.AWAITING_AUTH, Socks5Input.EOF): Rule(
        "_closed", (S.FAILED,), ("PRIV-42",), "fail: proxy_closed"
    ),
    (S.AWAITING_REPLY, Socks5Input.EOF): Rule(
        "_closed", (S.FAILED,), ("PRIV-42",), "fail: proxy_closed"
    ),
}


class Socks5Client:
    """One CONNECT through a SOCKS5 proxy to ``host``:``port``, with or without credentials."""

    def __init__(
        self, host: str, port: int, username: str | None = None, password: str | None = None
    ) -> None:
        # Checked now, so that a target the request cannot carry is refused when the machine is
        # made, not halfway through a negotiation.
        self._request = connect_request(host, port)
        self._credentials = credentials_request(username, password)
        self._method = NO_AUTHENTICATION if self._credentials is None else USERNAME_PASSWORD
        self.state = S.IDLE
        self._buffer = bytearray()  # the proxy's answer so far: at most one, MAX_REPLY bytes
        self._outcome: Socks5Outcome = NeedMore()

    def start(self) -> bytes:
        """The greeting, to write as the first bytes to the proxy."""
        self._fire(Socks5Input.START)
        assert isinstance(self._outcome, Send)
        return self._outcome.data

    def receive(self, data: bytes) -> Socks5Outcome:
        """Bytes from the proxy, in chunks of any size."""
        self._fire(Socks5Input.BYTES, data)
        return self._outcome

    def eof(self) -> Socks5Failed:
        """The proxy ended the stream before the negotiation finished."""
        self._fire(Socks5Input.EOF)
        assert isinstance(self._outcome, Socks5Failed)
        return self._outcome

    def _fire(self, input_: Socks5Input, data: bytes = b"") -> None:
        rule = SOCKS5_TRANSITIONS.get((self.state, input_))
        if rule is None:
            raise LocalProtocolError(
                f"SOCKS5 client in state {self.state.value} cannot {input_.value}"
            )
        self._buffer += data  # only once the state is known to take bytes
        handler: Callable[[], Socks5State] = getattr(self, rule.handler)
        next_state = handler()
        assert next_state in rule.targets, (self.state, input_, next_state)
        self.state = next_state

    # Handlers: each sets self._outcome and returns the next state.

    def _greet(self) -> Socks5State:
        # spec: PRIV-41 (one method only: offering both would let the proxy skip the credentials)
        self._outcome = Send(bytes([SOCKS_VERSION, 1, self._method]))
        return S.AWAITING_METHOD

    def _read_method(self) -> Socks5State:
        if len(self._buffer) < 2:
            return self._need_more()
        version, method = self._buffer[0], self._buffer[1]
        if version != SOCKS_VERSION:
            return self._fail(
                Socks5ErrorCode.PROXY_GARBAGE, f"the method reply's version is {version}, not 5"
            )
        if method == NO_ACCEPTABLE_METHODS:  # spec: PRIV-42
            return self._fail(
                Socks5ErrorCode.PROXY_AUTH_FAILED,
                f"the proxy accepts none of the methods offered (0x{self._method:02x})",
            )
        if method != self._method:
            return self._fail(
                Socks5ErrorCode.PROXY_GARBAGE,
                f"the proxy chose method 0x{method:02x}, not offered (0x{self._method:02x})",
            )
        if self._out_of_turn(2, "its method reply"):
            return S.FAILED
        if self._credentials is not None:
            self._outcome = Send(self._credentials)  # spec: PRIV-41
            return S.AWAITING_AUTH
        self._outcome = Send(self._request)
        return S.AWAITING_REPLY

    def _read_verdict(self) -> Socks5State:
        if len(self._buffer) < 2:
            return self._need_more()
        version, status = self._buffer[0], self._buffer[1]
        if version != AUTH_VERSION:
            return self._fail(
                Socks5ErrorCode.PROXY_GARBAGE, f"the RFC 1929 reply's version is {version}, not 1"
            )
        if status != 0:  # spec: PRIV-42
            return self._fail(
                Socks5ErrorCode.PROXY_AUTH_FAILED,
                f"the proxy refused the username and password (status 0x{status:02x})",
            )
        if self._out_of_turn(2, "its RFC 1929 reply"):
            return S.FAILED
        self._outcome = Send(self._request)
        return S.AWAITING_REPLY

    def _read_reply(self) -> Socks5State:
        buffer = self._buffer
        if len(buffer) < 5:  # up to ATYP and the first byte of BND.ADDR (a domain's length)
            return self._need_more()
        version, code, reserved, atyp = buffer[0], buffer[1], buffer[2], buffer[3]
        if version != SOCKS_VERSION:
            return self._fail(
                Socks5ErrorCode.PROXY_GARBAGE, f"the CONNECT reply's version is {version}, not 5"
            )
        if reserved != 0:
            return self._fail(
                Socks5ErrorCode.PROXY_GARBAGE,
                f"the CONNECT reply's reserved byte is {reserved}, not 0",
            )
        if atyp == ATYP_DOMAIN:
            if buffer[4] == 0:
                return self._fail(
                    Socks5ErrorCode.PROXY_GARBAGE, "the CONNECT reply's domain has length 0"
                )
            address_end = 5 + buffer[4]
        elif atyp in ADDRESS_LENGTHS:
            address_end = 4 + ADDRESS_LENGTHS[atyp]
        else:
            return self._fail(
                Socks5ErrorCode.PROXY_GARBAGE,
                f"the CONNECT reply's address type is {atyp}, not 1, 3 or 4",
            )
        if code != 0:  # spec: PRIV-42 (the rest of a failure reply says nothing of use)
            meaning = REPLY_MEANINGS.get(code, f"unassigned code 0x{code:02x}")
            return self._fail(Socks5ErrorCode.PROXY_REFUSED, f"{meaning} (REP 0x{code:02x})")
        if len(buffer) < address_end + 2:
            return self._need_more()
        bound = (bound_host(atyp, bytes(buffer[4:address_end])), read_port(buffer, address_end))
        # spec: PRIV-40 (what follows the reply is the target's: handed on, byte for byte)
        leftover = bytes(buffer[address_end + 2 :])
        self._buffer.clear()
        self._outcome = Connected(leftover, bound)
        return S.CONNECTED

    def _closed(self) -> Socks5State:
        return self._fail(
            Socks5ErrorCode.PROXY_CLOSED,
            f"the proxy ended the stream in state {self.state.value}"
            f" ({len(self._buffer)} bytes of its answer read)",
        )

    def _need_more(self) -> Socks5State:
        self._outcome = NeedMore()
        return self.state

    def _fail(self, code: Socks5ErrorCode, detail: str) -> Socks5State:
        self._outcome = Socks5Failed(code, detail)
        self._buffer.clear()
        return S.FAILED

    def _out_of_turn(self, length: int, answer: str) -> bool:
        """Fails the machine if the proxy sent more than ``answer`` (``length`` bytes) before
        the client's next request: it cannot be answering that request yet."""
        extra = len(self._buffer) - length
        if extra == 0:
            self._buffer.clear()
            return False
        self._fail(
            Socks5ErrorCode.PROXY_GARBAGE,
            f"{extra} bytes after {answer}, before the client's next request",
        )
        return True


def connect_request(host: str, port: int) -> bytes:
    """The CONNECT request for ``host``:``port`` (RFC 1928 section 4), or ValueError."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"target port {port!r} is not in 1..65535")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if isinstance(literal, ipaddress.IPv4Address):
        address = bytes([ATYP_IPV4]) + literal.packed
    elif isinstance(literal, ipaddress.IPv6Address):
        if literal.scope_id is not None:
            raise ValueError(f"target {host!r}: SOCKS5 cannot carry an IPv6 scope")
        address = bytes([ATYP_IPV6]) + literal.packed
    else:
        # spec: PRIV-40 (a name goes to the proxy as it is, for the proxy to resolve)
        name = domain_name(host)
        address = bytes([ATYP_DOMAIN, len(name)]) + name
    return bytes([SOCKS_VERSION, CONNECT, 0]) + address + port.to_bytes(2, "big")


def domain_name(host: str) -> bytes:
    """``host`` as RFC 1928's DST.ADDR domain: 1..255 bytes of printable ASCII, a non-ASCII
    name in its IDNA form; ValueError otherwise."""
    try:
        name = host.encode("idna")
    except UnicodeError as error:
        raise ValueError(f"target {host!r} is not a valid host name: {error}") from None
    if not 1 <= len(name) <= 255:
        raise ValueError(f"target {host!r} is {len(name)} bytes long, not 1..255")
    if any(not 0x21 <= byte <= 0x7E for byte in name):
        # A space or a control byte (a NUL, say) could cut the name short at the proxy.
        raise ValueError(f"target {host!r} holds a space or a control character")
    return name


def credentials_request(username: str | None, password: str | None) -> bytes | None:
    """The RFC 1929 request, or None without credentials; ValueError if only one is given or
    either is not 1..255 bytes of UTF-8."""
    if username is None and password is None:
        return None
    if username is None or password is None:
        raise ValueError("a username and a password go together: give both or neither")
    user, secret = username.encode(), password.encode()
    if not 1 <= len(user) <= 255:
        raise ValueError(f"the username is {len(user)} bytes long, not 1..255 (RFC 1929)")
    if not 1 <= len(secret) <= 255:
        raise ValueError(f"the password is {len(secret)} bytes long, not 1..255 (RFC 1929)")
    return bytes([AUTH_VERSION, len(user)]) + user + bytes([len(secret)]) + secret


def bound_host(atyp: int, address: bytes) -> str:
    """BND.ADDR as text. A domain is never decoded strictly: it is only reported."""
    if atyp == ATYP_IPV4:
        return str(ipaddress.IPv4Address(address))
    if atyp == ATYP_IPV6:
        return str(ipaddress.IPv6Address(address))
    return address[1:].decode("ascii", errors="backslashreplace")


def read_port(buffer: bytearray, offset: int) -> int:
    return int.from_bytes(buffer[offset : offset + 2], "big")
