"""The benchmarks' load client in Python, used where bench/client.c cannot be built; it takes
the same arguments, prints the same lines and counts the same way (see client.c).

    python bench/client.py rt|hs|hold HOST PORT COUNT SECONDS HANDSHAKE_HEX [PING_HEX]

It costs far more CPU per operation than the C client: with many connections it, not the
server, may be the bottleneck; its CPU share is reported beside every figure.
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import sys
import time

HEADER, PONG = 16, 3


class Conn:
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


class Load:
    def __init__(self, address: tuple[str, int], handshake: bytes, ping: bytes) -> None:
        self.address = address
        self.handshake = handshake
        self.ping = ping
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
        opened = pongs = offset = 0
        while len(buffer) - offset >= HEADER:
            end = offset + HEADER + int.from_bytes(buffer[offset + 8 : offset + 12], "little")
            if len(buffer) < end:
                break
            if conn.state == "handshaking":
                conn.state = "open"
                opened += 1
            elif buffer[offset + 4] == PONG:
                pongs += 1
            offset = end
        del buffer[:offset]
        return opened, pongs, False

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
            conn.sock.send(load.ping)
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
                    conn.sock.send(load.ping)
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
    mode, host, port, count_text, seconds_text, handshake_hex = sys.argv[1:7]
    ping = bytes.fromhex(sys.argv[7]) if len(sys.argv) > 7 else b""
    count, seconds = int(count_text), float(seconds_text)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load = Load((host, int(port)), bytes.fromhex(handshake_hex), ping)
    try:
        conns = [] if mode == "hs" else load.open_all(count)
    except OSError as exc:
        print(f"error {exc}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    for _ in sys.stdin:
        window(load, mode, conns, count, seconds)


if __name__ == "__main__":
    main()
