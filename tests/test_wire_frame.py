"""The frame envelope and the incremental decoder: spec/wire.md section 2."""

from __future__ import annotations

import hashlib
import struct
import tracemalloc

import pytest

from obscura_ref.wire import (
    HEADER_SIZE,
    MAGIC,
    MAX_HANDSHAKE_PAYLOAD,
    MAX_PAYLOAD,
    DecodeError,
    EncodeError,
    ErrorCode,
    Frame,
    FrameDecoder,
    Handshake,
    MessageType,
    Opaque,
    Ping,
    Pong,
    decode_frames,
    encode_frame,
)


def header(code: int, length: int, check: bytes = b"\0\0\0\0", magic: bytes = MAGIC) -> bytes:
    return magic + struct.pack("<II", code, length) + check


def sha256d4(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()[:4]


def error_of(data: bytes) -> ErrorCode | None:
    _, error = decode_frames(data)
    return None if error is None else error.code


@pytest.mark.spec("WIRE-1", "WIRE-2", "WIRE-3")
def test_envelope_layout_is_magic_type_length_checksum_payload() -> None:
    frame = encode_frame(Ping(0x0102030405060708), b"\xff\xfe")
    payload = bytes.fromhex("0807060504030201") + b"\xff\xfe"
    assert frame[:4] == bytes.fromhex("4f425800")
    assert frame[4:8] == bytes.fromhex("02000000")
    assert frame[8:12] == struct.pack("<I", len(payload))
    assert frame[12:16] == sha256d4(payload)
    assert frame[16:] == payload


@pytest.mark.spec("WIRE-4")
def test_sender_refuses_a_payload_over_ten_mebibytes() -> None:
    too_big = Opaque(MessageType.Blocks, bytes(MAX_PAYLOAD + 1))
    with pytest.raises(EncodeError) as info:
        encode_frame(too_big)
    assert info.value.requirement == "WIRE-4"
    assert len(encode_frame(Opaque(MessageType.Blocks, bytes(MAX_PAYLOAD)))) == 16 + MAX_PAYLOAD


@pytest.mark.spec("WIRE-5")
@pytest.mark.parametrize("position", range(4))
def test_each_wrong_magic_byte_is_rejected_when_it_arrives(position: int) -> None:
    stream = bytearray(encode_frame(Ping(1)))
    stream[position] ^= 0xFF
    decoder = FrameDecoder()
    for index in range(position):
        assert decoder.feed(stream[index : index + 1]) == []
    (result,) = decoder.feed(stream[position : position + 1])
    assert isinstance(result, DecodeError)
    assert result.code is ErrorCode.BAD_MAGIC and result.requirement == "WIRE-5"


@pytest.mark.spec("WIRE-6")
@pytest.mark.parametrize("code", [0x00, 0x18, 0x7F, 0x82, 0xFF, 0x1_0001, 0xFFFF_FFFF])
def test_unassigned_type_is_rejected_from_the_header(code: int) -> None:
    decoder = FrameDecoder()
    (result,) = decoder.feed(header(code, 8))
    assert isinstance(result, DecodeError) and result.code is ErrorCode.UNKNOWN_MESSAGE_TYPE


@pytest.mark.spec("WIRE-7", "WIRE-13")
def test_oversized_length_is_rejected_before_any_payload_is_buffered() -> None:
    decoder = FrameDecoder()
    (result,) = decoder.feed(header(MessageType.Blocks, MAX_PAYLOAD + 1))
    assert isinstance(result, DecodeError) and result.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert decoder.buffered == 0


@pytest.mark.spec("WIRE-7")
def test_exactly_ten_mebibytes_is_accepted() -> None:
    frames, error = decode_frames(encode_frame(Opaque(MessageType.Blocks, bytes(MAX_PAYLOAD))))
    assert error is None and len(frames) == 1


@pytest.mark.spec("WIRE-8")
def test_handshake_over_1024_is_rejected_from_the_header_and_1024_accepted() -> None:
    decoder = FrameDecoder()
    (result,) = decoder.feed(header(MessageType.Handshake, MAX_HANDSHAKE_PAYLOAD + 1))
    assert isinstance(result, DecodeError) and result.code is ErrorCode.HANDSHAKE_TOO_LARGE
    # A 1025-byte payload of another type is fine: the limit is the handshake's own.
    assert error_of(encode_frame(Opaque(MessageType.Inv, bytes(1025)))) is None


@pytest.mark.spec("WIRE-41")
def test_sender_refuses_a_handshake_payload_over_1024() -> None:
    hs = Handshake(1, 0, 0, 0, "", bytes(32), 0, 0)
    encode_frame(hs, bytes(MAX_HANDSHAKE_PAYLOAD - 70))
    with pytest.raises(EncodeError) as info:
        encode_frame(hs, bytes(MAX_HANDSHAKE_PAYLOAD - 69))
    assert info.value.requirement == "WIRE-41"


@pytest.mark.spec("WIRE-9")
def test_checksum_mismatch_is_rejected() -> None:
    good = encode_frame(Pong(3))
    bad = good[:12] + bytes(4) + good[16:]
    assert error_of(bad) is ErrorCode.BAD_CHECKSUM


@pytest.mark.spec("WIRE-10")
@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        # wrong magic and unknown type: magic first
        (header(0x99, 0, magic=b"XXXX"), ErrorCode.BAD_MAGIC),
        # unknown type and oversized length: type first
        (header(0x99, MAX_PAYLOAD + 1), ErrorCode.UNKNOWN_MESSAGE_TYPE),
        # handshake over both limits: the general limit first
        (header(MessageType.Handshake, MAX_PAYLOAD + 1), ErrorCode.PAYLOAD_TOO_LARGE),
        # bad checksum over a payload too short for its fields: checksum first
        (header(MessageType.Ping, 1, b"\1\2\3\4") + b"\0", ErrorCode.BAD_CHECKSUM),
    ],
)
def test_checks_are_made_in_table_order(stream: bytes, expected: ErrorCode) -> None:
    assert error_of(stream) is expected


