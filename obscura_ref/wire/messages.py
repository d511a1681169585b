"""The messages of spec/wire.md as frozen dataclasses, and their payload codecs.

A message object's fields are always valid: its constructor checks every field against its
range and its limit, so a decoded message and a hand-built one obey the same rules. The limits
on a whole frame (spec: WIRE-4, WIRE-41) are checked by ``frame_bytes``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Self

from .errors import DecodeError, EncodeError, ErrorCode
from .registry import DEFINED_TYPES, MessageType

MAX_HANDSHAKE_PAYLOAD = 1024  # spec/wire.md section 1
MAX_USER_AGENT = 256  # spec/wire.md section 1

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

# Handshake layout, spec/wire.md section 5: the fields before and after the user agent.
_HANDSHAKE_HEAD = struct.Struct("<IQIIH")  # version, timestamp, features, privacy, ua length
_HANDSHAKE_TAIL = struct.Struct("<32sQQ")  # best_block_hash, best_block_height, nonce
_NONCE = struct.Struct("<Q")  # Ping and Pong, spec/wire.md section 6
_REASON = struct.Struct("<H")  # Disconnect, spec/wire.md section 7

Payload = bytes | bytearray | memoryview  # what the decoders read from


def _check_uint(field: str, value: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise EncodeError(field, f"must be an integer from 0 to {maximum}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Handshake:
    """spec/wire.md section 5."""

    message_type: ClassVar[MessageType] = MessageType.Handshake
    version: int
    timestamp: int
    features: int
    privacy_features: int
    user_agent: str
    best_block_hash: bytes
    best_block_height: int
    nonce: int

    def __post_init__(self) -> None:
        _check_uint("version", self.version, U32_MAX)
        _check_uint("timestamp", self.timestamp, U64_MAX)
        _check_uint("features", self.features, U32_MAX)
        _check_uint("privacy_features", self.privacy_features, U32_MAX)
        _check_uint("best_block_height", self.best_block_height, U64_MAX)
        _check_uint("nonce", self.nonce, U64_MAX)
        if not isinstance(self.user_agent, str):
            raise EncodeError("user_agent", "must be text")
        try:
            encoded = self.user_agent.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodeError("user_agent", f"has no UTF-8 encoding: {exc}") from exc
        if len(encoded) > MAX_USER_AGENT:  # spec: WIRE-42
            raise EncodeError(
                "user_agent",
                f"is {len(encoded)} bytes of UTF-8, the limit is {MAX_USER_AGENT}",
                "WIRE-42",
            )
        if not isinstance(self.best_block_hash, bytes) or len(self.best_block_hash) != 32:
            raise EncodeError("best_block_hash", "must be exactly 32 bytes")

    def encode(self) -> bytes:
        user_agent = self.user_agent.encode("utf-8")
        # spec: WIRE-40
        return (
            _HANDSHAKE_HEAD.pack(
                self.version,
                self.timestamp,
                self.features,
                self.privacy_features,
                len(user_agent),
            )
            + user_agent
            + _HANDSHAKE_TAIL.pack(self.best_block_hash, self.best_block_height, self.nonce)
        )

    @classmethod
    def decode(cls, payload: Payload) -> tuple[Handshake, int]:
        """The handshake and the size of its defined fields; fields are read in the order of
        spec/wire.md section 5 and the first failing check is raised (spec: WIRE-34)."""
        if len(payload) < _HANDSHAKE_HEAD.size:
            raise _truncated(MessageType.Handshake, "user_agent_length", len(payload))
        # spec: WIRE-40
        version, timestamp, features, privacy, ua_length = _HANDSHAKE_HEAD.unpack_from(payload)
        if ua_length > MAX_USER_AGENT:  # spec: WIRE-43, WIRE-34 (before the bytes are read)
            raise DecodeError(
                ErrorCode.USER_AGENT_TOO_LONG,
                f"user_agent_length is {ua_length}, the limit is {MAX_USER_AGENT}",
            )
        ua_end = _HANDSHAKE_HEAD.size + ua_length
        if len(payload) < ua_end:  # spec: WIRE-34 (the user agent is whole before it is judged)
            raise _truncated(MessageType.Handshake, "user_agent", len(payload))
        try:
            user_agent = str(payload[_HANDSHAKE_HEAD.size : ua_end], "utf-8")  # spec: WIRE-44
        except UnicodeDecodeError as exc:
            raise DecodeError(ErrorCode.USER_AGENT_NOT_UTF8, str(exc)) from exc
        end = ua_end + _HANDSHAKE_TAIL.size
        if len(payload) < end:
            raise _truncated(MessageType.Handshake, "best_block_hash", len(payload))
        block_hash, height, nonce = _HANDSHAKE_TAIL.unpack_from(payload, ua_end)
        message = cls(
            version=version,
            timestamp=timestamp,
            features=features,  # spec: WIRE-45 (every bit accepted)
            privacy_features=privacy,
            user_agent=user_agent,
            best_block_hash=block_hash,
            best_block_height=height,
            nonce=nonce,
        )
        return message, end


@dataclass(frozen=True, slots=True)
class _NonceMessage:
    """The shared layout of Ping and Pong: a u64 nonce (spec/wire.md section 6)."""

    message_type: ClassVar[MessageType]
    nonce: int

    def __post_init__(self) -> None:
        _check_uint("nonce", self.nonce, U64_MAX)

    def encode(self) -> bytes:
        return _NONCE.pack(self.nonce)  # spec: WIRE-50

    @classmethod
    def decode(cls, payload: Payload) -> tuple[Self, int]:
        if len(payload) < _NONCE.size:
            raise _truncated(cls.message_type, "nonce", len(payload))
        (nonce,) = _NONCE.unpack_from(payload)  # spec: WIRE-50
        return cls(nonce), _NONCE.size


@dataclass(frozen=True, slots=True)
class Ping(_NonceMessage):
    """spec/wire.md section 6."""

    message_type: ClassVar[MessageType] = MessageType.Ping


@dataclass(frozen=True, slots=True)
class Pong(_NonceMessage):
    """spec/wire.md section 6; never equal to a Ping with the same nonce."""

    message_type: ClassVar[MessageType] = MessageType.Pong


@dataclass(frozen=True, slots=True)
class Disconnect:
    """spec/wire.md section 7. Any u16 is accepted as ``reason``: judging it belongs to the
    connection layer."""

    message_type: ClassVar[MessageType] = MessageType.Disconnect
    reason: int

    def __post_init__(self) -> None:
        _check_uint("reason", self.reason, U16_MAX)

    def encode(self) -> bytes:
        return _REASON.pack(self.reason)  # spec: WIRE-60

    @classmethod
    def decode(cls, payload: Payload) -> tuple[Disconnect, int]:
        if len(payload) < _REASON.size:
            raise _truncated(cls.message_type, "reason", len(payload))
        (reason,) = _REASON.unpack_from(payload)  # spec: WIRE-60, WIRE-61
        return cls(reason), _REASON.size


@dataclass(frozen=True, slots=True)
class Opaque:
    """A registered message whose payload this specification does not define; the payload is
    carried whole, padding included (spec/wire.md section 3)."""

    message_type: MessageType
    payload: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.message_type, MessageType) or self.message_type in DEFINED_TYPES:
            raise EncodeError(
                "message_type", f"{self.message_type!r} is not an opaque registered type"
            )
        if not isinstance(self.payload, bytes):
            raise EncodeError("payload", "must be bytes")

    def encode(self) -> bytes:
        return self.payload


Message = Handshake | Ping | Pong | Disconnect | Opaque

_DEFINED_DECODERS: dict[MessageType, Callable[[Payload], tuple[Message, int]]] = {
    MessageType.Handshake: Handshake.decode,
    MessageType.Ping: Ping.decode,
    MessageType.Pong: Pong.decode,
    MessageType.Disconnect: Disconnect.decode,
}


def decode_payload(message_type: MessageType, payload: Payload) -> tuple[Message, bytes]:
    """The message carried by ``payload`` and the padding after its defined fields. The result
    owns its bytes: ``payload`` may be a view of a buffer that is reused afterwards."""
    decoder = _DEFINED_DECODERS.get(message_type)
    if decoder is None:
        return Opaque(message_type, bytes(payload)), b""  # spec: WIRE-20
    message, defined_size = decoder(payload)
    return message, bytes(memoryview(payload)[defined_size:])  # spec: WIRE-30 (one copy)


def _truncated(message_type: MessageType, field: str, size: int) -> DecodeError:
    # spec: WIRE-33
    return DecodeError(
        ErrorCode.PAYLOAD_TRUNCATED,
        f"{message_type.name} payload of {size} bytes ends before its field {field}",
    )
