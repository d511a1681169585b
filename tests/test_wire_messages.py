"""Payloads: spec/wire.md sections 4 to 7."""

from __future__ import annotations

import struct

import pytest

from obscura_ref.wire import (
    MAX_USER_AGENT,
    DecodeError,
    Disconnect,
    EncodeError,
    ErrorCode,
    Frame,
    Handshake,
    MessageType,
    Ping,
    Pong,
    PrivacyFeature,
    decode_frames,
    encode_frame,
)
from obscura_ref.wire.messages import decode_payload
from obscura_ref.wire.registry import flag_names


def decode_one(message_type: MessageType, payload: bytes) -> Frame:
    message, padding = decode_payload(message_type, payload)
    return Frame(message, padding)


def payload_error(message_type: MessageType, payload: bytes) -> ErrorCode:
    with pytest.raises(DecodeError) as info:
        decode_payload(message_type, payload)
    return info.value.code


@pytest.mark.spec("WIRE-40")
def test_handshake_built_by_hand_from_the_origin_table_decodes_field_for_field() -> None:
    # ORIGIN_FACTS.md section 2, one field at a time, as the origin lays them out.
    user_agent = b"Obscura/1"
    payload = (
        (1).to_bytes(4, "little")  # version, u32 LE
        + (1_700_000_123).to_bytes(8, "little")  # timestamp, u64 LE
        + (0x01 | 0x02 | 0x08).to_bytes(4, "little")  # features, u32 LE
        + (0x01 | 0x10).to_bytes(4, "little")  # privacy_features, u32 LE
        + len(user_agent).to_bytes(2, "little")  # user_agent length, u16 LE
        + user_agent  # user_agent bytes
        + bytes(range(100, 132))  # best_block_hash, 32 raw bytes
        + (987_654).to_bytes(8, "little")  # best_block_height, u64 LE
        + (0xDEAD_BEEF_CAFE_F00D).to_bytes(8, "little")  # nonce, u64 LE
    )
    assert len(payload) == 70 + len(user_agent)
    expected = Handshake(
        version=1,
        timestamp=1_700_000_123,
        features=0x0B,
        privacy_features=0x11,
        user_agent="Obscura/1",
        best_block_hash=bytes(range(100, 132)),
        best_block_height=987_654,
        nonce=0xDEAD_BEEF_CAFE_F00D,
    )
    assert decode_one(MessageType.Handshake, payload) == Frame(expected, b"")
    assert expected.encode() == payload


@pytest.mark.spec("WIRE-30")
def test_bytes_after_the_defined_fields_are_padding() -> None:
    hs = Handshake(1, 2, 3, 4, "ua", bytes(32), 5, 6)
    assert decode_one(MessageType.Handshake, hs.encode() + b"\x99" * 40) == Frame(hs, b"\x99" * 40)
    assert decode_one(MessageType.Ping, bytes(8) + b"xyz") == Frame(Ping(0), b"xyz")
    assert decode_one(MessageType.Disconnect, b"\x05\x00" + bytes(62)) == Frame(
        Disconnect(5), bytes(62)
    )


@pytest.mark.spec("WIRE-31")
def test_sender_may_pad_any_defined_payload() -> None:
    frames, error = decode_frames(encode_frame(Pong(1), bytes(56)))
    assert error is None and frames == [Frame(Pong(1), bytes(56))]


@pytest.mark.spec("WIRE-33")
@pytest.mark.parametrize(
    ("message_type", "size"),
    [
        (MessageType.Ping, 0),
        (MessageType.Ping, 7),
        (MessageType.Pong, 7),
        (MessageType.Disconnect, 0),
        (MessageType.Disconnect, 1),
        (MessageType.Handshake, 0),
        (MessageType.Handshake, 21),
        (MessageType.Handshake, 68),  # the origin's own minimum: two bytes short
        (MessageType.Handshake, 69),
    ],
)
def test_payload_shorter_than_its_fields_is_truncated(message_type: MessageType, size: int) -> None:
    full = {
        MessageType.Ping: Ping(1).encode(),
        MessageType.Pong: Pong(1).encode(),
        MessageType.Disconnect: Disconnect(1).encode(),
        MessageType.Handshake: Handshake(1, 0, 0, 0, "", bytes(32), 0, 0).encode(),
    }[message_type]
    assert payload_error(message_type, full[:size]) is ErrorCode.PAYLOAD_TRUNCATED


@pytest.mark.spec("WIRE-33")
def test_handshake_missing_its_nonce_is_truncated() -> None:
    full = Handshake(1, 0, 0, 0, "Obscura/1", bytes(32), 0, 0).encode()
    assert payload_error(MessageType.Handshake, full[:-8]) is ErrorCode.PAYLOAD_TRUNCATED
    assert payload_error(MessageType.Handshake, full[:-1]) is ErrorCode.PAYLOAD_TRUNCATED


@pytest.mark.spec("WIRE-42")
def test_sender_refuses_a_user_agent_over_256_utf8_bytes() -> None:
    Handshake(1, 0, 0, 0, "a" * MAX_USER_AGENT, bytes(32), 0, 0)
    Handshake(1, 0, 0, 0, "é" * 128, bytes(32), 0, 0)  # 256 bytes of UTF-8
    with pytest.raises(EncodeError) as info:
        Handshake(1, 0, 0, 0, "é" * 128 + "a", bytes(32), 0, 0)
    assert info.value.requirement == "WIRE-42" and info.value.field == "user_agent"
    with pytest.raises(EncodeError):
        Handshake(1, 0, 0, 0, "\ud800", bytes(32), 0, 0)  # a lone surrogate has no UTF-8


