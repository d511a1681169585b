"""Frame decoding as the node reads: a stream of frames cut into READ_CHUNK (64 KiB) pieces fed
to one FrameDecoder, against double SHA-256 of the same payloads (the checksum every decoder
must compute), both in CPU time of this process."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from obscura_ref.node import READ_CHUNK
from obscura_ref.wire import DecodeError, FrameDecoder, MessageType, Opaque, Ping, encode_frame

MiB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    pieces: list[bytes]  # the stream as the node's reads would return it
    payloads: list[bytes]

    @property
    def size(self) -> int:
        return sum(len(payload) for payload in self.payloads)


def _case(name: str, frames: list[bytes], payloads: list[bytes]) -> Case:
    stream = b"".join(frames)
    pieces = [stream[i : i + READ_CHUNK] for i in range(0, len(stream), READ_CHUNK)]
    return Case(name, pieces, payloads)


def cases() -> list[Case]:
    big = bytes(range(256)) * (MiB // 256)
    huge = bytes(range(256)) * (10 * MiB // 256 - 1)
    small = bytes(56)  # a Ping padded to the 64 bytes of payload a padded frame has at least
    pings = [encode_frame(Ping(index), small) for index in range(MiB // 80)]
    return [
        _case("1 MiB frame", [encode_frame(Opaque(MessageType.Blocks, big))], [big]),
        _case("10 MiB frame", [encode_frame(Opaque(MessageType.Blocks, huge))], [huge]),
        _case("80-byte frames, 1 MiB", pings, [frame[16:] for frame in pings]),
    ]


def decode(case: Case) -> None:
    decoder = FrameDecoder()
    for piece in case.pieces:
        for item in decoder.feed(piece):
            if isinstance(item, DecodeError):
                raise item


def sha256d(case: Case) -> None:
    sha256 = hashlib.sha256
    for payload in case.payloads:
        sha256(sha256(payload).digest()).digest()


def rate(work: Callable[[Case], None], case: Case, budget: float) -> float:
    """Payload bytes per CPU second, over at least ``budget`` CPU seconds of whole passes."""
    work(case)  # warm
    passes, begin = 0, time.process_time()
    while (spent := time.process_time() - begin) < budget:
        work(case)
        passes += 1
    return passes * case.size / spent
