"""Padding of the frames a node sends (spec/privacy.md), and the random source it draws from."""

from __future__ import annotations

import os
from typing import Protocol

PRIVACY_LEVELS = ("none", "standard")
ORIGIN_MIN_PAYLOAD = 64  # the origin pads shorter payloads up to this many bytes
ORIGIN_MAX_EXTRA = 32  # and longer ones by 0 to this many bytes


class RandomSource(Protocol):
    """What the machines need of a random source; ``random.Random`` and ``secrets.SystemRandom``
    both provide it, and a seeded ``random.Random`` makes a run reproducible."""

    def getrandbits(self, k: int, /) -> int: ...


class SystemRandomSource:
    """The operating system's random bytes (``os.urandom``), read 4 KiB at a time so that a
    nonce or a padding costs no system call of its own. The default source of a node."""

    def __init__(self, refill: int = 4096) -> None:
        self._refill = refill
        self._pool = b""
        self._used = 0

    def getrandbits(self, k: int, /) -> int:
        count = (k + 7) // 8
        if self._used + count > len(self._pool):
            self._pool = os.urandom(max(self._refill, count))
            self._used = 0
        chunk = self._pool[self._used : self._used + count]
        self._used += count
        return int.from_bytes(chunk, "little") >> (8 * count - k)


def random_below(rng: RandomSource, bound: int) -> int:
    """A uniform integer in [0, bound), by rejection (no modulo bias)."""
    bits = max(1, (bound - 1).bit_length())
    while True:
        value = rng.getrandbits(bits)
        if value < bound:
            return value


def random_bytes(rng: RandomSource, count: int) -> bytes:
    # spec: PRIV-3, WIRE-32 (padding comes from the random source)
    return rng.getrandbits(8 * count).to_bytes(count, "little") if count else b""


def origin_padding(payload_length: int, rng: RandomSource) -> bytes:
    """Random padding as the origin adds it: up to ``ORIGIN_MIN_PAYLOAD`` bytes in all for a
    shorter payload, else 0 to ``ORIGIN_MAX_EXTRA`` extra bytes."""
    if payload_length < ORIGIN_MIN_PAYLOAD:  # spec: PRIV-1
        count = ORIGIN_MIN_PAYLOAD - payload_length
    else:
        count = random_below(rng, ORIGIN_MAX_EXTRA + 1)
    return random_bytes(rng, count)
