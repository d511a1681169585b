"""Target ``decoder``: the frame decoder of obscura_ref/wire/ on any byte stream.

Input: byte 0 picks the connection's payload limit (WIRE-15), byte 1 the chunking of the
stream into reads, the rest is the stream. The decoder never raises on a peer's bytes: each
way a frame can be invalid is a DecodeError it returns (spec/wire.md section 8). Checked on every
input:

- the same frames and the same error whole, in the chunking given, and byte by byte (WIRE-12);
- the frames decoded re-encode to exactly the bytes they came from: the encoding is canonical,
  padding included (WIRE-1 to WIRE-3, WIRE-30, WIRE-40);
- each frame's JSON form (``obscura-ref decode``, the codec vectors) reads back to the frame;
- between reads the decoder holds at most one header and one payload within the limit
  (WIRE-13, WIRE-15), and nothing pushed stays unread;
- after an error it decodes nothing more (WIRE-14); a stream that ends inside a frame is
  ``truncated_frame`` and one that ends between frames is not (WIRE-11);
- a sealed record's plaintext is split into its first frame and padding as the stream decodes
  (spec/privacy.md PRIV-30).
"""

from __future__ import annotations

import random

from obscura_ref.transport.records import RecordError, split_record
from obscura_ref.wire import (
    ERROR_REQUIREMENTS,
    HEADER_SIZE,
    MAX_HANDSHAKE_PAYLOAD,
    MAX_PAYLOAD,
    DecodeError,
    Frame,
    FrameDecoder,
    encode_frame,
)
from obscura_ref.wire.jsonform import frame_from_json, frame_to_json

from .common import Reader, Writer, check

# MAX_PAYLOAD, the handshake's limit (HS-23), and one small enough that fuzzed frames reach it.
LIMITS = (MAX_PAYLOAD, MAX_HANDSHAKE_PAYLOAD, 8)
WHOLE, BYTE_BY_BYTE = 0, 1  # chunkings; any other value seeds random read sizes of 1 to 64
_REQUIREMENTS = {*ERROR_REQUIREMENTS.values(), "WIRE-15"}


def encode(stream: bytes, limit: int = 0, chunking: int = WHOLE) -> bytes:
    """The input that decodes ``stream`` under LIMITS[limit] in that chunking (for seeds)."""
    return Writer().byte(limit).byte(chunking).raw(stream).bytes()


def chunks(stream: bytes, chunking: int) -> list[bytes]:
    if chunking == WHOLE:
        return [stream]
    if chunking == BYTE_BY_BYTE:
        return [stream[i : i + 1] for i in range(len(stream))]
    sizes = random.Random(chunking)
    out, at = [], 0
    while at < len(stream):
        size = sizes.randint(1, 64)
        out.append(stream[at : at + size])
        at += size
    return out


def decode(pieces: list[bytes], limit: int) -> tuple[list[Frame], DecodeError | None]:
    """Every frame of the reads ``pieces`` and the error that ended them, checking the
    decoder's memory after each read."""
    decoder = FrameDecoder(max_payload=limit)
    frames: list[Frame] = []
    for piece in pieces:
        decoder.push(piece)
        while (item := decoder.pull()) is not None:
            if isinstance(item, DecodeError):
                check(decoder.buffered == decoder.pending == 0, "an error leaves bytes held")
                try:
                    decoder.push(b"\0")
                except RuntimeError:
                    pass  # spec: WIRE-14 (the decoder refuses to go on: a caller's bug)
                else:
                    check(False, "a failed decoder accepted more bytes (WIRE-14)")
                return frames, item
            check(item.message is not None, "a frame without a message")
            frames.append(item)
        # spec: WIRE-13, WIRE-15 (one header, then one payload within the limit)
        check(decoder.pending == 0, f"{decoder.pending} pushed bytes left unread")
        check(
            decoder.buffered <= HEADER_SIZE + limit,
            f"{decoder.buffered} bytes held over {HEADER_SIZE} + {limit} (WIRE-13)",
        )
    return frames, decoder.eof()


def run(data: bytes) -> None:
    reader = Reader(data)
    limit = LIMITS[reader.byte() % len(LIMITS)]
    chunking = reader.byte()
    stream = reader.rest()

    frames, error = decode([stream], limit)
    for other in (chunking, BYTE_BY_BYTE):
        if other != WHOLE and (other != BYTE_BY_BYTE or len(stream) <= 512):  # a pull a byte
            again = decode(chunks(stream, other), limit)
            check(again == (frames, error), f"chunking {other} decodes otherwise (WIRE-12)")

    encoded = b"".join(encode_frame(f.message, f.padding) for f in frames)
    check(stream.startswith(encoded), "the frames do not re-encode to the bytes they came from")
    for frame in frames[:4]:  # the JSON form is slow to build: the first few are enough
        size = len(encode_frame(frame.message, frame.padding)) - HEADER_SIZE
        check(size <= limit, f"a payload of {size} bytes passed the limit {limit} (WIRE-15)")
        check(frame_from_json(frame_to_json(frame)) == frame, f"JSON form of {frame} differs")
    if error is None:
        # spec: WIRE-11 (truncated exactly when bytes of an unfinished frame are left)
        check(len(encoded) == len(stream), "a stream that ends between frames is truncated")
    else:
        check(error.requirement in _REQUIREMENTS, f"{error.requirement} names no wire rule")
        check(error.code in ERROR_REQUIREMENTS, f"{error.code} is not a wire error")
        if error.requirement == "WIRE-11":
            check(len(encoded) < len(stream), "truncated_frame at the end of a whole frame")

    # spec: PRIV-30 (a record's plaintext: its first frame, then padding)
    split = split_record(stream, limit)
    if frames:
        check(isinstance(split, tuple), f"a record beginning with a frame splits as {split}")
        assert isinstance(split, tuple)
        first = encode_frame(frames[0].message, frames[0].padding)
        check(split == (frames[0], len(stream) - len(first)), "the record splits otherwise")
    elif error is not None and error.requirement != "WIRE-11":
        check(split == error, f"the record's frame fails as {split}, the stream as {error}")
    else:
        check(isinstance(split, RecordError), "a record without a whole frame is accepted")
