"""Garbage and its terminator in the encrypted-first mode (spec/privacy.md section 3.5).

After its Noise message each side sends garbage, 0 to MAX_GARBAGE random bytes, so that the
sizes of the first bytes on the connection do not give the protocol away, then, once it knows
the handshake hash ``h``, its 16-byte garbage terminator, a value only the two ends can compute.
The receiver finds where the garbage ends by scanning for the peer's terminator; the records
begin right after it.

Pure: no sockets, no clock; the randomness is the caller's, handed in as a function.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from .noise import HASHLEN

MAX_GARBAGE = 4095  # the longest garbage a side sends, and the longest a receiver accepts
TERMINATOR_SIZE = 16
TERMINATOR_LABEL = b"OBX garbage terminators"
_LENGTH_DRAW = 2  # bytes drawn for a garbage length: 4096 values divide 65536 evenly


def garbage_terminators(handshake_hash: bytes) -> tuple[bytes, bytes]:
    """(the initiator's terminator, the responder's), the two halves of
    ``SHA-256("OBX garbage terminators" || h)`` (spec: PRIV-54)."""
    if len(handshake_hash) != HASHLEN:
        raise ValueError(f"a handshake hash has {HASHLEN} bytes, got {len(handshake_hash)}")
    t = hashlib.sha256(TERMINATOR_LABEL + handshake_hash).digest()  # spec: PRIV-54
    return t[:TERMINATOR_SIZE], t[TERMINATOR_SIZE:]  # spec: PRIV-54 (initiator, responder)


def draw_garbage(draw: Callable[[int], bytes]) -> bytes:
    """Garbage of a length drawn uniformly from 0 to MAX_GARBAGE, its bytes drawn too
    (spec: PRIV-50); ``draw(n)`` gives n bytes of the caller's random source."""
    # MAX_GARBAGE + 1 = 4096 divides 2^16: the remainder of a u16 is uniform, no redraw needed.
    length = int.from_bytes(draw(_LENGTH_DRAW), "little") % (MAX_GARBAGE + 1)  # spec: PRIV-50
    return draw(length)  # spec: PRIV-50 (random bytes)


class GarbageErrorCode(Enum):
    """How a peer's garbage fails; the value is also the close reason's name."""

    NO_GARBAGE_TERMINATOR = "no_garbage_terminator"

    @property
    def requirement(self) -> str:
        return "PRIV-55"


class GarbageError(Exception):
    """The peer's terminator did not come within ``limit + 16`` bytes (spec: PRIV-55)."""

    def __init__(self, code: GarbageErrorCode, detail: str) -> None:
        self.requirement = code.requirement
        super().__init__(f"{code.value} ({self.requirement}): {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Found:
    """The peer's terminator was found: ``garbage`` is what came before it and ``rest`` what
    came after, the beginning of the peer's records."""

    garbage: bytes
    rest: bytes


class TerminatorScanner:
    """Incremental search for the peer's terminator in the bytes after its Noise message.

    ``push`` hands it bytes as they are read; ``pull`` returns None while the terminator has
    not come, Found once it has (after which the caller hands later bytes to the records'
    opener: a push or pull then is a caller's bug), or the GarbageError that ends the
    connection once more than ``limit + 16`` bytes came without it, which every later ``pull``
    returns again.

    Memory and time: the garbage is kept, as the first record authenticates it, but never more
    than ``limit + 16`` bytes; each push searches only its own bytes and the 15 before them,
    the only place a terminator not yet seen can be, so a byte-by-byte peer costs linear time.
    """

    def __init__(self, terminator: bytes, limit: int = MAX_GARBAGE) -> None:
        if len(terminator) != TERMINATOR_SIZE:
            raise ValueError(f"a terminator has {TERMINATOR_SIZE} bytes, got {len(terminator)}")
        if limit < 0:
            raise ValueError(f"a limit is not negative, got {limit}")
        self.terminator = terminator
        self.limit = limit
        self._window = bytearray()  # everything received while the terminator is not in it
        self._garbage: bytes | None = None
        self._rest: list[bytes] = []  # what came after the terminator
        self._error: GarbageError | None = None
        self._handed_over = False

    @property
    def held(self) -> int:
        """How many bytes the scanner holds: garbage and terminator while it is searching, the
        bytes after the terminator once it has found it."""
        return len(self._window) + sum(len(piece) for piece in self._rest)

    def push(self, data: bytes | bytearray | memoryview) -> None:
        if self._handed_over:
            raise RuntimeError("the terminator was handed over: later bytes are records")
        if self._error is not None:
            return  # the connection is closing: nothing more is looked at
        if self._garbage is not None:
            self._rest.append(bytes(data))
            return
        room = self.limit + TERMINATOR_SIZE - len(self._window)
        # A terminator not seen yet ends in the new bytes, so it starts at most 15 bytes back.
        start = max(0, len(self._window) - (TERMINATOR_SIZE - 1))
        self._window += data[:room]
        index = self._window.find(self.terminator, start)
        if index >= 0:
            self._garbage = bytes(self._window[:index])
            self._rest = [bytes(self._window[index + TERMINATOR_SIZE :]), bytes(data[room:])]
            self._window = bytearray()
        elif len(self._window) >= self.limit + TERMINATOR_SIZE:
            # spec: PRIV-55 (limit + 16 bytes hold no terminator: it cannot end in time)
            self._error = GarbageError(
                GarbageErrorCode.NO_GARBAGE_TERMINATOR,
                f"no terminator in the first {self.limit + TERMINATOR_SIZE} bytes",
            )
            self._window = bytearray()

    def pull(self) -> Found | GarbageError | None:
        if self._error is not None:
            return self._error
        if self._garbage is None:
            return None
        if self._handed_over:
            raise RuntimeError("the terminator was already handed over")
        self._handed_over = True
        found = Found(self._garbage, b"".join(self._rest))
        self._rest = []
        return found

    def feed(self, data: bytes | bytearray | memoryview) -> Found | GarbageError | None:
        """Push ``data``, then pull."""
        self.push(data)
        return self.pull()