@pytest.mark.spec("WIRE-11")
@pytest.mark.parametrize("cut", [1, 4, 15, 16, 17, 23])
def test_stream_ending_inside_a_frame_is_truncated_frame(cut: int) -> None:
    stream = encode_frame(Ping(9))
    assert error_of(stream[:cut]) is ErrorCode.TRUNCATED_FRAME
    decoder = FrameDecoder()
    assert decoder.feed(stream) != [] and decoder.eof() is None


@pytest.mark.spec("WIRE-12")
def test_frames_split_at_every_byte_decode_the_same() -> None:
    stream = (
        encode_frame(Ping(1))
        + encode_frame(Opaque(MessageType.Inv, b"abc"))
        + encode_frame(Pong(2), b"pad")
    )
    whole, _ = decode_frames(stream)
    decoder = FrameDecoder()
    split = [item for i in range(len(stream)) for item in decoder.feed(stream[i : i + 1])]
    assert split == whole and len(whole) == 3


@pytest.mark.spec("WIRE-12")
def test_an_empty_payload_completes_with_its_header_however_the_stream_is_split() -> None:
    stream = encode_frame(Opaque(MessageType.MemPool, b"")) * 2
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        frames = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert frames == [Frame(Opaque(MessageType.MemPool, b""))] * 2
        assert decoder.eof() is None


