"""The benchmarks' load client in Python, used where bench/client.c cannot be built; it takes
the same arguments, prints the same lines and counts the same way (see client.c).

    python bench/client.py [--encrypted] rt|hs|hold HOST PORT COUNT SECONDS HANDSHAKE_HEX [PING_HEX]

It costs far more CPU per operation than the C client: with many connections it, not the
server, may be the bottleneck; its CPU share is reported beside every figure.

``--encrypted`` (rt and hold; the C client has no such mode) runs the encrypted transport of
spec/privacy.md section 3 on every connection: HANDSHAKE_HEX must set the EncryptedTransport
bit, and so must the server's handshake. After the two handshake frames the client, as the
initiator, sends Noise message 1 and reads message 2; a connection counts as open once it has
its keys. Each Ping then goes out in a sealed record (not padded) and each Pong is opened from
the records that come back.
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import struct
import sys
import time

from obscura_ref.machines.padding import SystemRandomSource
from obscura_ref.machines.secure import draw_ephemeral, noise_prologue
from obscura_ref.transport.noise import (
    MESSAGE2_SIZE,
    TAG_SIZE,
    CipherState,
    NoiseError,
    NoiseHandshake,
)
from obscura_ref.transport.records import SEALED_LENGTH_SIZE, RecordSealer, after_use
from obscura_ref.wire.registry import PrivacyFeature

HEADER, PONG = 16, 3
_LENGTH = struct.Struct("<I")  # a record's plaintext length, once opened
_PRIVACY_FEATURES = slice(32, 36)  # of a handshake frame: header 16, then 4 + 8 + 4 bytes


class Conn:
    __slots__ = (
        "buffer",
        "index",
        "noise",
        "receive",
        "record_length",
        "sealer",
        "sock",
        "state",
    )

    def __init__(self, index: int, address: tuple[str, int], number: int) -> None:
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setsockopt(socket.IPPROTO_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
        a, b, c = 32 + number // 62500 % 64, number // 250 % 250, 1 + number % 250
        self.sock.bind((f"127.{a}.{b}.{c}", 0))
        code = self.sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            raise OSError(code, "connect")
        self.index = index
        self.state = "connecting"
        self.buffer = bytearray()
        # The encrypted transport's, once the handshakes asked for it: the Noise handshake
        # while it runs, then a sealer for this side's records and the CipherState that opens
        # the server's, with the length of the record being read once its length is opened.
        self.noise: NoiseHandshake | None = None
        self.sealer: RecordSealer | None = None
        self.receive: CipherState | None = None
        self.record_length: int | None = None


class Load:
    def __init__(
        self, address: tuple[str, int], handshake: bytes, ping: bytes, encrypted: bool = False
    ) -> None:
        self.address = address
        self.handshake = handshake
        self.ping = ping
        self.encrypted = encrypted
        self.random = SystemRandomSource()
        self.selector = selectors.DefaultSelector()
        self.opened = 0

    def start(self, index: int) -> Conn:
        conn = Conn(index, self.address, self.opened)
        self.opened += 1
        self.selector.register(conn.sock, selectors.EVENT_WRITE, conn)
        return conn

    def drop(self, conn: Conn) -> None:
        self.selector.unregister(conn.sock)
        conn.sock.close()
        conn.state = "closed"

    def send_ping(self, conn: Conn) -> None:
        sealer = conn.sealer
        conn.sock.send(self.ping if sealer is None else sealer.seal(self.ping))

    def ready(self, conn: Conn) -> tuple[int, int, bool]:
        """(opened, pongs, lost) of one readiness."""
        if conn.state == "connecting":
            if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.drop(conn)
                return 0, 0, True
            conn.sock.send(self.handshake)
            self.selector.modify(conn.sock, selectors.EVENT_READ, conn)
            conn.state = "handshaking"
            return 0, 0, False
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return 0, 0, False
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return 0, 0, True
        buffer = conn.buffer
        buffer += data
        if conn.receive is not None:
            try:
                return 0, self.records(conn), False
            except NoiseError:  # a record that does not open: the stream is lost
                self.drop(conn)
                return 0, 0, True
        if conn.state == "securing":
            return self.secure(conn), 0, False
        opened = pongs = offset = 0
        while len(buffer) - offset >= HEADER:
            end = offset + HEADER + int.from_bytes(buffer[offset + 8 : offset + 12], "little")
            if len(buffer) < end:
                break
            if conn.state == "handshaking":
                if self.encrypted:  # what follows the server's handshake is Noise's
                    return self.secure(conn), 0, False
                conn.state = "open"
                opened += 1
            elif buffer[offset + 4] == PONG:
                pongs += 1
            offset = end
        del buffer[:offset]
        return opened, pongs, False

    def secure(self, conn: Conn) -> int:
        """The Noise handshake, in the initiator's role, from the server's whole handshake frame
        at the start of the buffer; 1 once the keys are in place."""
        buffer = conn.buffer
        if conn.state == "handshaking":
            end = HEADER + int.from_bytes(buffer[8:12], "little")
            theirs = bytes(buffer[:end])
            del buffer[:end]
            offered = int.from_bytes(theirs[_PRIVACY_FEATURES], "little")
            if not offered & PrivacyFeature.EncryptedTransport:
                raise ConnectionError("the server's handshake does not offer encryption")
            # The prologue binds both handshake frames as they travelled: ours as we sent it.
            prologue = noise_prologue(self.handshake, theirs)
            conn.noise = NoiseHandshake(True, prologue, draw_ephemeral(self.random))
            conn.sock.send(conn.noise.write_message())
            conn.state = "securing"
        if len(buffer) < MESSAGE2_SIZE:
            return 0
        assert conn.noise is not None
        conn.noise.read_message(bytes(buffer[:MESSAGE2_SIZE]))
        del buffer[:MESSAGE2_SIZE]
        send, conn.receive = conn.noise.split()
        conn.sealer = RecordSealer(send, pad=False)
        conn.noise = None
        conn.state = "open"
        self.records(conn)  # records sent right after message 2 (none are expected)
        return 1

    @staticmethod
    def records(conn: Conn) -> int:
        """The Pongs among the whole records at the start of the connection's buffer, which
        loses them. This is RecordOpener's work cut to what a trusted server sends (no record
        size limit, no diagnosis of a bad tag), with the same CipherState calls and rekey rule,
        because the client's CPU per round trip limits what it can drive: it skips the opener's
        list of pushed views and its copy of every read."""
        buffer, receive = conn.buffer, conn.receive
        assert receive is not None
        pongs = offset = 0
        while True:
            length = conn.record_length
            if length is None:
                if len(buffer) - offset < SEALED_LENGTH_SIZE:
                    break
                sealed = buffer[offset : offset + SEALED_LENGTH_SIZE]
                length = _LENGTH.unpack(receive.decrypt_with_ad(b"", sealed))[0]
                after_use(receive)
                offset += SEALED_LENGTH_SIZE
                conn.record_length = length
            end = offset + length + TAG_SIZE
            if len(buffer) < end:
                break
            plaintext = receive.decrypt_with_ad(b"", buffer[offset:end])
            after_use(receive)
            conn.record_length = None
            if plaintext[4] == PONG:  # the record's plaintext begins with one whole frame
                pongs += 1
            offset = end
        del buffer[:offset]
        return pongs

    def open_all(self, count: int) -> list[Conn]:
        conns: list[Conn] = []
        open_ = 0
        deadline = time.monotonic() + 1800  # opening 10,000 can take minutes
        while len(conns) < min(count, 64):
            conns.append(self.start(len(conns)))
        while open_ < count:
            if time.monotonic() > deadline:
                raise TimeoutError("setup")
            for key, _ in self.selector.select(1.0):
                opened, _, lost = self.ready(key.data)
                if lost:
                    raise ConnectionError("a connection closed during setup")
                open_ += opened
                if opened and len(conns) < count:
                    conns.append(self.start(len(conns)))
        return conns


def window(load: Load, mode: str, conns: list[Conn], count: int, seconds: float) -> None:
    """One window: see client.c."""
    ops = all_ops = 0
    in_flight = count if mode in ("hs", "rt") else 0
    begin = time.monotonic()
    end, stopped, running = begin + seconds, 0.0, True
    if mode == "hs":
        conns[:] = [load.start(index) for index in range(count)]
    if mode == "rt":
        for conn in conns:
            load.send_ping(conn)
    while running or (in_flight > 0 and time.monotonic() < stopped + 2):
        now = time.monotonic()
        if running and now >= end:
            running, stopped = False, now
        left = end - now if running else stopped + 2 - now
        for key, _ in load.selector.select(max(left, 0.0)):
            conn = key.data
            if conn.state == "closed":
                continue
            opened, pongs, lost = load.ready(conn)
            if mode == "hs" and (opened or lost):
                if opened:
                    all_ops += 1
                    ops += running
                    load.drop(conn)
                if running:
                    conns[conn.index] = load.start(conn.index)
                else:
                    in_flight -= 1
            elif mode == "rt" and pongs:
                all_ops += pongs
                ops += pongs if running else 0
                if running:
                    load.send_ping(conn)
                else:
                    in_flight -= 1
            elif mode == "rt" and lost:
                print("error a connection closed", flush=True)
                sys.exit(1)
    if mode == "hold":
        for conn in conns:
            try:
                if conn.state == "open":
                    conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                ops += 1
        all_ops = ops
    print(f"done {ops} {all_ops} {(stopped or time.monotonic()) - begin:.6f}", flush=True)


def main() -> None:
    args = sys.argv[1:]
    encrypted = "--encrypted" in args
    if encrypted:
        args.remove("--encrypted")
    mode, host, port_text, count_text, seconds_text, handshake_hex = args[:6]
    if encrypted and mode == "hs":
        print("error --encrypted runs with rt and hold only", flush=True)
        sys.exit(1)
    ping = bytes.fromhex(args[6]) if len(args) > 6 else b""
    count, seconds = int(count_text), float(seconds_text)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load = Load((host, int(port_text)), bytes.fromhex(handshake_hex), ping, encrypted)
    try:
        conns = [] if mode == "hs" else load.open_all(count)
    except (OSError, NoiseError) as exc:  # a refused connection, or a Noise message 2 that fails
        print(f"error {exc}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    for _ in sys.stdin:
        window(load, mode, conns, count, seconds)


if __name__ == "__main__":
    main()
