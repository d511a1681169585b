"""Codec vectors: bytes, and the frames or the error they must decode to (spec/wire.md).

The inputs are built here; the expected results are whatever the reference decoder produces,
so ``generate`` derives the file and ``check_vectors`` proves the checked-in file still agrees
with the reference, whole and split into single bytes (spec: WIRE-12).

A codec case decodes bytes, so it can check only what a receiver does: it claims receiver rules
and the payload layouts, never a sender's rule (those are for session vectors). Every number in
the file stays within 2**53 (u64 fields are decimal strings, see ``wire.jsonform``), so any JSON
parser reads it exactly.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from ..wire import (
    MAGIC,
    MAX_HANDSHAKE_PAYLOAD,
    MAX_PAYLOAD,
    DecodeError,
    Disconnect,
    FrameDecoder,
    Handshake,
    MessageType,
    Opaque,
    Ping,
    Pong,
    checksum,
    encode_frame,
)
from ..wire.jsonform import frame_to_json

SCHEMA = "codec.schema.json"
VERSION = 2  # 2: u64 fields as decimal strings
VECTOR_FILE = Path("conformance") / "vectors" / "codec.json"

_HASH = bytes(range(32))


def _handshake(user_agent: str = "Obscura/1", **fields: int) -> Handshake:
    values = {
        "version": 1,
        "timestamp": 1_700_000_000,
        "features": 0x01 | 0x02,
        "privacy_features": 0x01,
        "best_block_height": 123_456,
        "nonce": 0x0123_4567_89AB_CDEF,
    }
    values.update(fields)
    return Handshake(user_agent=user_agent, best_block_hash=_HASH, **values)


def raw_frame(
    code: int,
    payload: bytes,
    *,
    length: int | None = None,
    check: bytes | None = None,
    magic: bytes = MAGIC,
) -> bytes:
    """A frame built field by field, so that any field can be wrong on purpose."""
    header = (
        magic
        + struct.pack("<II", code, len(payload) if length is None else length)
        + (checksum(payload) if check is None else check)
    )
    return header + payload


def _handshake_head(ua_length: int) -> bytes:
    return struct.pack("<IQIIH", 1, 1_700_000_000, 3, 1, ua_length)


def _cases() -> list[tuple[str, str, list[tuple[str, list[str], bytes]]]]:
    """(group name, group comment, [(case comment, requirement IDs, input bytes)])."""
    ping = encode_frame(Ping(7))
    handshake = encode_frame(_handshake())
    valid = [
        ("ping, no padding", ["WIRE-50"], ping),
        (
            "pong padded to 64 payload bytes, as the origin pads; the nonce is 2**64 - 1",
            ["WIRE-30", "WIRE-50"],
            encode_frame(Pong(0xFFFF_FFFF_FFFF_FFFF), bytes(range(56))),
        ),
        ("handshake as the origin sends it, user agent Obscura/1", ["WIRE-40"], handshake),
        ("handshake with an empty user agent: 70 bytes", ["WIRE-40"], encode_frame(_handshake(""))),
        (
            "handshake with a 256-byte user agent of two-byte characters",
            ["WIRE-40", "WIRE-44"],
            encode_frame(_handshake("é" * 128)),
        ),
        (
            "handshake with unassigned feature bits and privacy bits 0x41 (the origin's Dandelion)",
            ["WIRE-45", "WIRE-47"],
            encode_frame(_handshake(features=0xFFFF_FFFF, privacy_features=0x41)),
        ),
        (
            "handshake padded to exactly 1024 payload bytes",
            ["WIRE-8", "WIRE-30"],
            encode_frame(_handshake(), bytes(MAX_HANDSHAKE_PAYLOAD - len(_handshake().encode()))),
        ),
        ("disconnect, reason 1", ["WIRE-60"], encode_frame(Disconnect(1))),
        (
            "disconnect with an unregistered reason and padding",
            ["WIRE-61", "WIRE-30"],
            encode_frame(Disconnect(0xFFFF), b"\xaa" * 5),
        ),
        (
            "opaque Blocks payload is delivered whole",
            ["WIRE-20"],
            encode_frame(Opaque(MessageType.Blocks, b"\x00\x01\x02opaque")),
        ),
        (
            "opaque MemPool with an empty payload",
            ["WIRE-20"],
            encode_frame(Opaque(MessageType.MemPool, b"")),
        ),
        (
            "every opaque code of the registry",
            ["WIRE-20", "WIRE-6"],
            b"".join(
                encode_frame(Opaque(t, bytes([t])))
                for t in MessageType
                if t
                not in (
                    MessageType.Handshake,
                    MessageType.Ping,
                    MessageType.Pong,
                    MessageType.Disconnect,
                )
            ),
        ),
        ("three frames back to back", ["WIRE-12"], handshake + ping + encode_frame(Pong(7))),
    ]
    bad_ua = _handshake_head(2) + b"\xc3\x28" + _HASH + bytes(16)
    invalid = [
        ("first magic byte wrong", ["WIRE-5"], b"\x4e" + ping[1:]),
        ("fourth magic byte wrong", ["WIRE-5"], ping[:3] + b"\x01" + ping[4:]),
        (
            "two bytes only, the second already wrong: rejected without waiting",
            ["WIRE-5"],
            b"\x4f\x43",
        ),
        (
            "bad magic after a valid frame: the frame before is still delivered",
            ["WIRE-5", "WIRE-14"],
            ping + b"GET / HTTP/1.1\r\n",
        ),
        ("unknown type 0x18, first after the origin's range", ["WIRE-6"], raw_frame(0x18, b"")),
        ("unknown type 0x00", ["WIRE-6"], raw_frame(0x00, b"")),
        (
            "unknown type 0x82, in the reserved range but unassigned",
            ["WIRE-6"],
            raw_frame(0x82, b""),
        ),
        (
            "unknown type with an oversized length: the type is checked first",
            ["WIRE-10"],
            raw_frame(0x99, b"", length=MAX_PAYLOAD + 1),
        ),
        (
            "length one above 10 MiB, no payload sent: rejected from the header",
            ["WIRE-7"],
            raw_frame(MessageType.Blocks, b"", length=MAX_PAYLOAD + 1),
        ),
        ("length 0xFFFFFFFF", ["WIRE-7"], raw_frame(MessageType.Ping, b"", length=0xFFFF_FFFF)),
        (
            "handshake length 1025: rejected from the header",
            ["WIRE-8"],
            raw_frame(MessageType.Handshake, b"", length=MAX_HANDSHAKE_PAYLOAD + 1),
        ),
        (
            "checksum wrong",
            ["WIRE-9"],
            raw_frame(MessageType.Ping, Ping(7).encode(), check=b"\x00\x00\x00\x00"),
        ),
        (
            "checksum wrong and payload truncated: checksum is checked first",
            ["WIRE-10"],
            raw_frame(MessageType.Ping, b"\x01", check=b"\xde\xad\xbe\xef"),
        ),
        (
            "checksum over the payload without its padding",
            ["WIRE-9"],
            raw_frame(
                MessageType.Ping, Ping(7).encode() + b"\x00", check=checksum(Ping(7).encode())
            ),
        ),
        ("stream ends inside the header", ["WIRE-11"], ping[:10]),
        ("stream ends inside the payload", ["WIRE-11"], handshake[:-1]),
        ("ping payload of 7 bytes", ["WIRE-33"], raw_frame(MessageType.Ping, bytes(7))),
        ("pong payload empty", ["WIRE-33"], raw_frame(MessageType.Pong, b"")),
        ("disconnect payload of 1 byte", ["WIRE-33"], raw_frame(MessageType.Disconnect, b"\x01")),
        (
            "handshake payload of 21 bytes, before user_agent_length ends",
            ["WIRE-33"],
            raw_frame(MessageType.Handshake, _handshake_head(0)[:21]),
        ),
        (
            "handshake of 69 bytes: one short of the 70 the defined fields need",
            ["WIRE-33"],
            raw_frame(MessageType.Handshake, _handshake("").encode()[:69]),
        ),
        (
            "handshake of 68 bytes, the origin's own minimum",
            ["WIRE-33"],
            raw_frame(MessageType.Handshake, _handshake("").encode()[:68]),
        ),
        (
            "handshake whose user agent runs past the payload",
            ["WIRE-33"],
            raw_frame(MessageType.Handshake, _handshake_head(200) + b"a" * 50),
        ),
        (
            "handshake missing its last 8 bytes (the origin reads 48 where it checks 40)",
            ["WIRE-33"],
            raw_frame(MessageType.Handshake, _handshake().encode()[:-8]),
        ),
        (
            "user agent length 257",
            ["WIRE-43"],
            raw_frame(MessageType.Handshake, _handshake_head(257) + b"a" * 257 + _HASH + bytes(16)),
        ),
        (
            "user agent length 257 in a short payload: the limit is checked first",
            ["WIRE-43", "WIRE-34"],
            raw_frame(MessageType.Handshake, _handshake_head(257)),
        ),
        ("user agent not UTF-8 (C3 28)", ["WIRE-44"], raw_frame(MessageType.Handshake, bad_ua)),
        (
            "user agent is a UTF-16 surrogate encoded in UTF-8 (ED A0 80)",
            ["WIRE-44"],
            raw_frame(
                MessageType.Handshake, _handshake_head(3) + b"\xed\xa0\x80" + _HASH + bytes(16)
            ),
        ),
        (
            "user agent not UTF-8 and fields truncated: the user agent is checked first",
            ["WIRE-44", "WIRE-34"],
            raw_frame(MessageType.Handshake, _handshake_head(2) + b"\xc3\x28"),
        ),
    ]
    # Added in version 2, after the others so that earlier case numbers stay as they were.
    boundaries = [
        (
            # Implementers tripped on this: a UTF-8 decoder that strips a leading byte-order
            # mark (Python's utf-8-sig, say) loses a character the peer sent.
            "handshake whose user agent begins with a byte-order mark (EF BB BF): valid, and "
            "the decoded user_agent keeps U+FEFF, which must not be stripped",
            ["WIRE-40", "WIRE-44"],
            encode_frame(_handshake("\ufeffObscura/1")),
        ),
        (
            # A stream that ends before its first byte ends between frames, not inside one.
            "an empty stream: valid, no frames and no error",
            ["WIRE-11"],
            b"",
        ),
        (
            # WIRE-7's limit is inclusive: a decoder that rejects the header here says
            # payload_too_large, one that accepts it runs out of stream inside the frame.
            "Blocks header announcing exactly MAX_PAYLOAD (10485760) bytes, none sent: the "
            "header passes and the stream ends inside the frame",
            ["WIRE-7", "WIRE-11"],
            raw_frame(MessageType.Blocks, b"", length=MAX_PAYLOAD),
        ),
        (
            # Passes the general limit (inclusive) and fails the handshake limit after it.
            "handshake header announcing exactly MAX_PAYLOAD (10485760) bytes: within the "
            "general limit, past the handshake limit",
            ["WIRE-8", "WIRE-10"],
            raw_frame(MessageType.Handshake, b"", length=MAX_PAYLOAD),
        ),
    ]
    return [
        ("valid", "Streams that decode completely.", valid),
        ("invalid", "Streams that end with an error; frames before the error are listed.", invalid),
        (
            "boundaries",
            "Boundaries implementers have got wrong: a byte-order mark, an empty stream, a "
            "length of exactly MAX_PAYLOAD.",
            boundaries,
        ),
    ]


def decode_case(data: bytes, chunk: int | None = None) -> dict[str, Any]:
    """What the reference decodes from ``data``, fed whole or ``chunk`` bytes at a time."""
    decoder = FrameDecoder()
    items = []
    step = chunk or max(1, len(data))
    # An empty stream (input "") is fed nothing and then ends: valid, with no frames.
    for start in range(0, len(data), step):
        items += decoder.feed(data[start : start + step])
        if decoder.error is not None:
            break
    end = decoder.eof()
    frames = [frame_to_json(item) for item in items if not isinstance(item, DecodeError)]
    error = decoder.error or end
    result: dict[str, Any] = {"result": "invalid" if error else "valid", "frames": frames}
    if error is not None:
        result["error"] = error.code.value
    return result


def generate() -> dict[str, Any]:
    groups = []
    number = 0
    for name, comment, cases in _cases():
        tests = []
        for case_comment, requirements, data in cases:
            number += 1
            tests.append(
                {
                    "tcId": number,
                    "comment": case_comment,
                    "requirements": requirements,
                    "input": data.hex(),
                    **decode_case(data),
                }
            )
        groups.append({"name": name, "comment": comment, "tests": tests})
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "description": "Codec vectors for spec/wire.md: decode `input` as one byte stream "
        "(whole, and fed one byte at a time, spec WIRE-12) and compare the frames and the error.",
        "notes": {
            "frames": "Each frame in the JSON form of `obscura-ref decode`: type, code, the "
            "fields by their spec names, bytes as lowercase hex, padding and padding_length.",
            "numbers": "u64 fields (timestamp, best_block_height, nonce) are decimal strings, "
            "so every JSON number in this file is an integer within 2**53 and any parser "
            "reads it exactly.",
            "error": "For result 'invalid': the one error code of spec/wire.md section 8.",
        },
        "numberOfTests": number,
        "testGroups": groups,
    }


def render() -> str:
    text = json.dumps(generate(), indent=1, ensure_ascii=False)
    # U+FEFF is invisible and tools strip it: written as an escape, a reader sees it is there.
    return text.replace("\ufeff", "\\ufeff") + "\n"


def write_vectors(root: Path) -> list[Path]:
    path = root / VECTOR_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return [path]


def check_vectors(root: Path) -> list[str]:
    """Failures: a checked-in file that differs from the generator, or a case the reference
    does not decode as the file says, whole or byte by byte."""
    path = root / VECTOR_FILE
    if not path.is_file():
        return [f"{VECTOR_FILE} is missing; run `obscura-ref vectors generate`"]
    text = path.read_text(encoding="utf-8")
    failures = []
    if text != render():
        failures.append(
            f"{VECTOR_FILE} differs from the generator; run `obscura-ref vectors "
            "generate` and review the diff"
        )
    for group in json.loads(text)["testGroups"]:
        for case in group["tests"]:
            expected = {k: case[k] for k in ("result", "frames", "error") if k in case}
            data = bytes.fromhex(case["input"])
            for chunk in (None, 1):
                if decode_case(data, chunk) != expected:
                    how = "whole" if chunk is None else "byte by byte"
                    failures.append(f"case {case['tcId']} ({case['comment']}), fed {how}")
    return failures
