"""Traffic shaping (spec/privacy.md section 5): a bounded random delay on sends, and dummy
messages at random intervals, on encrypted connections at a level that shapes.

``Shaper`` is sans-IO: the connection machine hands it the bytes it would send and asks it when
to wake; it never reorders them. The dummies' draws are functions of the random source, so a
seeded run is reproducible.
"""

from __future__ import annotations

from collections import deque

from .padding import RandomSource, random_below, random_bytes

MAX_SEND_DELAY = 0.050  # seconds a send may be held at most (PRIV-60)
DUMMY_MIN_INTERVAL = 1.0  # seconds between two dummies of one connection, at least (PRIV-61)
DUMMY_MAX_INTERVAL = 10.0  # and at most
MAX_DUMMY_PAYLOAD = 256  # bytes of a dummy's payload at most
_RESOLUTION = 1_000_000  # draws of a delay are whole microseconds


def uniform(rng: RandomSource, low: float, high: float) -> float:
    """A time in [low, high], in whole microseconds, from the random source."""
    steps = round((high - low) * _RESOLUTION)
    return low + random_below(rng, steps + 1) / _RESOLUTION


def next_dummy_after(rng: RandomSource) -> float:
    """Seconds from now to the next dummy (spec: PRIV-61)."""
    return uniform(rng, DUMMY_MIN_INTERVAL, DUMMY_MAX_INTERVAL)


def dummy_payload(rng: RandomSource) -> bytes:
    """A dummy's payload: random bytes of a random length (spec: PRIV-61)."""
    return random_bytes(rng, random_below(rng, MAX_DUMMY_PAYLOAD + 1))


class Shaper:
    """Holds what a connection sends until its release time: each piece is released at the
    later of the previous piece's release and now plus a random delay of at most
    ``MAX_SEND_DELAY``, so pieces leave in the order they were given (spec: PRIV-60)."""

    def __init__(self, rng: RandomSource) -> None:
        self._rng = rng
        self._held: deque[tuple[float, bytes]] = deque()
        self._last_release = 0.0
        self.held_bytes = 0

    def hold(self, data: bytes, now: float) -> None:
        release = max(self._last_release, now + uniform(self._rng, 0.0, MAX_SEND_DELAY))
        self._last_release = release
        self._held.append((release, data))
        self.held_bytes += len(data)

    @property
    def next_release(self) -> float | None:
        """When the first held piece is due, or None when nothing is held."""
        return self._held[0][0] if self._held else None

    def due(self, now: float) -> bytes:
        """The pieces due at ``now``, joined in order."""
        out = []
        while self._held and self._held[0][0] <= now:
            out.append(self._held.popleft()[1])
        data = b"".join(out)
        self.held_bytes -= len(data)
        return data

    def flush(self) -> bytes:
        """Everything held, in order: a close does not wait for the delays (PRIV-62)."""
        data = b"".join(piece for _, piece in self._held)
        self._held.clear()
        self.held_bytes = 0
        return data