def _handshake_with_user_agent(declared: int, user_agent: bytes, tail: bool = True) -> bytes:
    head = struct.pack("<IQIIH", 1, 0, 0, 0, declared)
    return head + user_agent + (bytes(48) if tail else b"")


@pytest.mark.spec("WIRE-43")
def test_user_agent_length_over_256_is_rejected_before_the_user_agent_is_read() -> None:
    payload = _handshake_with_user_agent(257, b"a" * 257)
    assert payload_error(MessageType.Handshake, payload) is ErrorCode.USER_AGENT_TOO_LONG
    # Even when the payload does not hold that many bytes.
    assert (
        payload_error(MessageType.Handshake, _handshake_with_user_agent(0xFFFF, b"", tail=False))
        is ErrorCode.USER_AGENT_TOO_LONG
    )
    ok = _handshake_with_user_agent(256, b"a" * 256)
    message = decode_one(MessageType.Handshake, ok).message
    assert isinstance(message, Handshake) and message.user_agent == "a" * 256


@pytest.mark.spec("WIRE-44")
@pytest.mark.parametrize(
    "raw", [b"\xc3\x28", b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"Obscura/\x80", b"\xe2\x82"]
)
def test_user_agent_that_is_not_utf8_is_rejected(raw: bytes) -> None:
    payload = _handshake_with_user_agent(len(raw), raw)
    assert payload_error(MessageType.Handshake, payload) is ErrorCode.USER_AGENT_NOT_UTF8


@pytest.mark.spec("WIRE-45")
def test_every_flag_value_is_accepted() -> None:
    hs = Handshake(1, 0, 0xFFFF_FFFF, 0xFFFF_FF80, "", bytes(32), 0, 0)
    assert decode_one(MessageType.Handshake, hs.encode()).message == hs


@pytest.mark.spec("WIRE-47")
def test_privacy_bits_are_read_one_by_one() -> None:
    # 0x41 was the origin's Dandelion: here it is two flags, never one.
    assert flag_names(PrivacyFeature, 0x41) == ["TransactionObfuscation", "I2P"]
    assert all(bin(member.value).count("1") == 1 for member in PrivacyFeature)
    assert flag_names(PrivacyFeature, 0x80) == ["EncryptedTransport"]  # errata E-19
    assert flag_names(PrivacyFeature, 0x100) == []


@pytest.mark.spec("WIRE-50")
def test_ping_and_pong_carry_a_u64_nonce() -> None:
    assert Ping(0x0102030405060708).encode() == bytes.fromhex("0807060504030201")
    assert decode_one(MessageType.Pong, bytes.fromhex("ffffffffffffffff")).message == Pong(
        2**64 - 1
    )


@pytest.mark.spec("WIRE-60", "WIRE-61")
def test_disconnect_carries_a_u16_reason_and_any_value_is_accepted() -> None:
    assert Disconnect(0x0102).encode() == b"\x02\x01"
    for reason in (0, 1, 0x7FFF, 0xFFFF):
        assert decode_one(MessageType.Disconnect, reason.to_bytes(2, "little")).message == (
            Disconnect(reason)
        )


@pytest.mark.parametrize(
    "build",
    [
        lambda: Ping(-1),
        lambda: Ping(2**64),
        lambda: Disconnect(0x1_0000),
        lambda: Handshake(2**32, 0, 0, 0, "", bytes(32), 0, 0),
        lambda: Handshake(1, 0, 0, 0, "", bytes(31), 0, 0),
        lambda: Handshake(1, 0, 0, 0, "", bytes(32), 0, True),
    ],
)
def test_out_of_range_fields_are_refused_at_construction(build: object) -> None:
    assert callable(build)
    with pytest.raises(EncodeError):
        build()


def test_a_ping_is_never_equal_to_a_pong_with_the_same_nonce() -> None:
    ping: object = Ping(1)
    assert ping != Pong(1)
    assert decode_one(MessageType.Pong, Ping(1).encode()).message == Pong(1)


@pytest.mark.spec("WIRE-34")
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (struct.pack("<IQIIH", 1, 0, 0, 0, 300)[:21], ErrorCode.PAYLOAD_TRUNCATED),
        (struct.pack("<IQIIH", 1, 0, 0, 0, 300), ErrorCode.USER_AGENT_TOO_LONG),
        (struct.pack("<IQIIH", 1, 0, 0, 0, 3) + b"\xff", ErrorCode.PAYLOAD_TRUNCATED),
        (struct.pack("<IQIIH", 1, 0, 0, 0, 2) + b"\xff\xff", ErrorCode.USER_AGENT_NOT_UTF8),
        (struct.pack("<IQIIH", 1, 0, 0, 0, 2) + b"ok" + bytes(47), ErrorCode.PAYLOAD_TRUNCATED),
    ],
)
def test_handshake_fields_are_checked_in_layout_order(payload: bytes, expected: ErrorCode) -> None:
    assert payload_error(MessageType.Handshake, payload) is expected
