"""What every target shares: reading a fuzz input as a sequence of small fields, writing one
(for the seed builder), and the exception that reports a broken invariant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Breach(AssertionError):
    """An invariant of a target does not hold for this input: a failure, as a crash is."""


def check(condition: bool, what: str) -> None:
    """Raise Breach with ``what`` unless ``condition`` holds (kept when Python runs with -O,
    unlike ``assert``)."""
    if not condition:
        raise Breach(what)


class Reader:
    """Reads a fuzz input front to back. Past its end every read gives zeros, so any input,
    however short, is a whole program; ``done`` tells the op loops to stop."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    @property
    def done(self) -> bool:
        return self.at >= len(self.data)

    def byte(self) -> int:
        if self.at >= len(self.data):
            return 0
        self.at += 1
        return self.data[self.at - 1]

    def uint(self, size: int) -> int:
        """A little-endian unsigned integer of ``size`` bytes."""
        return int.from_bytes(self.take(size).ljust(size, b"\0"), "little")

    def take(self, count: int) -> bytes:
        piece = self.data[self.at : self.at + count]
        self.at += len(piece)
        return piece

    def blob(self) -> bytes:
        """A length-prefixed piece: a u16 length, then up to that many bytes."""
        return self.take(self.uint(2))

    def pick(self, choices: Sequence[T]) -> T:
        return choices[self.byte() % len(choices)]

    def rest(self) -> bytes:
        piece = self.data[self.at :]
        self.at = len(self.data)
        return piece


class Writer:
    """Builds an input that a Reader reads back field by field (the seed builder's side)."""

    def __init__(self) -> None:
        self.out = bytearray()

    def byte(self, value: int) -> Writer:
        self.out.append(value & 0xFF)
        return self

    def uint(self, value: int, size: int) -> Writer:
        self.out += (value % (1 << (8 * size))).to_bytes(size, "little")
        return self

    def raw(self, data: bytes) -> Writer:
        self.out += data
        return self

    def blob(self, data: bytes) -> Writer:
        data = data[:0xFFFF]
        return self.uint(len(data), 2).raw(data)

    def bytes(self) -> bytes:
        return bytes(self.out)
