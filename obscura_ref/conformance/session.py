"""Session vectors, replayed: the runner plays the peer of the implementation under test over
real TCP, one scripted case at a time (conformance/README.md, "Session vectors").

The runner never uses the reference's machines to play the peer: it builds its frames from the
wire layer (so that it can send wrong bytes on purpose) and checks every byte the implementation
sends with the wire decoder (spec/wire.md), so an implementation that sends a malformed frame
fails whatever step it is in. Sockets are non-blocking and every wait has a deadline: a case
ends, passed or failed, within the times its steps allow.

A case's steps use connection names (``"a"``, ``"b"``, ...). ``connect`` opens a connection to
the implementation's listening address; ``accept`` takes the next connection the implementation
opened to the runner's own address (the profile has it keep a persistent connection there).
Connections the implementation opens that no ``accept`` step takes are read and discarded.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..machines.reasons import CloseReason
from ..transport.elligator import (
    FIRST_PROLOGUE,
    HIDDEN_SIZE,
    hidden_key_pair,
    hide_message,
    unhide_message,
)
from ..transport.garbage import (
    MAX_GARBAGE,
    Found,
    GarbageError,
    TerminatorScanner,
    garbage_terminators,
)
from ..transport.noise import (
    MESSAGE1_SIZE,
    MESSAGE2_SIZE,
    NoiseError,
    NoiseHandshake,
    public_key,
)
from ..transport.records import RecordError
from ..wire import MAGIC, DecodeError, Frame, FrameDecoder, Handshake, encode_frame
from ..wire.errors import EncodeError
from ..wire.jsonform import frame_from_json, frame_to_json
from .sealing import PeerCrypto

Address = tuple[str, int]
JsonObject = dict[str, Any]

REASON_CODES = {reason.label: reason.code for reason in CloseReason}
POLL = 0.02  # seconds between looks while a step sends and watches at once
CONNECT_TIMEOUT = 3.0  # seconds for the runner's own TCP connects
SEND_TIMEOUT = 5.0  # seconds the implementation has to take one write of a send step


class StepFailed(Exception):
    """A step did not see what the case expects; the message says what differed."""


class Skip(Exception):
    """The case cannot run against this target (it needs the implementation to dial or stop)."""


class Target(Protocol):
    """The implementation under test, for the time of one case."""

    def listen_address(self) -> Address: ...

    def stop(self) -> None:
        """Ask the implementation to stop gracefully (SIGTERM for a process); Skip if the
        target cannot be stopped by the runner."""

    def wait_stopped(self, timeout: float) -> str | None:
        """None once it has stopped with status 0 within ``timeout``, else what went wrong."""


@dataclass
class Received:
    at: float  # monotonic time the runner read the frame
    frame: Frame


class PeerSocket:
    """One TCP connection of the runner, with every frame the implementation sent on it."""

    def __init__(
        self, name: str, sock: socket.socket, opened_at: float, runner_initiated: bool
    ) -> None:
        sock.setblocking(False)
        self.name = name
        self.runner_initiated = runner_initiated  # the runner opened it: the Noise initiator
        self.sock = sock
        self.opened_at = opened_at
        self.decoder = FrameDecoder()
        self.frames: deque[Received] = deque()
        self.ended_at: float | None = None  # the implementation ended its side
        self.failed: tuple[float, str] | None = None  # a socket error: reset, ...
        self.wire_error: DecodeError | RecordError | None = None
        self.closed = False  # the runner closed its socket
        self.crypto = PeerCrypto()  # the encrypted transport, once both offer it (PRIV-11)

    @property
    def reading(self) -> bool:
        return not (self.closed or self.ended_at is not None or self.failed is not None)

    def on_readable(self, now: float) -> None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.failed = (now, exc.strerror or str(exc))
            return
        if not data:
            self.ended_at = now
            opener = self.crypto.opener
            eof = self.decoder.eof if opener is None else opener.eof  # spec: PRIV-29
            error = None if self.wire_error else eof()
            if error is not None:
                self.wire_error = error
            return
        if self.wire_error is not None:
            return
        crypto = self.crypto
        if crypto.opener is not None:
            crypto.opener.push(data)  # spec: PRIV-24 (records, after the Noise handshake)
            self._take(now, crypto.opened())
            return
        if crypto.raw is not None:
            crypto.raw += data  # the Noise handshake's, for the ``secure`` step
            return
        self.decoder.push(data)
        while (item := self.decoder.pull()) is not None:
            self._take(now, [item])
            if self.wire_error is not None:
                return
            if isinstance(item, Frame) and isinstance(item.message, Handshake):
                if crypto.peer_handshake is None:
                    crypto.peer_handshake = encode_frame(item.message, item.padding)
                self.switch_if_negotiated()
                if crypto.raw is not None:
                    return

    def _take(self, now: float, items: list[Frame | DecodeError | RecordError]) -> None:
        for item in items:
            if isinstance(item, DecodeError | RecordError):
                self.wire_error = item
                return
            self.frames.append(Received(now, item))

    def take_opened(self, now: float) -> None:
        """The frames of records that arrived with the Noise message."""
        if self.crypto.opener is not None and self.wire_error is None:
            self._take(now, self.crypto.opened())

    def switch_if_negotiated(self) -> None:
        """Both handshakes offered encryption: what follows them is the Noise handshake's
        (spec: PRIV-11), bytes already read after the handshake frame included."""
        crypto = self.crypto
        if crypto.raw is None and crypto.opener is None and crypto.negotiated:
            crypto.raw = bytearray(self.decoder.take_rest())

    def send_now(self, data: bytes) -> str | None:
        """Write what the socket takes at once; the error text if the socket failed."""
        try:
            self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            return exc.strerror or str(exc)
        return None

    def end(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


def describe(frame: Frame) -> str:
    view = frame_to_json(frame)
    fields = ", ".join(f"{k}={v}" for k, v in view.items() if k not in ("type", "code"))
    return f"{view['type']}({fields})"


def frame_view(frame: Frame) -> JsonObject:
    """The JSON frame form plus ``payload_length``, which constraints may name."""
    view = frame_to_json(frame)
    view["payload_length"] = len(frame.message.encode()) + len(frame.padding)
    return view


class Session:
    """The runner's side of one case: its sockets, captured values and marks."""

    def __init__(
        self,
        target: Target,
        listener: socket.socket | None,
        clock: Callable[[], float] = time.monotonic,
        started_at: float | None = None,
        source: str | None = None,
    ) -> None:
        """``started_at``: when the case began, before the target was started; steps may count
        from it as the mark ``start``. ``source``: the address the runner's connections come
        from unless a step names one (a case of its own, so that a ban one case provokes does
        not reach the next)."""
        self.source = source
        self.target = target
        self.listener = listener
        self.clock = clock
        self.conns: dict[str, PeerSocket] = {}
        self.unclaimed: deque[PeerSocket] = deque()
        self.vars: dict[str, Any] = {}
        self.marks: dict[str, float] = {"start": self.clock() if started_at is None else started_at}
        self.transcript: list[str] = []
        self._selector = selectors.DefaultSelector()
        if listener is not None:
            listener.setblocking(False)
            self._selector.register(listener, selectors.EVENT_READ, None)
        self._step_start = self.clock()

    # ---- running a case ------------------------------------------------------------------

    def run(self, steps: list[JsonObject]) -> None:
        for number, step in enumerate(steps, 1):
            self._step_start = self.clock()
            op = step["op"]
            handler = getattr(self, f"_op_{op}", None)
            if handler is None:
                raise StepFailed(f"step {number}: unknown op {op!r}")
            try:
                handler(step)
                self._check_wire()
            except StepFailed as exc:
                raise StepFailed(f"step {number} ({op}): {exc}") from None
            self.transcript.append(f"step {number} {op}: ok")

    def close(self) -> None:
        for conn in [*self.conns.values(), *self.unclaimed]:
            conn.close()
        self._selector.close()

    # ---- the event pump ------------------------------------------------------------------

    def pump(self, until: float) -> None:
        """Read every open connection (and accept new ones) until ``until``."""
        while True:
            left = until - self.clock()
            for key, _ in self._selector.select(max(0.0, left)):
                now = self.clock()
                if key.data is None:
                    self._accept(now)
                else:
                    conn: PeerSocket = key.data
                    conn.on_readable(now)
                    if not conn.reading:
                        self._selector.unregister(conn.sock)
                        if conn in self.unclaimed:  # nobody is waiting for it: let it go
                            self.unclaimed.remove(conn)
                            conn.close()
            if left <= 0:
                return

    def pump_until(self, done: Callable[[], bool], deadline: float) -> bool:
        while not done():
            if self.clock() >= deadline:
                return done()
            self.pump(min(deadline, self.clock() + POLL))
        return True

    def _accept(self, now: float) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn = PeerSocket("?", sock, now, runner_initiated=False)
        self.unclaimed.append(conn)
        self._selector.register(sock, selectors.EVENT_READ, conn)

    def _watch(self, conn: PeerSocket) -> None:
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)

    def _check_wire(self) -> None:
        for conn in self.conns.values():
            if conn.wire_error is not None:
                error = conn.wire_error
                raise StepFailed(
                    f"the implementation sent bytes on {conn.name} that do not decode: "
                    f"{error.code.value} ({error.requirement}): {error.detail}"
                )

    # ---- helpers -------------------------------------------------------------------------

    def _conn(self, step: JsonObject) -> PeerSocket:
        name = step["conn"]
        conn = self.conns.get(name)
        if conn is None:
            raise StepFailed(f"no connection named {name!r} (a vector error)")
        return conn

    def _reference(self, step: JsonObject) -> float:
        """The time a step's windows count from: a mark, or the step's own start."""
        since = step.get("since")
        if since is None:
            return self._step_start
        if since not in self.marks:
            raise StepFailed(f"no mark named {since!r} (a vector error)")
        return self.marks[since]

    def _mark(self, step: JsonObject, at: float) -> None:
        if "mark" in step:
            self.marks[step["mark"]] = at

    def _window(self, step: JsonObject, at: float, what: str) -> None:
        """Check that ``at`` lies in the step's [not_before, within] window."""
        if "not_before" not in step:
            return
        elapsed = at - self._reference(step)
        since = step.get("since", "the step's start")
        earliest = step["not_before"]
        if elapsed < earliest:
            raise StepFailed(
                f"{what} {elapsed:.3f} s after {since}, before the earliest allowed ({earliest} s)"
            )

    def _substitute(self, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"var"}:
                name = value["var"]
                if name not in self.vars:
                    raise StepFailed(f"no captured value {name!r}")
                return self.vars[name]
            return {k: self._substitute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._substitute(v) for v in value]
        return value

    def _frames_of(self, step: JsonObject, key: str = "frames") -> list[tuple[bytes, bool]]:
        """The bytes of each frame of the step, and whether it is a handshake."""
        out = []
        for obj in step[key]:
            try:
                frame = frame_from_json(self._substitute(obj))
            except EncodeError as exc:
                raise StepFailed(f"cannot build the frame {obj}: {exc} (a vector error)") from exc
            data = encode_frame(frame.message, frame.padding)
            out.append((data, isinstance(frame.message, Handshake)))
        return out

    def _bytes_of(self, conn: PeerSocket, step: JsonObject, key: str = "frames") -> bytes:
        """The step's bytes: raw ``hex``, or its frames, each sealed in a record once the
        connection is encrypted (spec: PRIV-24)."""
        if "hex" in step:
            return bytes.fromhex(step["hex"])
        frames = self._frames_of(step, key)
        if conn.crypto.send is not None:
            return conn.crypto.seal([data for data, _ in frames])
        for data, handshake in frames:
            if handshake:
                conn.crypto.sent_handshake(data)
        return b"".join(data for data, _ in frames)

    def _write(self, conn: PeerSocket, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = conn.sock.send(view)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                raise StepFailed(
                    f"could not send on {conn.name}: {exc.strerror or exc} (the implementation "
                    "closed the connection?)"
                ) from None
            view = view[sent:]
            if view:
                if self.clock() >= deadline:
                    raise StepFailed(f"the implementation did not read {len(view)} bytes")
                self.pump(self.clock() + POLL)

    def _next_frame(self, conn: PeerSocket, ignore: list[str], deadline: float) -> Received | None:
        """The next frame not of an ignored type, or None at end of stream or the deadline."""

        def ready() -> bool:
            while conn.frames and frame_view(conn.frames[0].frame)["type"] in ignore:
                conn.frames.popleft()
            return bool(conn.frames) or not conn.reading or conn.wire_error is not None

        self.pump_until(ready, deadline)
        self._check_wire()
        return conn.frames.popleft() if conn.frames else None

    def _ending(self, conn: PeerSocket) -> str:
        if conn.failed is not None:
            return f"the connection failed ({conn.failed[1]})"
        if conn.ended_at is not None:
            return "the implementation ended the stream"
        return "nothing arrived"

    # ---- the ops -------------------------------------------------------------------------

    def _op_connect(self, step: JsonObject) -> None:
        name = step["conn"]
        if name in self.conns:  # a name used again: the old connection is done with
            self._op_close({"conn": name})
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if "rcvbuf" in step:  # set before connecting, so the window starts small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, step["rcvbuf"])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        source = step.get("source", self.source)
        if source is not None:  # another loopback address: another address, maybe group
            sock.bind((source, 0))
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(self.target.listen_address())
        except OSError as exc:
            sock.close()
            raise StepFailed(f"cannot connect to the implementation: {exc}") from None
        conn = PeerSocket(name, sock, self.clock(), runner_initiated=True)
        self.conns[name] = conn
        self._watch(conn)
        self._mark(step, conn.opened_at)

    def _op_accept(self, step: JsonObject) -> None:
        if self.listener is None:
            raise Skip("needs the implementation to dial the runner (--spawn)")
        deadline = self._reference(step) + step["within"]
        if not self.pump_until(lambda: any(c.reading for c in self.unclaimed), deadline):
            raise StepFailed(f"the implementation did not connect within {step['within']} s")
        conn = next(c for c in self.unclaimed if c.reading)
        self.unclaimed.remove(conn)
        conn.name = step["conn"]
        self.conns[conn.name] = conn
        self._window(step, conn.opened_at, "the implementation connected")
        self._mark(step, conn.opened_at)

    def _op_send(self, step: JsonObject) -> None:
        """The bytes in one write, or in writes of the ``chunks`` sizes (what is left after
        them in a last write), ``pause`` seconds apart; all of it ``repeat`` times, ``every``
        seconds apart."""
        conn = self._conn(step)
        for repetition in range(step.get("repeat", 1)):
            if repetition:
                self.pump(self.clock() + step.get("every", 0.0))
            data = self._bytes_of(conn, step)  # anew: a sealed record takes fresh nonces
            writes, offset = [], 0
            for size in step.get("chunks", []):
                writes.append(data[offset : offset + size])
                offset += size
            writes.append(data[offset:])
            writes = [piece for piece in writes if piece]
            for index, piece in enumerate(writes):
                if index:
                    self.pump(self.clock() + step.get("pause", 0.0))
                self._write(conn, piece, self.clock() + SEND_TIMEOUT)
        conn.switch_if_negotiated()  # spec: PRIV-11 (after our handshake, Noise's bytes)
        self._mark(step, self.clock())

    def _op_expect(self, step: JsonObject) -> None:
        conn = self._conn(step)
        deadline = self._reference(step) + step["within"]
        item = self._next_frame(conn, step.get("ignore", []), deadline)
        wanted = step["frame"]["type"]
        if item is None:
            raise StepFailed(
                f"expected {wanted} on {conn.name} within {step['within']} s; {self._ending(conn)}"
            )
        view = frame_view(item.frame)
        problems = match(view, step["frame"], self.vars)
        if problems:
            raise StepFailed(f"got {describe(item.frame)}: " + "; ".join(problems))
        self._window(step, item.at, f"{wanted} arrived")
        for name, field in step.get("capture", {}).items():
            self.vars[name] = view[field]
        self._mark(step, item.at)

    def _op_expect_close(self, step: JsonObject) -> None:
        conn = self._conn(step)
        deadline = self._reference(step) + step["within"]
        reasons: list[str] = step["disconnect"]
        ignore = step.get("ignore", [])
        self.pump_until(lambda: not conn.reading, deadline)
        self._check_wire()
        frames = [r for r in conn.frames if frame_view(r.frame)["type"] not in ignore]
        conn.frames.clear()
        if conn.reading:
            seen = "; it sent " + ", ".join(describe(r.frame) for r in frames) if frames else ""
            raise StepFailed(
                f"expected the implementation to close {conn.name} within {step['within']} s{seen}"
            )
        if conn.failed is not None and not step.get("reset_ok", False):
            raise StepFailed(
                f"the connection failed ({conn.failed[1]}) instead of closing gracefully with "
                "its end of stream (NODE-4)"
            )
        closed_at = conn.ended_at if conn.failed is None else conn.failed[0]
        assert closed_at is not None
        expected = " or ".join(reasons) if reasons else "no Disconnect"
        if not frames:
            if reasons and not step.get("allow_plain", False):
                raise StepFailed(f"closed without a Disconnect; expected Disconnect {expected}")
            self._window(step, closed_at, "closed")
            self._mark(step, closed_at)
            return
        last = frames[-1]
        view = frame_view(last.frame)
        codes = {REASON_CODES[name]: name for name in reasons}
        if view["type"] != "Disconnect" or view["reason"] not in codes:
            got = ", ".join(describe(r.frame) for r in frames)
            raise StepFailed(f"expected {expected} then the end of stream; got {got}")
        if len(frames) > 1:
            got = ", ".join(describe(r.frame) for r in frames[:-1])
            raise StepFailed(f"unexpected frames before the Disconnect: {got}")
        self._window(step, last.at, f"Disconnect {codes[view['reason']]} arrived")
        self._mark(step, last.at)

    def _op_expect_silence(self, step: JsonObject) -> None:
        conn = self._conn(step)
        ignore = step.get("ignore", [])
        self.pump(self.clock() + step["for"])
        self._check_wire()
        frames = [r for r in conn.frames if frame_view(r.frame)["type"] not in ignore]
        if frames:
            raise StepFailed(
                f"expected nothing on {conn.name} for {step['for']} s; got "
                + ", ".join(describe(r.frame) for r in frames)
            )
        conn.frames.clear()
        if not conn.reading:
            raise StepFailed(f"expected {conn.name} to stay open; {self._ending(conn)}")

    def _op_expect_drained(self, step: JsonObject) -> None:
        """After the implementation ended its side, it still reads (and discards) what the
        runner sends until the runner ends its side: no reset (spec: NODE-4)."""
        conn = self._conn(step)
        until = self.clock() + step["for"]
        while self.clock() < until:
            problem = conn.send_now(b"\x00")
            if problem is None and conn.failed is not None:
                problem = conn.failed[1]
            if problem is not None:
                raise StepFailed(
                    f"the implementation closed its socket before the runner ended its side "
                    f"({problem})"
                )
            self.pump(min(until, self.clock() + 0.05))

    def _op_expect_socket_closed(self, step: JsonObject) -> None:
        """The implementation closes its socket: a byte the runner sends is answered by a
        reset. Used once the implementation has ended its side and waits for the runner's."""
        conn = self._conn(step)
        deadline = self._reference(step) + step["within"]
        while True:
            now = self.clock()
            problem = conn.send_now(b"\x00")
            if problem is not None or conn.failed is not None:
                self._window(step, now, "the socket closed")
                return
            if now >= deadline:
                raise StepFailed(
                    f"the implementation still held the socket after {step['within']} s"
                )
            self.pump(min(deadline, now + 0.05))

    def _op_flood(self, step: JsonObject) -> None:
        """Send the frame again and again without reading, until the implementation closes
        the connection or ``max_bytes`` have been sent."""
        conn = self._conn(step)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)  # not reading is the point
        if conn.crypto.send is not None:
            raise StepFailed("flood sends plaintext frames only (a vector error)")
        data = self._bytes_of(conn, step) * 512
        sent = 0
        deadline = self.clock() + step["within"]
        while sent < step["max_bytes"]:
            if self.clock() >= deadline:
                break
            try:
                sent += conn.sock.send(data)
            except (BlockingIOError, InterruptedError):
                time.sleep(0.002)
            except OSError as exc:
                conn.failed = (self.clock(), exc.strerror or str(exc))
                self._watch(conn)
                return
        self._watch(conn)
        raise StepFailed(
            f"sent {sent} bytes without reading in {step['within']} s and the connection is "
            "still open"
        )

    def _op_secure(self, step: JsonObject) -> None:
        """Run the Noise handshake in the runner's role (spec/privacy.md section 3.2): the
        initiator when the runner opened the connection. ``send_first`` (initiator): the
        runner's handshake frame and message 1 in one write. ``then`` (responder): frames
        sealed and sent in the same write as message 2. ``tamper``: ``zero_key`` sends a
        message 1 of zero bytes, ``message2_tag`` a message 2 with a broken tag; the runner
        then stops, for the implementation to close."""
        conn = self._conn(step)
        crypto = conn.crypto
        deadline = self._reference(step) + step["within"]
        ephemeral = bytes.fromhex(step["ephemeral"])
        tamper = step.get("tamper")

        def noise_bytes(count: int, what: str) -> bytes:
            def arrived() -> bool:
                raw = crypto.raw
                return (raw is not None and len(raw) >= count) or not conn.reading

            self.pump_until(arrived, deadline)
            self._check_wire()
            raw = crypto.raw
            if raw is None or len(raw) < count:
                held = "none" if raw is None else f"{len(raw)} bytes"
                raise StepFailed(
                    f"expected {what} ({count} bytes) on {conn.name} within {step['within']} s; "
                    f"got {held}; {self._ending(conn)}"
                )
            message = bytes(raw[:count])
            del raw[:count]
            return message

        if conn.runner_initiated:
            if "send_first" in step:
                first = self._bytes_of(conn, step, "send_first")
                message1 = bytes(32) if tamper == "zero_key" else public_key(ephemeral)
                self._write(conn, first + message1, self.clock() + SEND_TIMEOUT)
                conn.switch_if_negotiated()
                noise_bytes(0, "the implementation's handshake")
                noise = crypto.noise(True, ephemeral)
                noise.write_message()  # message 1 is the ephemeral public key: sent already
            else:
                noise_bytes(0, "the implementation's handshake, offering encryption")
                noise = crypto.noise(True, ephemeral)
                message1 = noise.write_message()
                if tamper == "zero_key":
                    message1 = bytes(32)
                self._write(conn, message1, self.clock() + SEND_TIMEOUT)
            if tamper is not None:
                self._mark(step, self.clock())
                return
            message2 = noise_bytes(MESSAGE2_SIZE, "Noise message 2")
            try:
                noise.read_message(message2)
            except NoiseError as exc:
                raise StepFailed(f"the implementation's Noise message 2 fails: {exc}") from None
            crypto.install(noise)
        else:
            message1 = noise_bytes(MESSAGE1_SIZE, "Noise message 1")
            noise = crypto.noise(False, ephemeral)
            try:
                noise.read_message(message1)
            except NoiseError as exc:
                raise StepFailed(f"the implementation's Noise message 1 fails: {exc}") from None
            reply = bytearray(noise.write_message())
            if tamper == "message2_tag":
                reply[-1] ^= 0x01
                self._write(conn, bytes(reply), self.clock() + SEND_TIMEOUT)
                self._mark(step, self.clock())
                return
            crypto.install(noise)
            then = self._bytes_of(conn, step, "then") if "then" in step else b""
            self._write(conn, bytes(reply) + then, self.clock() + SEND_TIMEOUT)
        conn.take_opened(self.clock())
        self._mark(step, self.clock())

    def _op_secure_first(self, step: JsonObject) -> None:
        """Open an encrypted-first connection (spec/privacy.md section 3.5) as its initiator:
        the representative of the Elligator key pair of ``seed``, then ``garbage`` bytes of
        0xA5; read the implementation's message 2 and find its terminator; send the runner's
        terminator, then ``then`` (frames sealed, the first with the garbage as associated
        data). ``tamper``: ``no_terminator`` sends MAX_GARBAGE + 17 more bytes of garbage
        instead of the terminator; ``garbage_changed`` seals the first record with other
        associated data than the representative and garbage sent; ``low_order`` sends a
        representative of 32 zero bytes (u = 0) and stops there."""
        name = step["conn"]
        self._op_connect({"conn": name})
        conn = self.conns[name]
        crypto = conn.crypto
        crypto.raw = bytearray()  # nothing in the clear on this connection, from byte 0
        deadline = self._reference(step) + step["within"]
        pair = hidden_key_pair(bytes.fromhex(step["seed"]))
        if pair.hidden[: len(MAGIC)] == MAGIC:
            raise StepFailed("the seed's representative begins with the magic (a vector error)")
        noise = NoiseHandshake(True, FIRST_PROLOGUE, pair.secret, ephemeral_public=pair.public)
        garbage = b"\xa5" * step["garbage"]
        message1 = hide_message(noise.write_message(), pair)
        tamper = step.get("tamper")
        if tamper == "low_order":  # a representative that maps to u = 0, a low-order point
            self._write(conn, bytes(HIDDEN_SIZE) + garbage, self.clock() + SEND_TIMEOUT)
            self._mark(step, self.clock())
            return
        self._write(conn, message1 + garbage, self.clock() + SEND_TIMEOUT)

        def arrived(count: int) -> bool:
            raw = crypto.raw
            return (raw is not None and len(raw) >= count) or not conn.reading

        self.pump_until(lambda: arrived(MESSAGE2_SIZE), deadline)
        raw = crypto.raw
        if raw is None or len(raw) < MESSAGE2_SIZE:
            raise StepFailed(
                f"expected Noise message 2 on {name} within {step['within']} s; "
                f"{self._ending(conn)}"
            )
        peer_hidden = bytes(raw[:HIDDEN_SIZE])
        try:
            noise.read_message(unhide_message(bytes(raw[:MESSAGE2_SIZE])))
        except NoiseError as exc:
            raise StepFailed(f"the implementation's Noise message 2 fails: {exc}") from None
        del raw[:MESSAGE2_SIZE]
        send, receive = noise.split()
        crypto.session_id = noise.handshake_hash
        own_end, peer_end = garbage_terminators(noise.handshake_hash)
        if tamper == "no_terminator":
            self._write(conn, b"\xa5" * (MAX_GARBAGE + 17), self.clock() + SEND_TIMEOUT)
        else:
            self._write(conn, own_end, self.clock() + SEND_TIMEOUT)
        scanner = TerminatorScanner(peer_end)
        outcome: list[Found | GarbageError] = []

        def found() -> bool:
            if crypto.raw:
                scanner.push(bytes(crypto.raw))
                crypto.raw.clear()
            pulled = scanner.pull()
            if pulled is not None:
                outcome.append(pulled)
            return bool(outcome) or not conn.reading

        self.pump_until(found, deadline)
        result = outcome[0] if outcome else None
        if not isinstance(result, Found):
            problem = "no terminator" if result is None else str(result)
            raise StepFailed(f"the implementation's garbage on {name}: {problem}")
        ad = pair.hidden + garbage  # spec: PRIV-56 (the representative, then the garbage)
        if tamper == "garbage_changed":
            ad += b"\x00"
        crypto.install_first(send, receive, ad, peer_hidden, result)
        if "then" in step:
            self._write(conn, self._bytes_of(conn, step, "then"), self.clock() + SEND_TIMEOUT)
        conn.take_opened(self.clock())
        self._mark(step, self.clock())

    def _op_send_record(self, step: JsonObject) -> None:
        """Records of ``frames``, or one record of the bytes ``hex``, made wrong on purpose by
        ``tamper`` (sealing.py's TAMPERS) when given."""
        conn = self._conn(step)
        if conn.crypto.send is None:
            raise StepFailed(f"{conn.name} is not encrypted yet (a vector error)")
        if "hex" in step:  # one record whose plaintext is these bytes, a wrong frame maybe
            frames = [bytes.fromhex(step["hex"])]
        elif "frames" in step:
            frames = [data for data, _ in self._frames_of(step)]
        else:
            frames = []  # a tamper that needs none: replay, too_large
        data = conn.crypto.seal(frames, step.get("tamper"), pad=step.get("pad", False))
        self._write(conn, data, self.clock() + SEND_TIMEOUT)
        self._mark(step, self.clock())

    def _op_end(self, step: JsonObject) -> None:
        self._conn(step).end()
        self._mark(step, self.clock())

    def _op_close(self, step: JsonObject) -> None:
        conn = self._conn(step)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.close()
        self._mark(step, self.clock())

    def _op_wait(self, step: JsonObject) -> None:
        self.pump(self.clock() + step["for"])

    def _op_stop(self, step: JsonObject) -> None:
        self.target.stop()
        self._mark(step, self.clock())

    def _op_expect_stopped(self, step: JsonObject) -> None:
        deadline = self._reference(step) + step["within"]
        self.pump(self.clock())
        problem = self.target.wait_stopped(max(0.0, deadline - self.clock()))
        if problem is not None:
            raise StepFailed(problem)