@pytest.mark.spec("WIRE-13")
def test_buffer_never_exceeds_one_frame_while_a_large_payload_trickles_in() -> None:
    decoder = FrameDecoder()
    decoder.feed(header(MessageType.Blocks, MAX_PAYLOAD, sha256d4(bytes(MAX_PAYLOAD))))
    chunk = bytes(1 << 20)
    for _ in range(9):
        assert decoder.feed(chunk) == []
        assert decoder.buffered <= MAX_PAYLOAD
    # One chunk finishes the frame and runs 1 MiB past it: the excess is read as the next
    # header (and fails its magic at the first byte), never appended to the buffer.
    results = decoder.feed(bytes(2 << 20))
    assert results[0] == Frame(Opaque(MessageType.Blocks, bytes(MAX_PAYLOAD)))
    assert isinstance(results[1], DecodeError) and results[1].code is ErrorCode.BAD_MAGIC
    assert decoder.buffered == 0


@pytest.mark.spec("WIRE-14")
def test_nothing_is_decoded_after_an_error() -> None:
    decoder = FrameDecoder()
    results = decoder.feed(encode_frame(Ping(1)) + b"junk" + encode_frame(Ping(2)))
    assert results[0] == Frame(Ping(1))
    assert isinstance(results[1], DecodeError) and len(results) == 2
    with pytest.raises(RuntimeError):
        decoder.feed(encode_frame(Ping(3)))
    assert decoder.eof() is None


@pytest.mark.spec("WIRE-20")
def test_opaque_payload_is_delivered_whole() -> None:
    payload = b"\x00" * 3 + b"anything, padding included"
    frames, error = decode_frames(encode_frame(Opaque(MessageType.CompactBlock, payload)))
    assert error is None
    assert frames == [Frame(Opaque(MessageType.CompactBlock, payload), b"")]


def test_zero_length_opaque_frame_completes_without_more_bytes() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(Opaque(MessageType.MemPool, b""))) == [
        Frame(Opaque(MessageType.MemPool, b""))
    ]
    assert decoder.buffered == 0 and decoder.eof() is None


def test_every_decode_error_code_has_its_requirement() -> None:
    assert {code.requirement for code in ErrorCode} == {
        "WIRE-5",
        "WIRE-6",
        "WIRE-7",
        "WIRE-8",
        "WIRE-9",
        "WIRE-11",
        "WIRE-33",
        "WIRE-43",
        "WIRE-44",
    }
    assert HEADER_SIZE == 16


@pytest.mark.spec("WIRE-13")
def test_decoding_a_maximum_frame_in_chunks_holds_it_at_most_twice() -> None:
    stream = encode_frame(Ping(1), bytes(MAX_PAYLOAD - 8))
    decoder = FrameDecoder()
    tracemalloc.start()
    try:
        frames = []
        for start in range(0, len(stream), 1 << 16):
            frames += decoder.feed(stream[start : start + (1 << 16)])
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert frames == [Frame(Ping(1), bytes(MAX_PAYLOAD - 8))]
    # The buffer (with its growth slack) and the frame's copy of the padding, nothing more.
    assert peak < 2.2 * MAX_PAYLOAD
    assert current < 1.1 * MAX_PAYLOAD and decoder.buffered == 0


@pytest.mark.spec("WIRE-15")
def test_a_lower_connection_limit_applies_from_the_next_header() -> None:
    decoder = FrameDecoder(max_payload=100)
    small = encode_frame(Opaque(MessageType.Inv, bytes(100)))
    large = encode_frame(Opaque(MessageType.Inv, bytes(101)))
    decoder.push(small + large + large)
    assert decoder.pull() == Frame(Opaque(MessageType.Inv, bytes(100)))
    decoder.max_payload = MAX_PAYLOAD  # raised between two frames: the next one passes
    assert decoder.pull() == Frame(Opaque(MessageType.Inv, bytes(101)))
    decoder.max_payload = 100
    result = decoder.pull()
    assert isinstance(result, DecodeError) and result.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert decoder.buffered == 0 and decoder.pending == 0


def test_pull_returns_none_until_a_frame_is_whole() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(Ping(5))
    decoder.push(frame[:20])
    assert decoder.pull() is None
    decoder.push(frame[20:])
    assert decoder.pull() == Frame(Ping(5)) and decoder.pull() is None