def match(view: JsonObject, constraints: JsonObject, variables: dict[str, Any]) -> list[str]:
    """What differs between a received frame (its JSON view) and the step's constraints."""
    problems = []
    for key, rule in constraints.items():
        if key not in view:
            problems.append(f"{key} missing")
            continue
        value = view[key]
        problem = _check(value, rule, variables)
        if problem:
            problems.append(f"{key} {problem}")
    return problems


def _as_int(value: Any) -> int:
    return int(value)  # u64 fields are decimal strings in the JSON form


def _check(value: Any, rule: Any, variables: dict[str, Any]) -> str | None:
    if not isinstance(rule, dict):
        return None if value == rule else f"is {value!r}, expected {rule!r}"
    if "var" in rule:
        wanted = variables.get(rule["var"])
        return None if value == wanted else f"is {value!r}, expected {rule['var']} = {wanted!r}"
    if "not_var" in rule:
        other = variables.get(rule["not_var"])
        return None if value != other else f"is {value!r}, the same as {rule['not_var']}"
    if "range" in rule:
        low, high = rule["range"]
        number = _as_int(value)
        return None if low <= number <= high else f"is {number}, outside [{low}, {high}]"
    if "one_of" in rule:
        return None if value in rule["one_of"] else f"is {value!r}, not one of {rule['one_of']}"
    if "bits_set" in rule:
        missing = int(rule["bits_set"]) & ~_as_int(value)
        return None if not missing else f"is {value!r}: bits {missing:#x} are not set"
    if "bits_within" in rule:
        extra = _as_int(value) & ~int(rule["bits_within"])
        return None if not extra else f"is {value!r}: bits {extra:#x} are not assigned"
    raise StepFailed(f"unknown constraint {rule!r} (a vector error)")
